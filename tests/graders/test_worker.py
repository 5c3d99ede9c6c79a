"""Grading jobs through the real worker code, nbgrader and the sandbox (in-process, no broker)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from graders import services
from graders.models import CellGrade, GradingJob, JobState, SubmissionStatus
from graders.worker import run_job
from lms.extensions import db
from lms.services import learning
from lms.timeutil import utcnow
from tests.graders.conftest import HIDDEN_SECRET, answer

LIMITS = {"max_bytes": 20_000_000, "max_cells": 2000}
WRONG_ADD = {"sol-add": "def add(a, b):\n    return 0", "sol-mul": "def mul(a, b):\n    return a * b"}


def test_release_notebook_has_no_solutions_or_hidden_tests(small_assignment) -> None:
    release = small_assignment.release_notebook
    assert small_assignment.released_at is not None
    assert HIDDEN_SECRET not in release and "BEGIN SOLUTION" not in release
    assert "NotImplementedError" in release
    assert json.loads(release)["metadata"]["lms"] == {"assignment": "small"}


def test_correct_submission_scores_every_test_and_waits_for_the_manual_cell(
    small_assignment, people, grade_pending
) -> None:
    submission, created = services.submit(
        small_assignment, people["trainee"], answer(small_assignment), **LIMITS
    )
    assert created and submission.status == SubmissionStatus.QUEUED
    assert grade_pending() == ["autograded"]
    assert submission.status == SubmissionStatus.AUTOGRADED
    assert submission.auto_score == 5.0 and submission.score is None
    points = {cell.grade_id: (cell.kind.value, cell.points) for cell in submission.cells}
    assert points == {"test-add": ("tests", 2.0), "test-mul": ("tests", 3.0), "answer": ("manual", None)}


def test_hidden_test_failure_costs_the_cell(small_assignment, people, grade_pending) -> None:
    wrong_hidden = {"sol-add": "def add(a, b):\n    return 3", "sol-mul": "def mul(a, b):\n    return a * b"}
    submission, _ = services.submit(
        small_assignment, people["trainee"], answer(small_assignment, wrong_hidden), **LIMITS
    )
    grade_pending()
    assert {c.grade_id: c.points for c in submission.cells}["test-add"] == 0.0  # visible passes, hidden fails
    assert submission.auto_score == 3.0


def test_manual_grade_makes_the_score_final_and_announces_it(small_assignment, people, grade_pending) -> None:
    from lms import signals

    heard = []

    def listen(sender, **kwargs) -> None:  # type: ignore[no-untyped-def]
        heard.append(kwargs)

    signals.submission_graded.connect(listen)
    try:
        submission, _ = services.submit(
            small_assignment, people["trainee"], answer(small_assignment), **LIMITS
        )
        grade_pending()
        services.grade_cell(submission, "answer", people["trainer"], points=1.5, comment="Say why.")
        assert submission.status == SubmissionStatus.GRADED and submission.score == 6.5
        assert heard and heard[-1]["score"] == 6.5 and heard[-1]["unit_key"] == "small"
        progress = learning.get_progress(people["trainee"], small_assignment.cohort, "small")
        # the core's progress heard it too, and keeps it as a percentage (as for quizzes)
        assert progress is not None and progress.best_score == round(100 * 6.5 / submission.max_score, 2)
    finally:
        signals.submission_graded.disconnect(listen)


def test_a_job_runs_once_even_when_delivered_twice(small_assignment, people, grade_pending) -> None:
    submission, _ = services.submit(small_assignment, people["trainee"], answer(small_assignment), **LIMITS)
    db.session.commit()
    job_id = services.queued_job_ids(submission)[0]
    assert run_job(job_id) == "autograded"
    assert run_job(job_id) == "not claimed"
    assert db.session.scalar(select(func.count()).select_from(CellGrade)) == 3


def test_regrade_keeps_the_trainers_points_and_replaces_nothing_twice(
    small_assignment, people, grade_pending
) -> None:
    submission, _ = services.submit(small_assignment, people["trainee"], answer(small_assignment), **LIMITS)
    grade_pending()
    services.grade_cell(submission, "answer", people["trainer"], points=2, comment="Good.")
    services.request_regrade(submission, people["trainer"])
    assert grade_pending() == ["graded"]
    assert submission.score == 7.0
    assert {c.grade_id: c.comment for c in submission.cells}["answer"] == "Good."
    assert db.session.scalar(select(func.count()).select_from(CellGrade)) == 3


def test_an_expired_lease_is_swept_back_to_the_queue(small_assignment, people) -> None:
    submission, _ = services.submit(small_assignment, people["trainee"], answer(small_assignment), **LIMITS)
    db.session.commit()
    job_id = services.queued_job_ids(submission)[0]
    assert services.claim_job(job_id, "dead-worker", lease_seconds=1)
    db.session.commit()
    assert services.jobs_to_resend(utcnow(), 600) == []  # lease still valid
    later = utcnow() + timedelta(seconds=5)
    assert services.jobs_to_resend(later, 600) == [job_id]
    assert db.session.get(GradingJob, job_id).state == JobState.QUEUED


def test_grading_refuses_without_bubblewrap(
    small_assignment, people, grade_pending, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    submission, _ = services.submit(small_assignment, people["trainee"], answer(small_assignment), **LIMITS)
    assert grade_pending() == ["refused"]
    assert submission.status == SubmissionStatus.FAILED
    assert "bubblewrap is not installed" in submission.message
    assert "LMS_GRADER_SANDBOX=unsafe" in submission.message


@pytest.fixture
def unsafe_mode(app):
    app.config["GRADER_SANDBOX"] = "unsafe"
    yield
    app.config["GRADER_SANDBOX"] = "bwrap"


def test_unsafe_mode_grades_without_a_sandbox_when_an_admin_asks(
    unsafe_mode, small_assignment, people, grade_pending
) -> None:
    submission, _ = services.submit(
        small_assignment, people["trainee"], answer(small_assignment, WRONG_ADD), **LIMITS
    )
    assert grade_pending() == ["autograded"]
    assert submission.auto_score == 3.0
