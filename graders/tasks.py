"""The grading task on the LMS's Celery app, and the sweep that re-sends jobs a dead worker left behind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from lms.queue import app_context, celery, send

log = logging.getLogger(__name__)

TASK_NAME = "graders.run_job"


@celery.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job_task(job_id: int) -> str:
    """Run grading job ``job_id`` (the message carries nothing else)."""
    from graders.worker import run_job
    from lms.extensions import db

    with app_context():
        try:
            return run_job(int(job_id))
        finally:
            db.session.remove()


def dispatch(job_ids: Iterable[int]) -> None:
    """Hand committed jobs to the broker (a job that cannot be sent now is re-sent by a sweep)."""
    for job_id in job_ids:
        send(TASK_NAME, int(job_id))


def sweep_once() -> list[int]:
    """Re-send jobs whose worker died (expired lease) or whose message seems lost; returns their ids."""
    from graders import services
    from lms.extensions import db
    from lms.timeutil import utcnow

    with app_context() as app:
        try:
            ids = services.jobs_to_resend(utcnow(), int(app.config["JOB_REQUEUE_SECONDS"]))
            db.session.commit()
        finally:
            db.session.remove()
    dispatch(ids)
    if ids:
        log.info("re-sent grading jobs %s", ids)
    return ids


def _sweep_forever(interval: float, stop: threading.Event) -> None:
    while True:
        try:
            sweep_once()
        except Exception:  # a failed sweep is retried at the next interval
            log.exception("sweep failed")
        if stop.wait(interval):
            return


_stop = threading.Event()


def import_grading(**_kwargs: Any) -> None:
    """Import the grading code in the worker's main process before it forks its pool (connected to
    Celery's ``worker_init``): every pool process starts with nbgrader loaded, and the first job of a
    burst does not wait for the imports (importing from a thread beside a job instead deadlocks)."""
    import nbgrader.api  # noqa: F401
    import nbgrader.converters  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401

    import graders.nbgrader_backend  # noqa: F401
    import graders.worker  # noqa: F401


def start_sweeper(**_kwargs: Any) -> None:
    """Start the sweep thread of this worker (connected to Celery's ``worker_ready``)."""
    from graders.sandbox import remove_stale_cgroups

    remove_stale_cgroups()
    with app_context() as app:
        interval = float(app.config["JOB_SWEEP_SECONDS"])
    threading.Thread(target=_sweep_forever, args=(interval, _stop), name="lms-sweep", daemon=True).start()
