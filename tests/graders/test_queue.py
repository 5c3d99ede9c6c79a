"""The queue with real brokers and real worker processes: a worker killed with SIGKILL in the middle of a
job loses nothing; the job runs again on another worker and is graded exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from graders import services, tasks
from graders.models import CellGrade, GradingJob, JobState, Submission, SubmissionStatus
from lms.extensions import db
from tests.graders.conftest import answer

BROKERS = {
    "embedded": None,
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/15",
}
SLOW_ADD = "import time\ntime.sleep(8)\n\ndef add(a, b):\n    return a + b"


def _reachable(url: str | None) -> None:
    if url is None:
        return
    port = 5672 if url.startswith("amqp") else 6379
    with socket.create_connection(("127.0.0.1", port), timeout=3):
        pass  # a refused connection fails the test: these services are part of the product's test set-up


@pytest.fixture(params=list(BROKERS))
def broker(request, app_config: dict[str, Any]) -> str:
    url = BROKERS[request.param]
    _reachable(url)
    app_config.update(
        BROKER_URL=url,
        QUEUE_NAME=f"lms-test-{uuid.uuid4().hex[:8]}",
        JOB_LEASE_SECONDS=4,
        JOB_SWEEP_SECONDS=1,
        JOB_REQUEUE_SECONDS=30,
    )
    return request.param


@pytest.fixture
def start_worker(app, app_config: dict[str, Any], tmp_path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = dict(
            os.environ,
            LMS_DATABASE_URL=app_config["DATABASE_URL"],
            LMS_SECRET_KEY="worker-secret",
            LMS_INSTANCE_PATH=app.instance_path,
            LMS_QUEUE_NAME=app_config["QUEUE_NAME"],
            LMS_JOB_LEASE_SECONDS=str(app_config["JOB_LEASE_SECONDS"]),
            LMS_JOB_SWEEP_SECONDS=str(app_config["JOB_SWEEP_SECONDS"]),
            LMS_JOB_REQUEUE_SECONDS=str(app_config["JOB_REQUEUE_SECONDS"]),
        )
        if app_config.get("BROKER_URL"):
            env["LMS_BROKER_URL"] = app_config["BROKER_URL"]
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115  (closed with the worker)
        process = subprocess.Popen(
            [sys.executable, "-m", "lms", "worker", "--jobs", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the pool and the sandbox too
        )
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for(condition, seconds: float, what: str, logs) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(p.read_text() for p in logs()))


def test_worker_killed_mid_job_loses_nothing_and_grades_once(
    broker, app, small_assignment, people, start_worker, tmp_path
) -> None:
    submission, _ = services.submit(
        small_assignment,
        people["trainee"],
        answer(small_assignment, {"sol-add": SLOW_ADD, "sol-mul": "def mul(a, b):\n    return a * b"}),
        max_bytes=20_000_000,
        max_cells=2000,
    )
    db.session.commit()
    job_ids = services.queued_job_ids(submission)
    tasks.dispatch(job_ids)
    logs = lambda: sorted(tmp_path.glob("worker-*.log"))  # noqa: E731

    first = start_worker()
    job = lambda: db.session.get(GradingJob, job_ids[0])  # noqa: E731
    _wait_for(lambda: job().state == JobState.RUNNING, 60, "the first worker to start the job", logs)
    time.sleep(1.0)  # inside the notebook now
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert job().state == JobState.RUNNING  # the dead worker could not finish or release it

    start_worker()
    _wait_for(lambda: job().state == JobState.DONE, 120, "a second worker to finish the job", logs)

    finished = job()
    assert finished.attempts == 2
    stored = db.session.get(Submission, submission.id)
    assert stored.status == SubmissionStatus.AUTOGRADED
    assert stored.auto_score == 5.0
    rows = db.session.scalar(
        select(func.count()).select_from(CellGrade).where(CellGrade.submission_id == stored.id)
    )
    assert rows == 3  # two test cells and the manual answer: once each, never duplicated
