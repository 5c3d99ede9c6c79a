"""The labs pages: sites and rooms, scheduling (weekly form, clashes, override), the calendar, booking
with the waiting list, assigning a cohort, cancelling a meeting, dashboard panels, and who may do what."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labs.forms import weekly_rrule
from labs.models import Booking, BookingState, LabOccurrence, LabSession, OccurrenceStatus, Room, Site
from labs.services import create_lab_session
from lms.extensions import db
from lms.models import AuditLog, CourseModule, CourseUnit, CourseVersion, Role, UnitKind
from lms.services import cohorts
from tests.conftest import AuthActions

EN = {"Accept-Language": "en"}
SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(SHANGHAI).date()
NEXT_SATURDAY = TODAY + timedelta(days=(5 - TODAY.weekday()) % 7 + 7)  # 7 to 13 days ahead


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


def sign_in(app, username: str) -> AuthActions:
    auth = AuthActions(app.test_client())
    assert auth.login(username).status_code == 302
    return auth


def page(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def lab_cohort(dummy_cohort, dummy_course):
    """The dummy cohort following a course version that has one lab unit, ``m03-lab``."""
    version = CourseVersion(
        course=dummy_course, version="2025.1", schema_version=1, slug="aiet-p", content_hash="0" * 64
    )
    module = CourseModule(
        version=version,
        key="m03",
        position=3,
        title={"zh_CN": "图像分类", "en": "Image classification"},
        summary={},
    )
    CourseUnit(
        version=version,
        module=module,
        key="m03-lab",
        kind=UnitKind.LAB,
        position=1,
        title={"zh_CN": "图像分类实验", "en": "Classifying images"},
        minutes=180,
    )
    CourseUnit(
        version=version,
        module=module,
        key="m03-quiz",
        kind=UnitKind.QUIZ,
        position=2,
        title={"zh_CN": "测验", "en": "Quiz"},
    )
    db.session.add(version)
    db.session.flush()
    dummy_cohort.course_version_id = version.id
    db.session.commit()
    return dummy_cohort


@pytest.fixture
def room(create_room) -> Room:
    room = create_room()
    db.session.commit()
    return room


def schedule(cohort, room, trainers, start, minutes=180, rule="", **kw) -> LabSession:
    session = create_lab_session(
        cohort=cohort,
        unit_key="m03-lab",
        room=room,
        trainers=trainers,
        first_start_local=start,
        duration_minutes=minutes,
        rrule=rule,
        **kw,
    )
    db.session.commit()
    return session


def form_data(room, trainer, **changes) -> dict:
    data = {
        "unit_key": "m03-lab",
        "room_id": room.id,
        "trainer_ids": [trainer.id],
        "start_date": NEXT_SATURDAY.isoformat(),
        "start_time": "09:00",
        "duration_minutes": 180,
        "repeat": "once",
        "end_mode": "weeks",
        "weeks": 4,
        "booking_cutoff_minutes": 60,
    }
    data.update(changes)
    return data


def local_starts(cohort) -> list[datetime]:
    rows = db.session.scalars(
        select(LabOccurrence)
        .join(LabSession)
        .where(LabSession.cohort_id == cohort.id)
        .order_by(LabOccurrence.starts_at)
    )
    return [o.starts_at.astimezone(SHANGHAI).replace(tzinfo=None) for o in rows]


# --- Sites and rooms ------------------------------------------------------------------------------------


def test_admin_creates_a_site_and_its_rooms(app, people, dummy_training_base):
    admin = sign_in(app, "admin1")
    response = admin.post(
        "/labs/sites",
        {
            "institution_id": dummy_training_base.id,
            "code": "EAST",
            "name": "东区实训楼",
            "timezone": "Asia/Urumqi",
        },
        form_page="/labs/sites",
    )
    assert response.status_code == 303
    site = db.session.scalar(select(Site).where(Site.code == "EAST"))
    assert site is not None and site.timezone == "Asia/Urumqi"
    room = {
        "code": "B201",
        "name": "GPU 实训室",
        "seats": 12,
        "workstations": 12,
        "gpu_seats": 12,
        "open_from": "08:30",
        "open_until": "18:00",
        "open_weekdays": [1, 2, 3, 4, 5],
    }
    assert (
        admin.post(f"/labs/sites/{site.id}/rooms", room, form_page=f"/labs/sites/{site.id}").status_code
        == 303
    )
    created = db.session.scalar(select(Room).where(Room.site_id == site.id))
    assert (created.seats, created.gpu_seats, created.open_from, created.open_weekdays) == (
        12,
        12,
        time(8, 30),
        [1, 2, 3, 4, 5],
    )
    listing = page(admin.client.get("/labs/sites", headers=EN))
    assert "EAST" in listing and "Asia/Urumqi" in listing
    assert "B201" in page(admin.client.get(f"/labs/sites/{site.id}"))
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "labs.room_created")) is not None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gpu_seats": 13}, "GPU seats must be between 0 and the number of seats"),
        ({"open_until": "08:00"}, "The room must close after it opens"),
        ({"code": "A301"}, "already has a room A301"),
        ({"open_weekdays": []}, "Choose at least one weekday"),
    ],
)
def test_bad_room_is_refused_with_400_and_a_message(app, people, room, changes, message):
    admin = sign_in(app, "admin1")
    data = {
        "code": "B1",
        "name": "小教室",
        "seats": 12,
        "open_from": "08:00",
        "open_until": "20:00",
        "open_weekdays": [6, 7],
    }
    data.update(changes)
    response = admin.post(
        f"/labs/sites/{room.site_id}/rooms", data, form_page=f"/labs/sites/{room.site_id}", headers=EN
    )
    assert response.status_code == 400
    assert message in page(response)
    assert db.session.scalar(select(func.count()).select_from(Room)) == 1


def test_unknown_time_zone_and_duplicate_site_code_are_refused(app, people, dummy_training_base, room):
    admin = sign_in(app, "admin1")
    for code, zone, message in (
        ("NEW", "Mars/Olympus", "not a known time zone"),
        ("SPU-LAB", "Asia/Shanghai", "already in use"),
    ):
        response = admin.post(
            "/labs/sites",
            {"institution_id": dummy_training_base.id, "code": code, "name": "某地", "timezone": zone},
            form_page="/labs/sites",
            headers=EN,
        )
        assert response.status_code == 400 and message in page(response)


# --- Scheduling -----------------------------------------------------------------------------------------


def test_the_lab_unit_picker_lists_the_cohorts_lab_units_only(app, people, lab_cohort, room):
    trainer = sign_in(app, "trainer1")
    html = page(trainer.client.get(f"/labs/cohorts/{lab_cohort.id}/sessions/new", headers=EN))
    assert 'value="m03-lab"' in html and "Classifying images" in html
    assert "m03-quiz" not in html


@pytest.mark.parametrize(
    ("changes", "expected_days", "rule"),
    [
        ({}, [0], ""),
        ({"repeat": "weekly", "weekdays": [6], "weeks": 4}, [0, 7, 14, 21], "FREQ=WEEKLY;BYDAY=SA;COUNT=4"),
        ({"repeat": "weekly", "weeks": 2}, [0, 7], "FREQ=WEEKLY;BYDAY=SA;COUNT=2"),  # the date's weekday
        # From a Saturday, Tuesdays and Saturdays up to and including the Saturday two weeks later.
        (
            {
                "repeat": "weekly",
                "weekdays": [2, 6],
                "end_mode": "until",
                "until": (NEXT_SATURDAY + timedelta(days=14)).isoformat(),
            },
            [0, 3, 7, 10, 14],
            "FREQ=WEEKLY;BYDAY=TU,SA;COUNT=5",
        ),
        # A start on a Thursday for a Saturday lab moves to the first Saturday.
        (
            {
                "repeat": "weekly",
                "weekdays": [6],
                "weeks": 3,
                "start_date": (NEXT_SATURDAY - timedelta(days=2)).isoformat(),
            },
            [0, 7, 14],
            "FREQ=WEEKLY;BYDAY=SA;COUNT=3",
        ),
        ({"rrule": "FREQ=DAILY;COUNT=3"}, [0, 1, 2], "FREQ=DAILY;COUNT=3"),
    ],
)
def test_the_scheduling_form_builds_the_right_meetings(
    app, people, lab_cohort, room, changes, expected_days, rule
):
    trainer = sign_in(app, "trainer1")
    new = f"/labs/cohorts/{lab_cohort.id}/sessions/new"
    response = trainer.post(new, form_data(room, people["trainer"], **changes), form_page=new)
    assert response.status_code == 303, page(response)
    assert f"date={NEXT_SATURDAY.isoformat()}" in response.headers["Location"]
    assert local_starts(lab_cohort) == [at(NEXT_SATURDAY + timedelta(days=n), 9) for n in expected_days]
    session = db.session.scalar(select(LabSession))
    assert session.rrule == rule and session.first_start_local == at(NEXT_SATURDAY, 9)
    assert [t.id for t in session.trainers] == [people["trainer"].id]
    # Stored in UTC: 09:00 in Shanghai is 01:00 UTC.
    assert session.occurrences[0].starts_at == datetime.combine(NEXT_SATURDAY, time(1, 0), UTC)


@pytest.mark.parametrize(
    ("first", "weekdays", "weeks", "until", "rule"),
    [
        (date(2025, 3, 1), [6], 4, None, "FREQ=WEEKLY;BYDAY=SA;COUNT=4"),
        (date(2025, 3, 4), [4, 2], 2, None, "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=4"),
        (date(2025, 3, 1), [6, 7], None, date(2025, 3, 15), "FREQ=WEEKLY;BYDAY=SA,SU;COUNT=5"),
        (date(2025, 3, 1), [6], None, date(2025, 3, 1), "FREQ=WEEKLY;BYDAY=SA;COUNT=1"),
    ],
)
def test_weekly_rrule(first, weekdays, weeks, until, rule):
    assert weekly_rrule(first, weekdays, weeks=weeks, until=until) == rule


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rrule": "FREQ=WEEKLY;BYDAY=SA"}, "needs COUNT or UNTIL"),
        ({"rrule": "FREQ=SOMETIMES;COUNT=2"}, "cannot be read"),
        (
            {
                "repeat": "weekly",
                "weekdays": [6],
                "end_mode": "until",
                "until": (NEXT_SATURDAY - timedelta(days=1)).isoformat(),
            },
            "cannot be before the first",
        ),
        (
            {"repeat": "weekly", "weekdays": [2], "end_mode": "until", "until": NEXT_SATURDAY.isoformat()},
            "No meeting falls",
        ),
        ({"duration_minutes": 5}, "Number must be between 15 and 720"),
        ({"start_date": "next saturday"}, "Not a valid date value"),
        ({"unit_key": "m03-quiz"}, "Not a valid choice"),
    ],
)
def test_bad_schedule_input_gets_400_with_a_message(app, people, lab_cohort, room, changes, message):
    trainer = sign_in(app, "trainer1")
    new = f"/labs/cohorts/{lab_cohort.id}/sessions/new"
    response = trainer.post(new, form_data(room, people["trainer"], **changes), form_page=new, headers=EN)
    assert response.status_code == 400
    assert message in page(response)
    assert db.session.scalar(select(func.count()).select_from(LabSession)) == 0


def test_a_clash_gives_409_listing_every_clash_and_only_an_admin_may_override(
    app, people, lab_cohort, room, create_user
):
    schedule(lab_cohort, room, [people["trainer"]], at(NEXT_SATURDAY, 9))
    new = f"/labs/cohorts/{lab_cohort.id}/sessions/new"
    data = form_data(room, people["trainer"], start_time="10:00", repeat="weekly", weekdays=[6], weeks=2)

    trainer = sign_in(app, "trainer1")
    refused = trainer.post(new, data, form_page=new, headers=EN)
    assert refused.status_code == 409
    html = page(refused)
    when = f"{NEXT_SATURDAY.isoformat()} 09:00"
    for message in (
        f"Room A301 is taken at {when} by cohort AIET-P-T1.",
        f"Cohort AIET-P-T1 already has a lab at {when}.",
        f"Trainer {people['trainer'].real_name} already teaches at {when}.",
    ):
        assert message in html
    assert 'name="override_reason"' not in html
    # A trainer's reason is ignored: only an administrator overrides.
    assert trainer.post(new, {**data, "override_reason": "please"}, form_page=new).status_code == 409

    admin = sign_in(app, "admin1")
    refused = admin.post(new, data, form_page=new, headers=EN)
    assert refused.status_code == 409 and 'name="override_reason"' in page(refused)
    accepted = admin.post(new, {**data, "override_reason": "two groups share the room"}, form_page=new)
    assert accepted.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(LabSession)) == 2
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "labs.conflict_overridden"))
    assert entry.details["reason"] == "two groups share the room"
    assert len(entry.details["clashes"]) == 3  # the second week does not clash


# --- Access ---------------------------------------------------------------------------------------------


def test_trainees_cannot_schedule_and_another_bases_admin_sees_nothing(
    app, people, lab_cohort, room, create_institution, create_user
):
    session = schedule(lab_cohort, room, [people["trainer"]], at(NEXT_SATURDAY, 9))
    occurrence = session.occurrences[0]
    trainee = sign_in(app, "trainee1")
    for path in (
        f"/labs/cohorts/{lab_cohort.id}/sessions/new",
        "/labs/calendar",
        "/labs/sessions",
        f"/labs/occurrences/{occurrence.id}",
    ):
        assert trainee.client.get(path).status_code == 403, path
    assert trainee.post(f"/labs/occurrences/{occurrence.id}/cancel", {"reason": "x"}).status_code == 403

    other_base = create_institution(code="NORTH", name="北方培训基地")
    create_user(Role.ADMIN, institution=other_base, username="north-admin")
    db.session.commit()
    stranger = sign_in(app, "north-admin")
    for path in (
        f"/labs/cohorts/{lab_cohort.id}/sessions/new",
        f"/labs/sites/{room.site_id}",
        f"/labs/occurrences/{occurrence.id}",
        f"/labs/calendar?cohort={lab_cohort.id}",
        f"/labs/calendar?site={room.site_id}",
    ):
        assert stranger.client.get(path).status_code == 404, path
    for path, data in (
        (f"/labs/occurrences/{occurrence.id}/cancel", {"reason": "mine now"}),
        (f"/labs/occurrences/{occurrence.id}/assign-cohort", {}),
        (f"/labs/sites/{room.site_id}/rooms", {"code": "X", "name": "X", "seats": 3}),
    ):
        assert stranger.post(path, data).status_code == 404, path
    # Their own calendar shows nothing of the other base.
    html = page(stranger.client.get(f"/labs/calendar?date={NEXT_SATURDAY.isoformat()}"))
    assert "AIET-P-T1" not in html and 'class="labs-event' not in html
    db.session.refresh(occurrence)
    assert occurrence.status == OccurrenceStatus.SCHEDULED


# --- The calendar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["week", "month"])
@pytest.mark.parametrize("filter_by", ["none", "site", "room", "trainer", "cohort"])
def test_calendar_shows_the_meeting_in_each_view_and_filter(
    app, people, lab_cohort, room, create_room, create_cohort, view, filter_by
):
    schedule(lab_cohort, room, [people["trainer"]], at(NEXT_SATURDAY, 9))
    value = {
        "none": None,
        "site": room.site_id,
        "room": room.id,
        "trainer": people["trainer"].id,
        "cohort": lab_cohort.id,
    }[filter_by]
    query = f"?view={view}&date={NEXT_SATURDAY.isoformat()}" + (f"&{filter_by}={value}" if value else "")
    for who in ("admin1", "trainer1"):
        response = sign_in(app, who).client.get("/labs/calendar" + query, headers=EN)
        assert response.status_code == 200
        html = page(response)
        assert "09:00" in html and "12:00" in html and "Room A301" in html and "AIET-P-T1" in html
        assert "0/30 booked" in html and "Classifying images" in html
        assert 'class="labs-days"' in html and 'rel="prev"' in html and 'rel="next"' in html


def test_calendar_filters_out_other_meetings_and_pages_through_weeks(
    app, people, lab_cohort, room, create_room, create_cohort
):
    schedule(lab_cohort, room, [people["trainer"]], at(NEXT_SATURDAY, 9))
    other_room = create_room(code="B101", site=room.site)
    other = create_cohort(code="OTHER-C")
    db.session.commit()
    admin = sign_in(app, "admin1").client
    day = NEXT_SATURDAY.isoformat()
    assert 'class="labs-event' in page(admin.get(f"/labs/calendar?date={day}&room={room.id}"))
    assert 'class="labs-event' not in page(admin.get(f"/labs/calendar?date={day}&room={other_room.id}"))
    assert 'class="labs-event' not in page(admin.get(f"/labs/calendar?date={day}&cohort={other.id}"))
    previous_week = (NEXT_SATURDAY - timedelta(days=7)).isoformat()
    assert 'class="labs-event' not in page(admin.get(f"/labs/calendar?date={previous_week}", headers=EN))
    # The "next" link of the week before leads to the meeting's week.
    html = page(admin.get(f"/labs/calendar?date={previous_week}"))
    monday = NEXT_SATURDAY - timedelta(days=NEXT_SATURDAY.weekday())
    assert f"date={monday.isoformat()}" in html


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?date=2025-13-01", 400, "YYYY-MM-DD"),
        ("?view=year", 400, "view=week or view=month"),
        ("?room=abc", 400, "must be a number"),
        ("?room=999999", 404, ""),
    ],
)
def test_bad_calendar_input_gets_a_precise_4xx(app, people, room, query, status, message):
    response = sign_in(app, "admin1").client.get("/labs/calendar" + query, headers=EN)
    assert response.status_code == status
    assert message in page(response)


# --- Booking --------------------------------------------------------------------------------------------


@pytest.fixture
def second_trainee(create_user, dummy_cohort):
    trainee = create_user(Role.TRAINEE, username="trainee2")
    cohorts.enroll(trainee, dummy_cohort)
    db.session.commit()
    return trainee


def test_booking_the_waiting_list_and_the_promotion_notice(
    app, people, lab_cohort, create_room, second_trainee
):
    small = create_room(code="S1", seats=1)
    session = schedule(
        lab_cohort,
        small,
        [people["trainer"]],
        at(NEXT_SATURDAY, 9),
        actor=people["admin"],
        override_reason="one seat for the test",
    )
    occurrence_id = session.occurrences[0].id
    first, second = sign_in(app, "trainee1"), sign_in(app, "trainee2")

    listing = page(first.client.get("/labs/upcoming", headers=EN))
    assert "Classifying images" in listing and "1 seat free" in listing and "Book a seat" in listing
    booked = first.post(f"/labs/occurrences/{occurrence_id}/book", form_page="/labs/upcoming", headers=EN)
    assert booked.status_code == 303
    assert "Your seat is booked" in page(first.client.get(booked.headers["Location"], headers=EN))

    # A second click: already booked, nothing changes.
    again = first.post(f"/labs/occurrences/{occurrence_id}/book", form_page="/labs/upcoming", headers=EN)
    assert "You already have a place" in page(first.client.get(again.headers["Location"], headers=EN))

    listing = page(second.client.get("/labs/upcoming", headers=EN))
    assert "0 seats free" in listing and "Join the waiting list" in listing
    waiting = second.post(f"/labs/occurrences/{occurrence_id}/book", form_page="/labs/upcoming", headers=EN)
    assert "number 1 on the waiting list" in page(second.client.get(waiting.headers["Location"], headers=EN))
    mine = page(second.client.get("/labs/my-bookings", headers=EN))
    assert "Waiting list: number 1" in mine
    assert "moved up from the waiting list" not in page(second.client.get("/dashboard", headers=EN))

    booking = db.session.scalar(select(Booking).where(Booking.user_id == people["trainee"].id))
    cancelled = first.post(f"/labs/bookings/{booking.id}/cancel", form_page="/labs/my-bookings", headers=EN)
    assert cancelled.status_code == 303
    states = dict(db.session.execute(select(Booking.user_id, Booking.state)).all())
    assert states == {people["trainee"].id: BookingState.CANCELLED, second_trainee.id: BookingState.BOOKED}

    dashboard = page(second.client.get("/dashboard", headers=EN))
    assert "moved up from the waiting list" in dashboard and "room S1" in dashboard
    assert "Booked" in page(second.client.get("/labs/my-bookings", headers=EN))
    # Someone else's booking cannot be cancelled.
    theirs = db.session.scalar(select(Booking).where(Booking.user_id == second_trainee.id))
    assert first.post(f"/labs/bookings/{theirs.id}/cancel", form_page="/labs/my-bookings").status_code == 404


def test_booking_refusals_are_flashed(app, people, lab_cohort, room, create_cohort, create_user):
    soon = datetime.now(SHANGHAI).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=30)
    room.open_from, room.open_until = time(0, 0), time(23, 59)
    session = schedule(lab_cohort, room, [], soon, minutes=10, actor=people["admin"], override_reason="test")
    other = create_cohort(code="ELSEWHERE")
    outsider = create_user(Role.TRAINEE, username="outsider")
    cohorts.enroll(outsider, other)
    db.session.commit()
    occurrence_id = session.occurrences[0].id
    trainee = sign_in(app, "trainee1")
    response = trainee.post(f"/labs/occurrences/{occurrence_id}/book", form_page="/labs/upcoming", headers=EN)
    assert "Booking closed 60 minutes before the start" in page(
        trainee.client.get(response.headers["Location"], headers=EN)
    )
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
    # A trainee of another cohort does not even see the meeting.
    stranger = sign_in(app, "outsider")
    assert (
        stranger.post(f"/labs/occurrences/{occurrence_id}/book", form_page="/labs/upcoming").status_code
        == 404
    )


def test_assigning_the_whole_cohort_reports_booked_and_waiting(
    app, people, lab_cohort, create_room, create_user
):
    trainees = [people["trainee"]]
    for n in range(3):
        trainee = create_user(Role.TRAINEE, username=f"extra{n}")
        cohorts.enroll(trainee, lab_cohort)
        trainees.append(trainee)
    db.session.commit()
    small = create_room(code="S2", seats=2)
    session = schedule(
        lab_cohort,
        small,
        [people["trainer"]],
        at(NEXT_SATURDAY, 9),
        actor=people["admin"],
        override_reason="half the class",
    )
    occurrence_id = session.occurrences[0].id
    sign_in(app, "trainee1").post(f"/labs/occurrences/{occurrence_id}/book", form_page="/labs/upcoming")

    trainer = sign_in(app, "trainer1")
    occurrence_page = f"/labs/occurrences/{occurrence_id}"
    response = trainer.post(f"{occurrence_page}/assign-cohort", form_page=occurrence_page, headers=EN)
    assert response.status_code == 303
    html = page(trainer.client.get(occurrence_page, headers=EN))
    assert "1 trainee(s) booked, 2 on the waiting list, 1 already had a place." in html
    states = dict(db.session.execute(select(Booking.user_id, Booking.state)).all())
    assert states == {
        trainees[0].id: BookingState.BOOKED,
        trainees[1].id: BookingState.BOOKED,
        trainees[2].id: BookingState.WAITLISTED,
        trainees[3].id: BookingState.WAITLISTED,
    }
    assert db.session.get(LabOccurrence, occurrence_id).booked_count == 2
    assert "Waiting list (2)" in html
    # Again: everybody has a place already.
    trainer.post(f"{occurrence_page}/assign-cohort", form_page=occurrence_page, headers=EN)
    assert "0 trainee(s) booked, 0 on the waiting list, 4 already had a place." in page(
        trainer.client.get(occurrence_page, headers=EN)
    )


def test_cancelling_one_meeting_cancels_its_bookings_and_tells_the_trainee(
    app, people, lab_cohort, room, second_trainee
):
    session = schedule(
        lab_cohort, room, [people["trainer"]], at(NEXT_SATURDAY, 9), rule="FREQ=WEEKLY;COUNT=2"
    )
    first_id, second_id = (o.id for o in session.occurrences)
    sign_in(app, "trainee1").post(f"/labs/occurrences/{first_id}/book", form_page="/labs/upcoming")
    sign_in(app, "trainee2").post(f"/labs/occurrences/{first_id}/book", form_page="/labs/upcoming")

    trainer = sign_in(app, "trainer1")
    occurrence_page = f"/labs/occurrences/{first_id}"
    missing = trainer.post(
        f"{occurrence_page}/cancel", {"reason": "  "}, form_page=occurrence_page, headers=EN
    )
    assert missing.status_code == 400 and "This field is required" in page(missing)
    done = trainer.post(
        f"{occurrence_page}/cancel",
        {"reason": "停电检修 power maintenance"},
        form_page=occurrence_page,
        headers=EN,
    )
    assert done.status_code == 303
    assert "2 booking(s) cancelled" in page(trainer.client.get(occurrence_page, headers=EN))

    occurrence = db.session.get(LabOccurrence, first_id)
    assert (occurrence.status, occurrence.sequence, occurrence.booked_count) == (
        OccurrenceStatus.CANCELLED,
        1,
        0,
    )
    bookings = db.session.scalars(select(Booking).where(Booking.occurrence_id == first_id)).all()
    assert len(bookings) == 2 and {b.state for b in bookings} == {BookingState.CANCELLED}
    assert all(b.details["cancel_reason"] == "停电检修 power maintenance" for b in bookings)
    assert db.session.get(LabOccurrence, second_id).status == OccurrenceStatus.SCHEDULED
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "labs.occurrence_cancelled"))
    assert entry.details == {"reason": "停电检修 power maintenance", "booked": 2, "waitlisted": 0}

    trainee = sign_in(app, "trainee1").client
    assert "was cancelled: 停电检修 power maintenance" in page(trainee.get("/dashboard", headers=EN))
    assert "Cancelled by the training base" in page(trainee.get("/labs/my-bookings", headers=EN))
    # Once is enough.
    trainer.post(f"{occurrence_page}/cancel", {"reason": "again"}, form_page=f"/labs/occurrences/{second_id}")
    assert db.session.get(LabOccurrence, first_id).sequence == 1


# --- Dashboard and navigation ---------------------------------------------------------------------------


def test_trainer_panel_shows_todays_and_the_next_meetings(app, people, lab_cohort, create_room):
    all_day = create_room(code="H24", open_from=time(0, 0), open_until=time(23, 59))
    schedule(lab_cohort, all_day, [people["trainer"]], at(TODAY, 0), minutes=1)
    schedule(lab_cohort, all_day, [people["trainer"]], at(NEXT_SATURDAY, 14), minutes=120)
    trainer = sign_in(app, "trainer1").client
    html = page(trainer.get("/dashboard", headers=EN))
    today_part, next_part = html.split("My lab sessions")[1].split("<h4>Next</h4>")
    assert "00:00–00:01" in today_part and "Room H24" in today_part
    assert "14:00–16:00" in next_part
    assert 'href="/labs/calendar"' in html  # the "Labs" nav item
    trainee_html = page(sign_in(app, "trainee1").client.get("/dashboard", headers=EN))
    assert 'href="/labs/upcoming"' in trainee_html and 'href="/labs/calendar"' not in trainee_html
    assert "My lab sessions" not in trainee_html


def test_sessions_page_lists_the_series_of_each_cohort(app, people, lab_cohort, room):
    schedule(lab_cohort, room, [people["trainer"]], at(NEXT_SATURDAY, 9), rule="FREQ=WEEKLY;COUNT=3")
    html = page(sign_in(app, "trainer1").client.get("/labs/sessions", headers=EN))
    assert "Classifying images" in html and "FREQ=WEEKLY;COUNT=3" in html
    assert f"/labs/cohorts/{lab_cohort.id}/sessions/new" in html
