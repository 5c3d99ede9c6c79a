"""Labs: sites, rooms, lab sessions (series) expanded into occurrences, and bookings."""

from __future__ import annotations

import enum
from datetime import datetime, time
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Enum, ForeignKey, Index, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms.extensions import Model, db
from lms.models import Cohort, Institution, User
from lms.timeutil import UTCDateTime, utcnow


class Site(Model):
    """A place where a training base runs labs (a campus building, a company's training centre)."""

    __tablename__ = "labs_site"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")

    institution: Mapped[Institution] = relationship(lazy="joined")
    rooms: Mapped[list[Room]] = relationship(back_populates="site", order_by="Room.code")


class Room(Model):
    """A lab room with a fixed number of seats; some workstations may have GPUs."""

    __tablename__ = "labs_room"
    __table_args__ = (
        UniqueConstraint("site_id", "code"),
        CheckConstraint("seats > 0", name="seats_positive"),
        CheckConstraint("gpu_seats >= 0 AND gpu_seats <= seats", name="gpu_seats_within_seats"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("labs_site.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    seats: Mapped[int]
    workstations: Mapped[int] = mapped_column(default=0)
    gpu_seats: Mapped[int] = mapped_column(default=0)
    # Local opening hours on the given ISO weekdays (1 = Monday).
    open_from: Mapped[time] = mapped_column(default=time(8, 0))
    open_until: Mapped[time] = mapped_column(default=time(21, 0))
    open_weekdays: Mapped[list[int]] = mapped_column(JSON, default=lambda: [1, 2, 3, 4, 5, 6, 7])

    site: Mapped[Site] = relationship(back_populates="rooms", lazy="joined")


session_trainer = Table(
    "labs_session_trainer",
    db.metadata,
    Column("session_id", ForeignKey("labs_session.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("lms_user.id", ondelete="CASCADE"), primary_key=True),
)


class LabSession(Model):
    """A series of lab meetings for one course lab unit and cohort: a recurrence rule in a room."""

    __tablename__ = "labs_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id", ondelete="CASCADE"), index=True)
    unit_key: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[int] = mapped_column(ForeignKey("labs_room.id"), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    # The first meeting's local start (naive, in the site's zone) and an RFC 5545 RRULE ("" = one-off).
    first_start_local: Mapped[datetime]
    duration_minutes: Mapped[int]
    rrule: Mapped[str] = mapped_column(String(300), default="")
    booking_cutoff_minutes: Mapped[int] = mapped_column(default=60)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("lms_user.id"))
    override_reason: Mapped[str] = mapped_column(String(500), default="")

    cohort: Mapped[Cohort] = relationship(lazy="joined")
    room: Mapped[Room] = relationship(lazy="joined")
    trainers: Mapped[list[User]] = relationship(secondary=session_trainer, lazy="selectin")
    occurrences: Mapped[list[LabOccurrence]] = relationship(
        back_populates="session", order_by="LabOccurrence.starts_at", cascade="all, delete-orphan"
    )


class OccurrenceStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class LabOccurrence(Model):
    """One meeting of a lab session. ``booked_count`` is the seat counter the database guards."""

    __tablename__ = "labs_occurrence"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("booked_count >= 0 AND booked_count <= seats", name="booked_within_seats"),
        Index("ix_labs_occurrence_room_time", "room_id", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("labs_session.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("labs_room.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seats: Mapped[int]
    booked_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[OccurrenceStatus] = mapped_column(
        Enum(OccurrenceStatus, native_enum=False, length=10), default=OccurrenceStatus.SCHEDULED
    )
    # iCalendar SEQUENCE: raised on every change so phone calendars update.
    sequence: Mapped[int] = mapped_column(default=0)
    checkin_secret: Mapped[str] = mapped_column(String(64), default="")

    session: Mapped[LabSession] = relationship(back_populates="occurrences", lazy="joined")
    room: Mapped[Room] = relationship(lazy="joined")


class BookingState(enum.StrEnum):
    BOOKED = "booked"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


class Attendance(enum.StrEnum):
    ATTENDED = "attended"
    LATE = "late"
    ABSENT = "absent"
    EXCUSED = "excused"


class Booking(Model):
    """A trainee's seat (or place on the waiting list) in one occurrence."""

    __tablename__ = "labs_booking"
    __table_args__ = (UniqueConstraint("occurrence_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("labs_occurrence.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    state: Mapped[BookingState] = mapped_column(Enum(BookingState, native_enum=False, length=12))
    attendance: Mapped[Attendance | None] = mapped_column(Enum(Attendance, native_enum=False, length=10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Waiting-list order: first come, first served (the id breaks ties within one clock tick).
    waitlisted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    occurrence: Mapped[LabOccurrence] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")
