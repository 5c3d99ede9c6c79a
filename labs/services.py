"""Labs services: scheduling with conflict checks, and bookings whose capacity the database guards."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _
from sqlalchemy import Select, and_, func, or_, select, update
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
    Site,
    session_trainer,
)
from labs.recurrence import Meeting, RecurrenceError, expand
from lms.extensions import db
from lms.models import Cohort, Enrollment, EnrollmentStatus, Institution, InstitutionKind, Role, User
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
            .where(
                LabOccurrence.id == occurrence.id,
                LabOccurrence.booked_count < LabOccurrence.seats,
                # A meeting cancelled by a concurrent request gives no seats.
                LabOccurrence.status == OccurrenceStatus.SCHEDULED,
            )
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
    if booking.checked_in_at is not None or now >= booking.occurrence.starts_at:
        raise BookingRefused(_("A lab booking cannot be cancelled once the meeting has started."))
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


# --- Who sees which meetings (the labs API and the check-in pages) ---------------------------------------


def visible_occurrences_query(user: User) -> Select[LabOccurrence]:
    """Meetings the user may see: every one for platform admins; their training bases' for admins; those
    of the cohorts they train or the sessions they teach for trainers; their active cohorts' for
    trainees."""
    query = select(LabOccurrence).join(LabSession, LabOccurrence.session_id == LabSession.id)
    if user.is_platform_admin:
        return query
    admin_of = [g.institution_id for g in user.grants if g.role == Role.ADMIN and g.institution_id]
    taught_sessions = select(session_trainer.c.session_id).where(session_trainer.c.user_id == user.id)
    taught_cohorts = select(Cohort.id).where(Cohort.trainers.any(User.id == user.id))
    enrolled = select(Enrollment.cohort_id).where(
        Enrollment.user_id == user.id, Enrollment.status == EnrollmentStatus.ACTIVE
    )
    administered = select(Cohort.id).where(Cohort.training_base_id.in_(admin_of))
    return query.where(
        or_(
            LabSession.id.in_(taught_sessions),
            LabSession.cohort_id.in_(taught_cohorts),
            LabSession.cohort_id.in_(enrolled),
            LabSession.cohort_id.in_(administered),
        )
    )


def can_see_occurrence(user: User, occurrence: LabOccurrence) -> bool:
    return (
        db.session.scalar(
            visible_occurrences_query(user)
            .where(LabOccurrence.id == occurrence.id)
            .with_only_columns(LabOccurrence.id)
        )
        is not None
    )


def upcoming_occurrences(
    user: User, now: datetime | None = None, limit: int = 100, offset: int = 0
) -> list[LabOccurrence]:
    """Visible meetings that have not ended yet, soonest first (cancelled ones included, marked so)."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            visible_occurrences_query(user)
            .where(LabOccurrence.ends_at > now)
            .order_by(LabOccurrence.starts_at, LabOccurrence.id)
            .limit(limit)
            .offset(offset)
        )
    )


def waitlisted_counts(occurrence_ids: list[int]) -> dict[int, int]:
    """How many trainees wait for a seat, per occurrence id (absent: none)."""
    if not occurrence_ids:
        return {}
    rows = db.session.execute(
        select(Booking.occurrence_id, func.count())
        .where(Booking.occurrence_id.in_(occurrence_ids), Booking.state == BookingState.WAITLISTED)
        .group_by(Booking.occurrence_id)
    )
    return {occurrence_id: int(count) for occurrence_id, count in rows}


# --- Sites and rooms (the admin pages) ------------------------------------------------------------------


class InvalidPlace(DomainError):
    """A site or room field is not acceptable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def create_site(
    *,
    institution: Institution,
    code: str,
    name: str,
    name_en: str = "",
    address: str = "",
    timezone: str = "Asia/Shanghai",
    actor: User | None = None,
) -> Site:
    """Add a lab site of a training base; site codes are unique across the platform."""
    code, name = code.strip(), name.strip()
    if not code:
        raise InvalidPlace("code", _("A code is required."))
    if not name:
        raise InvalidPlace("name", _("A name is required."))
    if institution.kind != InstitutionKind.TRAINING_BASE:
        raise InvalidPlace("institution_id", _("Lab sites belong to a training base."))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPlace(
            "timezone", _("'%(zone)s' is not a known time zone (e.g. Asia/Shanghai).", zone=timezone)
        ) from None
    if db.session.scalar(select(Site.id).where(Site.code == code)) is not None:
        raise InvalidPlace("code", _("Site code '%(code)s' is already in use.", code=code))
    site = Site(
        institution=institution,
        code=code,
        name=name,
        name_en=name_en.strip(),
        address=address.strip(),
        timezone=timezone,
    )
    db.session.add(site)
    db.session.flush()
    audit.record("labs.site_created", actor, site, code=code)
    return site


def create_room(
    *,
    site: Site,
    code: str,
    name: str,
    seats: int,
    workstations: int = 0,
    gpu_seats: int = 0,
    open_from: time = time(8, 0),
    open_until: time = time(21, 0),
    open_weekdays: list[int] | None = None,
    actor: User | None = None,
) -> Room:
    """Add a room to a site, with its seats and its opening hours (local time, ISO weekdays)."""
    code, name = code.strip(), name.strip()
    weekdays = sorted(set(open_weekdays if open_weekdays is not None else range(1, 8)))
    if not code:
        raise InvalidPlace("code", _("A code is required."))
    if not name:
        raise InvalidPlace("name", _("A name is required."))
    if seats < 1:
        raise InvalidPlace("seats", _("A room needs at least one seat."))
    if workstations < 0:
        raise InvalidPlace("workstations", _("The number of workstations cannot be negative."))
    if not 0 <= gpu_seats <= seats:
        raise InvalidPlace("gpu_seats", _("GPU seats must be between 0 and the number of seats."))
    if open_until <= open_from:
        raise InvalidPlace("open_until", _("The room must close after it opens."))
    if not weekdays or any(day not in range(1, 8) for day in weekdays):
        raise InvalidPlace("open_weekdays", _("Choose at least one weekday."))
    if db.session.scalar(select(Room.id).where(Room.site_id == site.id, Room.code == code)) is not None:
        raise InvalidPlace("code", _("Site %(site)s already has a room %(code)s.", site=site.code, code=code))
    room = Room(
        site=site,
        code=code,
        name=name,
        seats=seats,
        workstations=workstations,
        gpu_seats=gpu_seats,
        open_from=open_from,
        open_until=open_until,
        open_weekdays=weekdays,
    )
    db.session.add(room)
    db.session.flush()
    audit.record("labs.room_created", actor, room, site=site.code, code=code, seats=seats)
    return room


# --- Cancelling one meeting and assigning a whole cohort (the scheduling pages) -------------------------


def cancel_occurrence(
    occurrence: LabOccurrence, actor: User, reason: str, now: datetime | None = None
) -> list[Booking]:
    """Cancel one meeting of a series: its status becomes cancelled and its iCalendar SEQUENCE goes up;
    every booking and waiting place in it is cancelled too (the rows stay, with the reason, for the
    record). Returns the bookings it cancelled. Audited."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise InvalidSchedule(_("Give a reason: the trainees who booked will see it."))
    if occurrence.status == OccurrenceStatus.CANCELLED:
        raise InvalidSchedule(_("This lab meeting is already cancelled."))
    if occurrence.ends_at <= now:
        raise InvalidSchedule(_("A lab meeting that has ended cannot be cancelled."))
    # Guarded by the status, so two cancellations at once raise the sequence only once.
    changed = _rows_changed(
        update(LabOccurrence)
        .where(LabOccurrence.id == occurrence.id, LabOccurrence.status == OccurrenceStatus.SCHEDULED)
        .values(status=OccurrenceStatus.CANCELLED, sequence=LabOccurrence.sequence + 1, booked_count=0)
    )
    if changed != 1:
        raise InvalidSchedule(_("This lab meeting is already cancelled."))
    db.session.refresh(occurrence)
    bookings = list(
        db.session.scalars(
            select(Booking)
            .where(Booking.occurrence_id == occurrence.id, Booking.state != BookingState.CANCELLED)
            .order_by(Booking.id)
        )
    )
    counts = {BookingState.BOOKED: 0, BookingState.WAITLISTED: 0}
    for booking in bookings:
        counts[booking.state] += 1
        booking.details = {
            **(booking.details or {}),
            "occurrence_cancelled_at": now.isoformat(),
            "cancel_reason": reason,
            "state_before": booking.state.value,
        }
        booking.state, booking.cancelled_at = BookingState.CANCELLED, now
    db.session.flush()
    audit.record(
        "labs.occurrence_cancelled",
        actor,
        occurrence,
        reason=reason,
        booked=counts[BookingState.BOOKED],
        waitlisted=counts[BookingState.WAITLISTED],
    )
    for booking in bookings:
        signals.booking_cancelled.send(None, booking=booking, actor=actor)
    return bookings


@dataclass(frozen=True)
class CohortAssignment:
    """What assigning a cohort to a meeting did."""

    booked: list[Booking]
    waitlisted: list[Booking]
    already: int  # trainees who held a seat or a waiting place already (left as they were)
    refused: list[tuple[User, str]]  # trainees who could not be booked, with the reason


def assign_cohort(occurrence: LabOccurrence, actor: User, now: datetime | None = None) -> CohortAssignment:
    """Book every active trainee of the meeting's cohort, in enrolment order; once the seats are gone the
    rest join the waiting list in that order. Trainees holding a place already keep it; one who has
    another lab at that time is refused and named. Audited.

    Raises BookingRefused when the meeting is cancelled or booking has closed, and AlreadyBooked when a
    trainee's own request booked at the same moment (the caller rolls back and may try again).
    """
    now = now or utcnow()
    session = occurrence.session
    if occurrence.status != OccurrenceStatus.SCHEDULED:
        raise BookingRefused(_("This lab meeting was cancelled."))
    if now >= occurrence.starts_at - timedelta(minutes=session.booking_cutoff_minutes):
        raise BookingRefused(
            _("Booking closed %(minutes)d minutes before the start.", minutes=session.booking_cutoff_minutes)
        )
    enrollments = db.session.scalars(
        select(Enrollment)
        .where(Enrollment.cohort_id == session.cohort_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .order_by(Enrollment.enrolled_at, Enrollment.id)
    ).all()
    holding = set(
        db.session.scalars(
            select(Booking.user_id).where(
                Booking.occurrence_id == occurrence.id, Booking.state != BookingState.CANCELLED
            )
        )
    )
    booked: list[Booking] = []
    waitlisted: list[Booking] = []
    refused: list[tuple[User, str]] = []
    already = 0
    for enrollment in enrollments:
        if enrollment.user_id in holding:
            already += 1
            continue
        try:
            booking = book_seat(enrollment.user, occurrence, now=now)
        except AlreadyBooked:
            raise
        except BookingRefused as exc:
            refused.append((enrollment.user, str(exc)))
            continue
        (booked if booking.state == BookingState.BOOKED else waitlisted).append(booking)
    audit.record(
        "labs.cohort_assigned",
        actor,
        occurrence,
        booked=len(booked),
        waitlisted=len(waitlisted),
        already=already,
        refused=[user.id for user, _reason in refused],
    )
    return CohortAssignment(booked, waitlisted, already, refused)
