#!/usr/bin/env bash
# Installs the Debian packages the LMS and its tests need, when they are missing.
#   chromium        the real browser of the end-to-end tests (driven by Playwright, never downloaded)
#   fonts-noto-cjk  Chinese glyphs in the browser and in PDFs
#   bubblewrap      the sandbox that runs trainees' notebooks
set -euo pipefail
needed=()
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
command -v bwrap >/dev/null 2>&1 || needed+=(bubblewrap)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || needed+=(fonts-noto-cjk)
if [ "${#needed[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${needed[*]}" >&2
  echo "Install them as root:  apt-get install -y ${needed[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}" fontconfig >/dev/null
