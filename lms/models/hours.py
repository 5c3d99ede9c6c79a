import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from lms.extensions import Model
from lms.timeutil import UTCDateTime, utcnow


class HoursSource(enum.StrEnum):
    ONLINE_UNIT = "online_unit"
    LAB_ATTENDANCE = "lab_attendance"
    EXERCISE = "exercise"
    ADJUSTMENT = "adjustment"


class Delivery(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class HoursEntry(Model):
    """One line of the append-only training-hours ledger; corrections are new lines, never edits."""

    __tablename__ = "lms_hours_entry"
    __table_args__ = (UniqueConstraint("user_id", "source", "source_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id"), index=True)
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("lms_cohort.id"), index=True)
    source: Mapped[HoursSource] = mapped_column(Enum(HoursSource, native_enum=False, length=20))
    # What the entry credits, unique per user and source so a retried credit is not counted twice.
    source_ref: Mapped[str] = mapped_column(String(200))
    delivery: Mapped[Delivery] = mapped_column(Enum(Delivery, native_enum=False, length=10))
    minutes: Mapped[int]
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("lms_user.id"))


class LedgerIsAppendOnly(Exception):
    """Raised when code tries to change or delete a ledger line."""


@event.listens_for(Session, "before_flush")
def _refuse_ledger_edits(session: Session, flush_context, instances) -> None:
    for obj in session.deleted:
        if isinstance(obj, HoursEntry):
            raise LedgerIsAppendOnly("hours entries cannot be deleted; add a correcting entry")
    for obj in session.dirty:
        if isinstance(obj, HoursEntry) and session.is_modified(obj, include_collections=False):
            raise LedgerIsAppendOnly("hours entries cannot be changed; add a correcting entry")
