"""Graders fixtures: a small nbgrader assignment released by real nbgrader, answers built from its release
notebook, and grading through the real worker code and sandbox (no broker: the job runs in-process)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from sqlalchemy import select

from graders.models import Assignment, GradingJob, JobKind, JobState, Submission
from graders.worker import release_now, run_job
from lms.extensions import db

HIDDEN_SECRET = "HIDDEN-SECRET-42"


def cell_meta(
    grade_id: str,
    *,
    solution: bool = False,
    grade: bool = False,
    locked: bool = False,
    points: float | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade_id": grade_id,
        "solution": solution,
        "grade": grade,
        "locked": locked,
        "schema_version": 3,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def small_source() -> nbformat.NotebookNode:
    """An nbgrader source notebook: two functions with visible and hidden tests (2 + 3 points) and a
    manually graded written answer (2 points)."""
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# Small exercise\nWrite two functions.", metadata=cell_meta("intro", locked=True)
            ),
            new_code_cell(
                "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
                metadata=cell_meta("sol-add", solution=True),
            ),
            new_code_cell(
                "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\n"
                f"assert add(20, 22) == 42, '{HIDDEN_SECRET}'\n### END HIDDEN TESTS",
                metadata=cell_meta("test-add", grade=True, locked=True, points=2),
            ),
            new_code_cell(
                "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION",
                metadata=cell_meta("sol-mul", solution=True),
            ),
            new_code_cell(
                "assert mul(2, 3) == 6\n### BEGIN HIDDEN TESTS\nassert mul(7, 6) == 42\n### END HIDDEN TESTS",
                metadata=cell_meta("test-mul", grade=True, locked=True, points=3),
            ),
            new_markdown_cell(
                "### BEGIN SOLUTION\nAddition is commutative.\n### END SOLUTION",
                metadata=cell_meta("answer", solution=True, grade=True, points=2),
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


@pytest.fixture
def create_assignment(app, dummy_cohort) -> Callable[..., Assignment]:
    """An assignment of ``dummy_cohort`` released with real nbgrader (``source`` defaults to small_source)."""

    def create(source: nbformat.NotebookNode | None = None, **params: Any) -> Assignment:
        text = nbformat.writes(source if source is not None else small_source())
        params.setdefault("cohort", dummy_cohort)
        params.setdefault("unit_key", params.get("slug", "small"))
        params.setdefault("slug", params["unit_key"])
        params.setdefault("notebook", params["slug"])
        params.setdefault("title", {"en": "Small exercise", "zh_CN": "小练习"})
        params.setdefault("max_points", 7.0)
        params.setdefault("due_at", None)
        params.setdefault("cutoff_at", None)
        assignment = Assignment(
            source_notebook=text, source_sha256=hashlib.sha256(text.encode()).hexdigest(), **params
        )
        db.session.add(assignment)
        db.session.flush()
        job = GradingJob(kind=JobKind.RELEASE, assignment_id=assignment.id, attempts=1)
        db.session.add(job)
        release_now(job, assignment)
        db.session.commit()
        return assignment

    return create


@pytest.fixture
def small_assignment(create_assignment) -> Assignment:
    return create_assignment()


def answer(assignment: Assignment, answers: Mapping[str, str] | None = None, **edits: Any) -> bytes:
    """The assignment's release notebook with solution cells replaced by ``answers`` (grade_id → source).
    With no answers, the source notebook's own solutions are used (a fully correct submission)."""
    release = nbformat.reads(assignment.release_notebook or "", as_version=4)
    if answers is None:
        source = nbformat.reads(assignment.source_notebook, as_version=4)
        answers = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nbformat.writes(release).encode()


@pytest.fixture
def grade_pending(app) -> Callable[[], list[str]]:
    """Run every queued job now, in this process, through the real worker code; returns the outcomes."""

    def run() -> list[str]:
        db.session.commit()
        outcomes = []
        for job_id in db.session.scalars(
            select(GradingJob.id).where(GradingJob.state == JobState.QUEUED).order_by(GradingJob.id)
        ).all():
            outcomes.append(run_job(job_id))
        db.session.expire_all()
        return outcomes

    return run


def submission_json(submission: Submission) -> dict[str, Any]:
    return json.loads(submission.autograded_notebook or "{}")
