"""Scheduling conflicts and bookings; capacity under concurrency is enforced by the database."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from labs.models import Booking, BookingState, LabOccurrence
from labs.services import (
    AlreadyBooked,
    BookingRefused,
    InvalidSchedule,
    SessionConflict,
    book_seat,
    cancel_booking,
    create_lab_session,
    waitlist_position,
)
from lms.db import commit_with_retry
from lms.extensions import db
from lms.models import AuditLog, Role, User
from lms.services import cohorts
from lms.timeutil import utcnow

NEXT_SATURDAY = (datetime.now() + timedelta(days=(5 - datetime.now().weekday()) % 7 + 7)).replace(
    hour=9, minute=0, second=0, microsecond=0
)


@pytest.fixture
def big_cohort(create_cohort, create_user, people):
    """A cohort of 50 trainees (accounts without passwords, to keep the fixture fast)."""
    cohort = create_cohort(code="BIG", trainers=[people["trainer"]])
    for n in range(50):
        cohorts.enroll(create_user(username=f"t{n:03d}", password=None), cohort)
    db.session.commit()
    return cohort


def _session(cohort, room, trainers, start=NEXT_SATURDAY, rule="", **kw):
    return create_lab_session(
        cohort=cohort,
        unit_key="m03-lab",
        room=room,
        trainers=trainers,
        first_start_local=start,
        duration_minutes=180,
        rrule=rule,
        **kw,
    )


def test_recurring_session_becomes_occurrences(app, people, dummy_cohort, create_room):
    room = create_room()
    session = _session(dummy_cohort, room, [people["trainer"]], rule="FREQ=WEEKLY;BYDAY=SA;COUNT=4")
    db.session.commit()
    assert len(session.occurrences) == 4
    assert all(o.seats == 30 and o.booked_count == 0 for o in session.occurrences)


@pytest.mark.parametrize("clash", ["room", "trainer", "cohort"])
def test_double_booked_room_trainer_or_cohort_is_refused_naming_the_clash(
    app, people, dummy_cohort, create_room, create_cohort, create_user, clash
):
    room = create_room()
    _session(dummy_cohort, room, [people["trainer"]])
    other_trainer = create_user(Role.TRAINER, username="trainer-b")
    other_room = create_room(code="B101", site=room.site)
    other_cohort = create_cohort(code="OTHER")
    args = {
        "room": (other_cohort, room, [other_trainer]),
        "trainer": (other_cohort, other_room, [people["trainer"]]),
        "cohort": (dummy_cohort, other_room, [other_trainer]),
    }[clash]
    start = NEXT_SATURDAY + timedelta(hours=1)  # overlaps 09:00–12:00
    with pytest.raises(SessionConflict) as refused:
        _session(*args, start=start)
    kinds = {c.kind for c in refused.value.clashes}
    assert clash in kinds
    text = str(refused.value)
    assert {"room": "A301", "trainer": people["trainer"].real_name, "cohort": "AIET-P-T1"}[clash] in text


def test_touching_sessions_do_not_clash(app, people, dummy_cohort, create_room):
    room = create_room()
    _session(dummy_cohort, room, [people["trainer"]])
    _session(dummy_cohort, room, [people["trainer"]], start=NEXT_SATURDAY + timedelta(hours=3))  # 12:00


def test_outside_opening_hours_and_too_few_seats_are_clashes(app, people, big_cohort, create_room):
    small = create_room(code="GPU1", seats=12)
    with pytest.raises(SessionConflict) as refused:
        _session(big_cohort, small, [people["trainer"]], start=NEXT_SATURDAY.replace(hour=19))
    assert {c.kind for c in refused.value.clashes} == {"hours", "seats"}


def test_admin_override_with_reason_is_audited_and_others_cannot_override(
    app, people, big_cohort, create_room
):
    small = create_room(code="GPU1", seats=12)
    with pytest.raises(SessionConflict):
        _session(
            big_cohort, small, [people["trainer"]], actor=people["trainer"], override_reason="we squeeze"
        )
    session = _session(
        big_cohort,
        small,
        [people["trainer"]],
        actor=people["admin"],
        override_reason="half the cohort comes each week",
    )
    db.session.commit()
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "labs.conflict_overridden"))
    assert entry is not None and entry.details["reason"] == "half the cohort comes each week"
    assert session.override_reason == "half the cohort comes each week"


@pytest.mark.parametrize(("rule", "minutes"), [("FREQ=WEEKLY;UNTIL=20200101T000000", 180), ("", 0)])
def test_empty_or_zero_length_series_are_refused(app, people, dummy_cohort, create_room, rule, minutes):
    with pytest.raises(InvalidSchedule):
        create_lab_session(
            cohort=dummy_cohort,
            unit_key="m03-lab",
            room=create_room(),
            trainers=[],
            first_start_local=NEXT_SATURDAY,
            duration_minutes=minutes,
            rrule=rule,
        )


def test_fifty_simultaneous_requests_for_twenty_seats(app, people, big_cohort, create_room):
    room = create_room(code="R20", seats=20)
    session = _session(
        big_cohort, room, [people["trainer"]], actor=people["admin"], override_reason="rotating groups"
    )
    db.session.commit()
    occurrence_id = session.occurrences[0].id
    trainee_ids = [e.user_id for e in big_cohort.enrollments]
    barrier = threading.Barrier(len(trainee_ids))

    def request_seat(user_id: int) -> BookingState:
        with app.app_context():  # one request: its own session and connection
            barrier.wait()

            def work():
                trainee = db.session.get(User, user_id)
                occurrence = db.session.get(LabOccurrence, occurrence_id)
                return book_seat(trainee, occurrence).state

            try:
                return commit_with_retry(work)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=len(trainee_ids)) as pool:
        states = list(pool.map(request_seat, trainee_ids))
    assert Counter(states) == {BookingState.BOOKED: 20, BookingState.WAITLISTED: 30}
    db.session.expire_all()
    assert db.session.get(LabOccurrence, occurrence_id).booked_count == 20
    stored = Counter(db.session.scalars(select(Booking.state).where(Booking.occurrence_id == occurrence_id)))
    assert stored == {BookingState.BOOKED: 20, BookingState.WAITLISTED: 30}
    positions = sorted(
        waitlist_position(b)
        for b in db.session.scalars(select(Booking).where(Booking.state == BookingState.WAITLISTED))
    )
    assert positions == list(range(1, 31))


def test_double_click_from_one_trainee_gives_one_booking(app, people, dummy_cohort, create_room):
    session = _session(dummy_cohort, create_room(), [people["trainer"]])
    db.session.commit()
    occurrence_id, user_id = session.occurrences[0].id, people["trainee"].id
    barrier = threading.Barrier(2)

    def click(_n: int) -> str:
        with app.app_context():
            barrier.wait()
            try:
                return commit_with_retry(
                    lambda: (
                        book_seat(
                            db.session.get(User, user_id), db.session.get(LabOccurrence, occurrence_id)
                        ).state
                    )
                )
            except AlreadyBooked:
                db.session.rollback()
                return "already"
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(click, range(2)))
    assert outcomes == ["already", BookingState.BOOKED]
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1
    db.session.expire_all()
    assert db.session.get(LabOccurrence, occurrence_id).booked_count == 1


def test_cancellation_promotes_the_first_on_the_waiting_list(app, people, big_cohort, create_room):
    room = create_room(code="R2", seats=2)
    session = _session(big_cohort, room, [], actor=people["admin"], override_reason="test")
    occurrence = session.occurrences[0]
    trainees = [e.user for e in big_cohort.enrollments[:4]]
    now = utcnow()
    bookings = [book_seat(t, occurrence, now=now + timedelta(seconds=i)) for i, t in enumerate(trainees)]
    db.session.commit()
    assert [b.state for b in bookings] == ["booked", "booked", "waitlisted", "waitlisted"]
    assert [waitlist_position(b) for b in bookings[2:]] == [1, 2]
    promoted = cancel_booking(bookings[0], actor=trainees[0])
    db.session.commit()
    assert promoted is not None and promoted.id == bookings[2].id and promoted.state == BookingState.BOOKED
    assert waitlist_position(bookings[3]) == 1
    db.session.expire_all()
    assert db.session.get(LabOccurrence, occurrence.id).booked_count == 2
    # Cancelling a waiting place frees no seat and promotes nobody.
    assert cancel_booking(db.session.get(Booking, bookings[3].id), actor=trainees[3]) is None
    cancel_booking(db.session.get(Booking, bookings[1].id), actor=trainees[1])
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(LabOccurrence, occurrence.id).booked_count == 1


def test_booking_rules(app, people, dummy_cohort, create_room, create_cohort, create_user):
    room = create_room()
    session = _session(dummy_cohort, room, [people["trainer"]])
    occurrence = session.occurrences[0]
    late = occurrence.starts_at - timedelta(minutes=30)
    with pytest.raises(BookingRefused, match="closed 60 minutes"):
        book_seat(people["trainee"], occurrence, now=late)
    stranger = create_user(username="not-enrolled")
    with pytest.raises(BookingRefused, match="Only trainees of cohort"):
        book_seat(stranger, occurrence)
    book_seat(people["trainee"], occurrence)
    other_cohort = create_cohort(code="OTHER2")
    cohorts.enroll(people["trainee"], other_cohort)
    other_room = create_room(code="C1", site=room.site)
    overlapping = _session(
        other_cohort, other_room, [], start=NEXT_SATURDAY + timedelta(hours=1)
    ).occurrences[0]
    with pytest.raises(BookingRefused, match="already have a lab booked"):
        book_seat(people["trainee"], overlapping)
