"""On-site check-in and the trainer's roster; attendance credits hours through lms.signals.

Rules (the trainee-facing pages and the API documentation repeat them):

* Check-in is open from ``OPENS_BEFORE_START`` (30 min) before the start until the end of the meeting,
  for active trainees of the session's cohort only, with the code on the trainer's screen (current or
  previous one). One check-in per trainee and meeting: ``Booking.checked_in_at`` is set once.
* Walk-ins: a trainee of the cohort with no seat (no booking, a cancelled one, or a place on the waiting
  list) may still check in when a seat is free; the seat is taken with the same guarded counter as a
  booking, so a walk-in never overfills the room and never takes a seat somebody booked. When the room
  is full the check-in is refused and the trainer decides on the roster.
* A check-in records ``attended``, or ``late`` when it comes more than ``LATE_MINUTES`` after the start;
  the trainer can change any mark on the roster (present, late, absent, excused).
* Recording ``attended`` or ``late`` sends ``lab_attendance_recorded`` with the attended minutes: from the
  check-in (or the start, if earlier) to the end, capped at the meeting's length. A trainee marked
  present without a check-in counts from the start, one marked late without a check-in from the late
  threshold. Absent and excused credit nothing. The core ledger keeps one credit per trainee and
  meeting, so marking again never credits twice.

Services flush but never commit. After a ``CheckinRefused`` the caller must roll back: a walk-in's seat
may already have been counted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from labs.checkin import (
    LATE_MINUTES,
    OPENS_BEFORE_START,
    CheckinCode,
    CodeStatus,
    attended_minutes,
    checkin_window,
    current_code,
    is_late,
    verify_code,
)
from labs.models import Attendance, Booking, BookingState, LabOccurrence, LabSession, OccurrenceStatus
from labs.services import _rows_changed, waitlist_position
from lms import signals as lms_signals
from lms.extensions import db
from lms.models import Enrollment, EnrollmentStatus, User
from lms.services import DomainError, audit
from lms.services.cohorts import can_manage_cohort
from lms.timeutil import utcnow


class CheckinRefused(DomainError):
    """A check-in was refused; ``reason`` is a stable code (the API's ``error``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AttendanceRefused(DomainError):
    """A roster mark cannot be recorded (cancelled booking, meeting not begun)."""


@dataclass(frozen=True)
class CheckinResult:
    booking: Booking
    walk_in: bool
    late: bool
    minutes: int  # credited now (0 when nothing was credited)


@dataclass(frozen=True)
class RosterRow:
    booking: Booking
    walk_in: bool
    position: int | None  # on the waiting list
    suggested: Attendance | None  # what the roster preselects when the trainer has not marked yet

    @property
    def user(self) -> User:
        return self.booking.user


def _fmt(dt: datetime, occurrence: LabOccurrence, pattern: str = "%H:%M") -> str:
    return dt.astimezone(ZoneInfo(occurrence.room.site.timezone)).strftime(pattern)


def can_run_checkin(user: Any, occurrence: LabOccurrence) -> bool:
    """The session's trainers, the cohort's trainers and the training base's admins."""
    if not getattr(user, "is_authenticated", False):
        return False
    session = occurrence.session
    return any(t.id == user.id for t in session.trainers) or can_manage_cohort(user, session.cohort)


def is_active_trainee(user: User, cohort_id: int) -> bool:
    return (
        db.session.scalar(
            select(Enrollment.id).where(
                Enrollment.cohort_id == cohort_id,
                Enrollment.user_id == user.id,
                Enrollment.status == EnrollmentStatus.ACTIVE,
            )
        )
        is not None
    )


def ensure_checkin_secret(occurrence: LabOccurrence) -> bool:
    """Give an occurrence without a secret one (rows made before check-in existed); True if changed."""
    if occurrence.checkin_secret:
        return False
    occurrence.checkin_secret = secrets.token_hex(20)
    db.session.flush()
    return True


def checkin_code(occurrence: LabOccurrence, now: datetime | None = None) -> CheckinCode:
    """The code the trainer's screen shows now."""
    ensure_checkin_secret(occurrence)
    return current_code(occurrence.checkin_secret, now or utcnow())


def checkin_is_open(occurrence: LabOccurrence, now: datetime | None = None) -> bool:
    opens, closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    now = now or utcnow()
    return occurrence.status == OccurrenceStatus.SCHEDULED and opens <= now < closes


def checkin_counts(occurrence: LabOccurrence) -> tuple[int, int]:
    """(checked in, holding a seat) for the live count on the trainer's screen."""
    checked_in, seated = db.session.execute(
        select(
            func.count(Booking.checked_in_at),
            func.coalesce(func.sum(case((Booking.state == BookingState.BOOKED, 1), else_=0)), 0),
        ).where(Booking.occurrence_id == occurrence.id, Booking.state != BookingState.CANCELLED)
    ).one()
    return int(checked_in or 0), int(seated or 0)


def booking_of(user: User, occurrence: LabOccurrence) -> Booking | None:
    return db.session.scalar(
        select(Booking).where(Booking.occurrence_id == occurrence.id, Booking.user_id == user.id)
    )


def _take_free_seat(occurrence: LabOccurrence) -> bool:
    return (
        _rows_changed(
            update(LabOccurrence)
            .where(LabOccurrence.id == occurrence.id, LabOccurrence.booked_count < LabOccurrence.seats)
            .values(booked_count=LabOccurrence.booked_count + 1)
        )
        == 1
    )


def check_in(
    trainee: User,
    occurrence: LabOccurrence,
    code: object,
    now: datetime | None = None,
    *,
    via: str = "web",
    late_minutes: int = LATE_MINUTES,
) -> CheckinResult:
    """Check a trainee in with the code from the trainer's screen; see the module's rules."""
    now = now or utcnow()
    session = occurrence.session
    if occurrence.status != OccurrenceStatus.SCHEDULED:
        raise CheckinRefused("cancelled", _("This lab meeting was cancelled."))
    if not is_active_trainee(trainee, session.cohort_id):
        raise CheckinRefused(
            "not_in_cohort",
            _(
                "This lab is for cohort %(cohort)s and you are not a trainee of it.",
                cohort=session.cohort.code,
            ),
        )
    opens, closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    if now < opens:
        raise CheckinRefused(
            "not_open",
            _(
                "Check-in opens at %(time)s, %(minutes)d minutes before the start.",
                time=_fmt(opens, occurrence, "%Y-%m-%d %H:%M"),
                minutes=int((occurrence.starts_at - opens).total_seconds() // 60),
            ),
        )
    if now >= closes:
        raise CheckinRefused("closed", _("This lab meeting has ended; check-in is closed."))
    booking = booking_of(trainee, occurrence)
    if booking is not None and booking.checked_in_at is not None:
        raise CheckinRefused(
            "already_checked_in",
            _("You checked in already at %(time)s.", time=_fmt(booking.checked_in_at, occurrence)),
        )
    ensure_checkin_secret(occurrence)
    status, step = verify_code(occurrence.checkin_secret, code, now)
    if status == CodeStatus.MALFORMED:
        raise CheckinRefused("malformed_code", _("Enter the 6 digits shown on the trainer's screen."))
    if status == CodeStatus.EXPIRED:
        raise CheckinRefused(
            "expired_code", _("That code has expired. Enter the code shown on the screen now.")
        )
    if status != CodeStatus.VALID:
        raise CheckinRefused(
            "wrong_code", _("That is not the code on the screen. Check the digits and try again.")
        )

    walk_in = booking is None or booking.state != BookingState.BOOKED
    if walk_in:
        if not _take_free_seat(occurrence):
            if booking is not None and booking.state == BookingState.WAITLISTED:
                message = _("You are on the waiting list and no seat is free. Please see the trainer.")
            else:
                message = _("You have no booking and every seat is taken. Please see the trainer.")
            raise CheckinRefused("full", message)
        if booking is None:
            booking = Booking(
                occurrence_id=occurrence.id,
                user_id=trainee.id,
                state=BookingState.BOOKED,
                created_at=now,
                details={"walk_in": True},
            )
            try:
                with db.session.begin_nested():
                    db.session.add(booking)
            except IntegrityError:
                # The same trainee's other request got there first; the caller rolls back our seat.
                raise CheckinRefused(
                    "already_checked_in", _("You have just checked in from another request.")
                ) from None
        else:
            booking.details = {**booking.details, "walk_in": True, "was": booking.state.value}
            booking.state, booking.waitlisted_at, booking.cancelled_at = BookingState.BOOKED, None, None
        db.session.flush()

    assert booking is not None
    # Set once: a second request for the same trainee changes no row and is refused.
    changed = _rows_changed(
        update(Booking)
        .where(Booking.id == booking.id, Booking.checked_in_at.is_(None))
        .values(checked_in_at=now)
    )
    if changed != 1:
        raise CheckinRefused("already_checked_in", _("You have checked in already."))
    db.session.refresh(booking)
    db.session.refresh(occurrence)
    late = is_late(now, occurrence.starts_at, late_minutes)
    booking.details = {**booking.details, "checkin": {"step": step, "via": via}}
    booking.attendance = Attendance.LATE if late else Attendance.ATTENDED
    db.session.flush()
    audit.record("labs.checked_in", trainee, booking, walk_in=walk_in, late=late, via=via)
    minutes = _credit(booking, actor=None, late_minutes=late_minutes)
    return CheckinResult(booking=booking, walk_in=walk_in, late=late, minutes=minutes)


def credited_minutes(booking: Booking, mark: Attendance, late_minutes: int = LATE_MINUTES) -> int:
    """The minutes a mark is worth (0 for absent and excused)."""
    if mark not in (Attendance.ATTENDED, Attendance.LATE):
        return 0
    occurrence = booking.occurrence
    arrived = booking.checked_in_at
    if arrived is None and mark == Attendance.LATE:
        arrived = occurrence.starts_at + timedelta(minutes=late_minutes)
    return attended_minutes(occurrence.starts_at, occurrence.ends_at, arrived)


def _credit(booking: Booking, actor: User | None, late_minutes: int = LATE_MINUTES) -> int:
    """Send lab_attendance_recorded for an attended or late mark; the ledger keeps the first credit."""
    mark = booking.attendance
    if mark is None:
        return 0
    minutes = credited_minutes(booking, mark, late_minutes)
    if minutes <= 0:
        return 0
    occurrence = booking.occurrence
    session: LabSession = occurrence.session
    evidence = {
        "kind": "lab_attendance",
        "occurrence_id": occurrence.id,
        "session_id": session.id,
        "unit_key": session.unit_key,
        "room": occurrence.room.code,
        "site": occurrence.room.site.code,
        "starts_at": occurrence.starts_at.isoformat(),
        "ends_at": occurrence.ends_at.isoformat(),
        "attendance": mark.value,
        "checked_in_at": booking.checked_in_at.isoformat() if booking.checked_in_at else None,
        "walk_in": bool(booking.details.get("walk_in")),
        "recorded_by": actor.id if actor is not None else None,
        "booking_id": booking.id,
    }
    lms_signals.lab_attendance_recorded.send(
        None,
        user=booking.user,
        cohort=session.cohort,
        occurrence_id=occurrence.id,
        minutes=minutes,
        evidence=evidence,
    )
    return minutes


def mark_attendance(
    booking: Booking,
    mark: Attendance,
    actor: User,
    now: datetime | None = None,
    *,
    late_minutes: int = LATE_MINUTES,
) -> bool:
    """Record the trainer's mark (overriding what check-in recorded); True when it changed.

    Present, late and absent can be marked from the opening of check-in on; excused at any time.
    """
    now = now or utcnow()
    occurrence = booking.occurrence
    if booking.state == BookingState.CANCELLED:
        raise AttendanceRefused(_("%(name)s cancelled this booking.", name=booking.user.real_name))
    opens, _closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    if mark != Attendance.EXCUSED and now < opens:
        raise AttendanceRefused(_("Attendance can be marked once check-in opens."))
    if booking.attendance == mark:
        return False
    previous = booking.attendance
    booking.attendance = mark
    booking.details = {
        **booking.details,
        "marked_by": actor.id,
        "marked_at": now.isoformat(),
    }
    db.session.flush()
    audit.record(
        "labs.attendance_marked",
        actor,
        booking,
        attendance=mark.value,
        previous=previous.value if previous else None,
    )
    _credit(booking, actor, late_minutes)
    return True


def suggested_mark(booking: Booking, now: datetime, late_minutes: int = LATE_MINUTES) -> Attendance | None:
    """What the roster preselects for an unmarked trainee: the check-in's verdict, or absent once the
    meeting has ended."""
    occurrence = booking.occurrence
    if booking.checked_in_at is not None:
        late = is_late(booking.checked_in_at, occurrence.starts_at, late_minutes)
        return Attendance.LATE if late else Attendance.ATTENDED
    if now >= occurrence.ends_at:
        return Attendance.ABSENT
    return None


def roster(
    occurrence: LabOccurrence, now: datetime | None = None, late_minutes: int = LATE_MINUTES
) -> list[RosterRow]:
    """Everyone with a seat or a place on the waiting list (walk-ins included): seats first, then the
    waiting list in order, each group by name."""
    now = now or utcnow()
    bookings = db.session.scalars(
        select(Booking)
        .where(Booking.occurrence_id == occurrence.id, Booking.state != BookingState.CANCELLED)
        .order_by(Booking.id)
    ).all()
    rows = [
        RosterRow(
            booking=b,
            walk_in=bool(b.details.get("walk_in")),
            position=waitlist_position(b),
            suggested=None if b.attendance is not None else suggested_mark(b, now, late_minutes),
        )
        for b in bookings
    ]
    rows.sort(
        key=lambda r: (
            r.booking.state != BookingState.BOOKED,
            r.position or 0,
            r.user.real_name,
            r.user.username,
        )
    )
    return rows


def open_checkins(trainee: User, now: datetime | None = None) -> list[LabOccurrence]:
    """Meetings of the trainee's cohorts whose check-in is open now."""
    now = now or utcnow()
    cohort_ids = select(Enrollment.cohort_id).where(
        Enrollment.user_id == trainee.id, Enrollment.status == EnrollmentStatus.ACTIVE
    )
    return list(
        db.session.scalars(
            select(LabOccurrence)
            .join(LabSession)
            .where(
                LabSession.cohort_id.in_(cohort_ids),
                LabOccurrence.status == OccurrenceStatus.SCHEDULED,
                LabOccurrence.starts_at <= now + OPENS_BEFORE_START,
                LabOccurrence.ends_at > now,
            )
            .order_by(LabOccurrence.starts_at)
        )
    )
