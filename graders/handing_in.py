"""Handing in a notebook from a request (web form or API): the one unit of work both use."""

from __future__ import annotations

from flask import current_app

from graders import services
from graders.models import Assignment
from lms.db import commit_with_retry
from lms.extensions import db
from lms.models import User


def store_submission(assignment_id: int, user_id: int, data: bytes, filename: str) -> tuple[int, bool]:
    """Store the upload as a submission and commit (retried on a write conflict): (submission id, created).
    Raises the submit errors of ``graders.services``."""
    config = current_app.config

    def work() -> tuple[int, bool]:
        # looked up again on every try: a retried unit of work starts from a rolled-back session
        trainee = db.session.get(User, user_id)
        fresh = db.session.get(Assignment, assignment_id)
        assert trainee is not None and fresh is not None
        submission, created = services.submit(
            fresh,
            trainee,
            data,
            filename=filename,
            max_bytes=int(config["GRADER_MAX_UPLOAD_BYTES"]),
            max_cells=int(config["GRADER_MAX_CELLS"]),
        )
        return submission.id, created

    return commit_with_retry(work)
