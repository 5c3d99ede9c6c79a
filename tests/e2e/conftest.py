"""Browser tests: the real `lms run` server on a free loopback port, driven by Debian's Chromium
through Playwright (never `playwright install`). Screenshots go to test-artifacts/e2e/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`lms run` in a subprocess, sharing the test database."""
    port = _free_port()
    instance = tmp_path_factory.mktemp("live-instance")
    env = dict(
        os.environ,
        LMS_DATABASE_URL=database_url,
        LMS_SECRET_KEY="e2e-secret",
        LMS_INSTANCE_PATH=str(instance),
        # Credit a unit after a few seconds of real, measured reading instead of twenty minutes.
        LMS_ONLINE_CREDIT_SHARE="0.002",
        LMS_HEARTBEAT_SECONDS="1",
    )
    log = open(instance / "server.log", "w")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "lms", "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/login", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((instance / "server.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(app, browser):
    """Browser contexts that are closed when the test ends, pass or fail, before its data is deleted
    (an open page would keep sending heartbeats to the server)."""
    contexts = []

    def new(**options):
        context = browser.new_context(**options)
        contexts.append(context)
        return context

    yield new
    for context in contexts:
        context.close()


@pytest.fixture
def shoot(request):
    """Save a full-page screenshot under test-artifacts/e2e/<test>-<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
