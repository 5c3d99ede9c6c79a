"""The graders' part of ``lms demo``: the demo cohort's exercises as released assignments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from graders import services
from graders.models import GradingJob, JobKind, JobState
from lms.extensions import db
from lms.models import Cohort


def load_graders_demo(sender: Any, *, cohort: Cohort, **_: Any) -> None:
    """Receiver of lms.signals.demo_loaded: publish and release every exercise (safe to run twice)."""
    if cohort.course_version_id is None:
        return
    from graders.worker import release_now

    services.publish_assignments(cohort, None)
    jobs = db.session.scalars(
        select(GradingJob).where(GradingJob.kind == JobKind.RELEASE, GradingJob.state == JobState.QUEUED)
    )
    for job in jobs:
        if job.assignment.cohort_id == cohort.id:
            # generate_assignment runs no trainee code, so the demo does it here rather than in a worker
            job.attempts += 1
            release_now(job, job.assignment)
    db.session.flush()
