"""Labs services: scheduling with conflict checks, and bookings whose capacity the database guards."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from labs import signals
from labs.models import (
    Booking,
    BookingState,
    LabOccurrence,
    LabSession,
    OccurrenceStatus,
    Room,
    session_trainer,
)
from labs.recurrence import Meeting, RecurrenceError, expand
from lms.extensions import db
from lms.models import Cohort, Enrollment, EnrollmentStatus, Role, User
from lms.services import DomainError, audit
from lms.timeutil import utcnow


class InvalidSchedule(DomainError):
    pass


@dataclass(frozen=True)
class Clash:
    """One reason a proposed meeting cannot take place as planned."""

    kind: str  # room | trainer | cohort | hours | seats
    message: str
    meeting: Meeting | None = None
    occurrence_id: int | None = None


class SessionConflict(DomainError):
    def __init__(self, clashes: list[Clash]) -> None:
        super().__init__("; ".join(c.message for c in clashes[:5]) + (" …" if len(clashes) > 5 else ""))
        self.clashes = clashes


class BookingRefused(DomainError):
    """A booking cannot be made (closed, not enrolled, overlapping, already booked)."""


class AlreadyBooked(BookingRefused):
    """The trainee holds a place already; the caller must roll back (the seat counter may have moved)."""

    def __init__(self, message: str, booking: Booking | None) -> None:
        super().__init__(message)
        self.booking = booking


def _rows_changed(statement) -> int:
    """Execute an UPDATE and say how many rows it changed."""
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    return int(cast(CursorResult, result).rowcount)


def active_trainee_count(cohort: Cohort) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                Enrollment.cohort_id == cohort.id, Enrollment.status == EnrollmentStatus.ACTIVE
            )
        )
        or 0
    )


def _local(dt: datetime, zone: str) -> datetime:
    return dt.astimezone(ZoneInfo(zone))


def find_clashes(
    meetings: list[Meeting],
    room: Room,
    trainers: list[User],
    cohort: Cohort,
    exclude_session_id: int | None = None,
) -> list[Clash]:
    """Every clash of the proposed meetings: one overlap query for room, trainers and cohort, plus the
    room's opening hours and seats."""
    clashes: list[Clash] = []
    zone = room.site.timezone
    for meeting in meetings:
        start, end = _local(meeting.starts_at, zone), _local(meeting.ends_at, zone)
        if (
            start.isoweekday() not in room.open_weekdays
            or start.time() < room.open_from
            or end.time() > room.open_until
            or end.date() != start.date()
        ):
            clashes.append(
                Clash(
                    "hours",
                    _(
                        "%(when)s is outside the opening hours of room %(room)s (%(open)s–%(close)s).",
                        when=start.strftime("%Y-%m-%d %H:%M"),
                        room=room.code,
                        open=room.open_from.strftime("%H:%M"),
                        close=room.open_until.strftime("%H:%M"),
                    ),
                    meeting,
                )
            )
    trainees = active_trainee_count(cohort)
    if trainees > room.seats:
        clashes.append(
            Clash(
                "seats",
                _(
                    "Cohort %(cohort)s has %(n)d trainees but room %(room)s has %(seats)d seats.",
                    cohort=cohort.code,
                    n=trainees,
                    room=room.code,
                    seats=room.seats,
                ),
            )
        )
    if not meetings:
        return clashes
    trainer_ids = [t.id for t in trainers]
    overlaps = or_(
        *(and_(LabOccurrence.starts_at < m.ends_at, LabOccurrence.ends_at > m.starts_at) for m in meetings)
    )
    who = [LabOccurrence.room_id == room.id, LabSession.cohort_id == cohort.id]
    if trainer_ids:
        who.append(
            LabSession.id.in_(
                select(session_trainer.c.session_id).where(session_trainer.c.user_id.in_(trainer_ids))
            )
        )
    query = (
        select(LabOccurrence)
        .join(LabSession)
        .where(LabOccurrence.status == OccurrenceStatus.SCHEDULED, overlaps, or_(*who))
    )
    if exclude_session_id is not None:
        query = query.where(LabSession.id != exclude_session_id)
    for other in db.session.scalars(query):
        meeting = next(m for m in meetings if other.starts_at < m.ends_at and other.ends_at > m.starts_at)
        when = _local(other.starts_at, zone).strftime("%Y-%m-%d %H:%M")
        if other.room_id == room.id:
            clashes.append(
                Clash(
                    "room",
                    _(
                        "Room %(room)s is taken at %(when)s by cohort %(cohort)s.",
                        room=room.code,
                        when=when,
                        cohort=other.session.cohort.code,
                    ),
                    meeting,
                    other.id,
                )
            )
        if other.session.cohort_id == cohort.id:
            clashes.append(
                Clash(
                    "cohort",
                    _("Cohort %(cohort)s already has a lab at %(when)s.", cohort=cohort.code, when=when),
                    meeting,
                    other.id,
                )
            )
        for trainer in other.session.trainers:
            if trainer.id in trainer_ids:
                clashes.append(
                    Clash(
                        "trainer",
                        _("Trainer %(name)s already teaches at %(when)s.", name=trainer.real_name, when=when),
                        meeting,
                        other.id,
                    )
                )
    return clashes


def create_lab_session(
    *,
    cohort: Cohort,
    unit_key: str,
    room: Room,
    trainers: list[User],
    first_start_local: datetime,
    duration_minutes: int,
    rrule: str = "",
    title: str = "",
    booking_cutoff_minutes: int = 60,
    actor: User | None = None,
    override_reason: str = "",
) -> LabSession:
    """Schedule a series; raises SessionConflict naming every clash unless an admin overrides with a
    reason (audited)."""
    try:
        meetings = expand(first_start_local, duration_minutes, rrule, room.site.timezone)
    except RecurrenceError as exc:
        raise InvalidSchedule(str(exc)) from exc
    for trainer in trainers:
        if not trainer.has_role(Role.TRAINER):
            raise InvalidSchedule(_("%(name)s is not a trainer.", name=trainer.real_name))
    clashes = find_clashes(meetings, room, trainers, cohort)
    if clashes:
        if not override_reason.strip():
            raise SessionConflict(clashes)
        if actor is None or not actor.has_role(Role.ADMIN):
            raise SessionConflict(clashes)
    session = LabSession(
        cohort=cohort,
        unit_key=unit_key,
        room=room,
        trainers=list(trainers),
        title=title,
        first_start_local=first_start_local,
        duration_minutes=duration_minutes,
        rrule=rrule,
        booking_cutoff_minutes=booking_cutoff_minutes,
        created_by_id=actor.id if actor else None,
        override_reason=override_reason.strip() if clashes else "",
    )
    for meeting in meetings:
        session.occurrences.append(
            LabOccurrence(
                room=room,
                starts_at=meeting.starts_at,
                ends_at=meeting.ends_at,
                seats=room.seats,
                checkin_secret=secrets.token_hex(20),
            )
        )
    db.session.add(session)
    db.session.flush()
    audit.record("labs.session_created", actor, session, occurrences=len(meetings))
    if clashes:
        audit.record(
            "labs.conflict_overridden",
            actor,
            session,
            reason=override_reason.strip(),
            clashes=[c.message for c in clashes],
        )
    return session


def _active_booking(user: User, occurrence: LabOccurrence) -> Booking | None:
    return db.session.scalar(
        select(Booking).where(Booking.occurrence_id == occurrence.id, Booking.user_id == user.id)
    )


def book_seat(trainee: User, occurrence: LabOccurrence, now: datetime | None = None) -> Booking:
    """Book a seat, or a place on the waiting list when the seats are gone.

    The seat counter is raised by one conditional UPDATE, so however many requests race for the last
    seat, the database lets exactly one of them through.
    """
    now = now or utcnow()
    session = occurrence.session
    if occurrence.status != OccurrenceStatus.SCHEDULED:
        raise BookingRefused(_("This lab meeting was cancelled."))
    cutoff = occurrence.starts_at - timedelta(minutes=session.booking_cutoff_minutes)
    if now >= cutoff:
        raise BookingRefused(
            _("Booking closed %(minutes)d minutes before the start.", minutes=session.booking_cutoff_minutes)
        )
    enrolled = db.session.scalar(
        select(Enrollment.id).where(
            Enrollment.cohort_id == session.cohort_id,
            Enrollment.user_id == trainee.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
    )
    if enrolled is None:
        raise BookingRefused(
            _("Only trainees of cohort %(cohort)s can book this lab.", cohort=session.cohort.code)
        )
    existing = _active_booking(trainee, occurrence)
    if existing is not None and existing.state != BookingState.CANCELLED:
        raise AlreadyBooked(_("You already have a place in this lab meeting."), existing)
    clash = db.session.scalar(
        select(LabOccurrence)
        .join(Booking)
        .where(
            Booking.user_id == trainee.id,
            Booking.state != BookingState.CANCELLED,
            LabOccurrence.id != occurrence.id,
            LabOccurrence.status == OccurrenceStatus.SCHEDULED,
            LabOccurrence.starts_at < occurrence.ends_at,
            LabOccurrence.ends_at > occurrence.starts_at,
        )
    )
    if clash is not None:
        raise BookingRefused(
            _(
                "You already have a lab booked at that time (%(when)s).",
                when=_local(clash.starts_at, occurrence.room.site.timezone).strftime("%Y-%m-%d %H:%M"),
            )
        )
    got_seat = (
        _rows_changed(
            update(LabOccurrence)
            .where(LabOccurrence.id == occurrence.id, LabOccurrence.booked_count < LabOccurrence.seats)
            .values(booked_count=LabOccurrence.booked_count + 1)
        )
        == 1
    )
    state = BookingState.BOOKED if got_seat else BookingState.WAITLISTED
    if existing is not None:  # re-booking after a cancellation reuses the row
        existing.state, existing.cancelled_at = state, None
        existing.created_at = now
        existing.waitlisted_at = None if got_seat else now
        booking = existing
    else:
        booking = Booking(
            occurrence_id=occurrence.id,
            user_id=trainee.id,
            state=state,
            created_at=now,
            waitlisted_at=None if got_seat else now,
        )
        try:
            with db.session.begin_nested():
                db.session.add(booking)
        except IntegrityError:
            # The same trainee's other request (a double click) inserted first; that one stands.
            raise AlreadyBooked(
                _("You already have a place in this lab meeting."), _active_booking(trainee, occurrence)
            ) from None
    db.session.flush()
    db.session.refresh(occurrence)
    signals.booking_created.send(None, booking=booking)
    return booking


def cancel_booking(booking: Booking, actor: User, now: datetime | None = None) -> Booking | None:
    """Cancel a booking; a freed seat goes to the first trainee on the waiting list (returned)."""
    now = now or utcnow()
    if booking.state == BookingState.CANCELLED:
        return None
    had_seat = booking.state == BookingState.BOOKED
    booking.state, booking.cancelled_at = BookingState.CANCELLED, now
    db.session.flush()
    promoted = None
    if had_seat:
        promoted = _promote_first_waiting(booking.occurrence_id)
        if promoted is None:
            db.session.execute(
                update(LabOccurrence)
                .where(LabOccurrence.id == booking.occurrence_id)
                .values(booked_count=LabOccurrence.booked_count - 1)
                .execution_options(synchronize_session=False)
            )
    audit.record("labs.booking_cancelled", actor, booking, promoted=promoted.id if promoted else None)
    db.session.flush()
    signals.booking_cancelled.send(None, booking=booking, actor=actor)
    if promoted is not None:
        signals.booking_promoted.send(None, booking=promoted)
    return promoted


def _promote_first_waiting(occurrence_id: int) -> Booking | None:
    while True:
        first = db.session.scalar(
            select(Booking.id)
            .where(Booking.occurrence_id == occurrence_id, Booking.state == BookingState.WAITLISTED)
            .order_by(Booking.waitlisted_at, Booking.id)
            .limit(1)
        )
        if first is None:
            return None
        # Guarded by the state, so two cancellations at once cannot promote the same trainee twice.
        changed = _rows_changed(
            update(Booking)
            .where(Booking.id == first, Booking.state == BookingState.WAITLISTED)
            .values(state=BookingState.BOOKED, waitlisted_at=None)
        )
        if changed == 1:
            booking = db.session.get(Booking, first)
            assert booking is not None
            db.session.refresh(booking)
            booking.details = {**booking.details, "promoted_at": utcnow().isoformat()}
            return booking


def waitlist_position(booking: Booking) -> int | None:
    """1 for the first trainee on the waiting list; None when the booking is not waiting."""
    if booking.state != BookingState.WAITLISTED or booking.waitlisted_at is None:
        return None
    ahead = db.session.scalar(
        select(func.count()).where(
            Booking.occurrence_id == booking.occurrence_id,
            Booking.state == BookingState.WAITLISTED,
            or_(
                Booking.waitlisted_at < booking.waitlisted_at,
                and_(Booking.waitlisted_at == booking.waitlisted_at, Booking.id < booking.id),
            ),
        )
    )
    return int(ahead or 0) + 1
