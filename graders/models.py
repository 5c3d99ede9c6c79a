"""Graders: notebook assignments of a cohort, trainees' submissions, per-cell grades and grading jobs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from lms.extensions import Model
from lms.models import Cohort, User
from lms.timeutil import UTCDateTime, utcnow


class Assignment(Model):
    """A curriculum exercise set as an nbgrader assignment for one cohort, with its rules."""

    __tablename__ = "graders_assignment"
    __table_args__ = (
        UniqueConstraint("cohort_id", "unit_key"),
        CheckConstraint("max_submissions > 0", name="max_submissions_positive"),
        CheckConstraint("late_penalty_percent >= 0 AND late_penalty_percent <= 100", name="penalty_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id", ondelete="CASCADE"), index=True)
    unit_key: Mapped[str] = mapped_column(String(64))
    # nbgrader's assignment id and notebook name (the notebook file is "<notebook>.ipynb")
    slug: Mapped[str] = mapped_column(String(64))
    notebook: Mapped[str] = mapped_column(String(100))
    title: Mapped[dict[str, str]] = mapped_column(JSON)  # locale → title
    # The nbgrader *source* notebook (solutions and hidden tests) as JSON text: a snapshot, so that a new
    # course version does not change an assignment trainees are working on. Never shown to trainees.
    source_notebook: Mapped[str] = deferred(mapped_column(Text))
    source_sha256: Mapped[str] = mapped_column(String(64))
    # What trainees download: nbgrader's release version, made by a grading worker.
    release_notebook: Mapped[str | None] = deferred(mapped_column(Text))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    release_error: Mapped[str] = mapped_column(Text, default="")
    max_points: Mapped[float] = mapped_column(default=0.0)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Late submissions lose this share of the points per started day late, until the hard cut-off.
    late_penalty_percent: Mapped[float] = mapped_column(default=10.0)
    cutoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    max_submissions: Mapped[int] = mapped_column(default=5)
    cell_timeout: Mapped[int] = mapped_column(default=60)
    total_timeout: Mapped[int] = mapped_column(default=900)
    anonymous_grading: Mapped[bool] = mapped_column(default=False)
    # grade_id → [{"points": float, "text": str}, ...]: quick marks for manually graded cells
    rubric: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    cohort: Mapped[Cohort] = relationship()

    def localised_title(self, locale: str) -> str:
        """The title in ``locale``, falling back to Chinese, English, then the slug."""
        return self.title.get(locale) or self.title.get("zh_CN") or self.title.get("en") or self.slug

    @property
    def is_released(self) -> bool:
        return self.released_at is not None


class SubmissionStatus(enum.StrEnum):
    QUEUED = "queued"  # stored; waiting for a worker
    GRADING = "grading"  # a worker runs it
    AUTOGRADED = "autograded"  # tests scored; a trainer still has to grade manual cells
    GRADED = "graded"  # every cell has points: the score is final
    FAILED = "failed"  # grading could not run (the message says why); trainers are told


class Submission(Model):
    """A notebook a trainee handed in, stored in the database before anything else happens."""

    __tablename__ = "graders_submission"
    __table_args__ = (
        UniqueConstraint("assignment_id", "user_id", "attempt"),
        Index("ix_graders_submission_queue", "status", "assignment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("graders_assignment.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255), default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[SubmissionStatus] = mapped_column(
        Enum(SubmissionStatus, native_enum=False, length=12), default=SubmissionStatus.QUEUED
    )
    # What structure repair did: restored cells, answers the trainee deleted, metadata that earned nothing.
    repairs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    autograded_notebook: Mapped[str | None] = deferred(mapped_column(Text))
    auto_score: Mapped[float | None]
    late_penalty: Mapped[float] = mapped_column(default=0.0)
    extra_credit: Mapped[float] = mapped_column(default=0.0)
    score: Mapped[float | None]  # final points after penalty and extra credit; None until known
    max_score: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")  # why grading failed (trainee-safe wording)
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feedback_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    assignment: Mapped[Assignment] = relationship(lazy="joined")
    user: Mapped[User] = relationship()
    cells: Mapped[list[CellGrade]] = relationship(
        back_populates="submission", cascade="all, delete-orphan", order_by="CellGrade.position"
    )

    @property
    def points_so_far(self) -> float | None:
        """The score, or while manual grading is pending the autograded part of it."""
        return self.score if self.score is not None else self.auto_score


class CellKind(enum.StrEnum):
    TESTS = "tests"  # autograder test cell
    MANUAL = "manual"  # manually graded answer


class CellGrade(Model):
    """Points for one graded cell of one submission: from the autograder, from a trainer, or both."""

    __tablename__ = "graders_cell_grade"
    __table_args__ = (UniqueConstraint("submission_id", "grade_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("graders_submission.id", ondelete="CASCADE"), index=True
    )
    grade_id: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[CellKind] = mapped_column(Enum(CellKind, native_enum=False, length=10))
    max_points: Mapped[float]
    auto_points: Mapped[float | None]
    manual_points: Mapped[float | None]  # a trainer's points override the autograder's
    extra_credit: Mapped[float] = mapped_column(default=0.0)
    comment: Mapped[str] = mapped_column(Text, default="")
    graded_by_id: Mapped[int | None] = mapped_column(ForeignKey("lms_user.id", ondelete="SET NULL"))
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    submission: Mapped[Submission] = relationship(back_populates="cells")

    @property
    def points(self) -> float | None:
        """The points that count: a trainer's, else the autograder's; None while a manual cell waits."""
        return self.manual_points if self.manual_points is not None else self.auto_points

    @property
    def needs_manual(self) -> bool:
        return self.kind == CellKind.MANUAL and self.manual_points is None


class JobKind(enum.StrEnum):
    AUTOGRADE = "autograde"
    RELEASE = "release"  # nbgrader generate_assignment for an assignment


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class GradingJob(Model):
    """One piece of grading work. The broker only carries its id; this row is the truth, so a job whose
    worker died (or whose message was lost) is found by its expired lease and run again."""

    __tablename__ = "graders_job"
    __table_args__ = (Index("ix_graders_job_sweep", "state", "lease_expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(Enum(JobKind, native_enum=False, length=10))
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("graders_assignment.id", ondelete="CASCADE"), index=True
    )
    submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("graders_submission.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, native_enum=False, length=10), default=JobState.QUEUED
    )
    attempts: Mapped[int] = mapped_column(default=0)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker: Mapped[str] = mapped_column(String(200), default="")
    log: Mapped[str] = mapped_column(Text, default="")

    submission: Mapped[Submission | None] = relationship()
    assignment: Mapped[Assignment] = relationship()
