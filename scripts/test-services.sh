#!/usr/bin/env bash
# Makes sure the PostgreSQL server the test suite runs against is up (starts an installed, stopped one).
set -euo pipefail
url="${LMS_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}"
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
    sleep 1
  done
fi
echo "PostgreSQL is not reachable at $url; install and start it, or set LMS_SKIP_POSTGRES=1 to run on SQLite only." >&2
exit 1
