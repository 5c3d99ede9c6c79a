import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lms.extensions import Model
from lms.timeutil import UTCDateTime, utcnow


class ProgressStatus(enum.StrEnum):
    STARTED = "started"
    COMPLETED = "completed"


class UnitProgress(Model):
    """A trainee's progress on one unit in one cohort, kept by the unit's stable key across versions."""

    __tablename__ = "lms_unit_progress"
    __table_args__ = (UniqueConstraint("user_id", "cohort_id", "unit_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id", ondelete="CASCADE"), index=True)
    unit_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[ProgressStatus] = mapped_column(
        Enum(ProgressStatus, native_enum=False, length=10), default=ProgressStatus.STARTED
    )
    # Seconds of active reading the server accepted from heartbeats (capped by real elapsed time).
    active_seconds: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    credited: Mapped[bool] = mapped_column(default=False)
    best_score: Mapped[float | None]
    attempts: Mapped[int] = mapped_column(default=0)


class QuizAttempt(Model):
    """One submitted quiz: the answers, what each question scored, and the total."""

    __tablename__ = "lms_quiz_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id", ondelete="CASCADE"), index=True)
    unit_key: Mapped[str] = mapped_column(String(64), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("lms_course_version.id"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    results: Mapped[dict[str, bool]] = mapped_column(JSON)
    score: Mapped[float]
    max_score: Mapped[float]
    passed: Mapped[bool]
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
