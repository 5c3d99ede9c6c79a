"""Lab reports: the attendance grid with no-shows, seat use per room and week, CSV exports, access."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from labs import reports
from labs.models import Attendance, Booking, BookingState, LabOccurrence, OccurrenceStatus
from labs.reports import Mark
from labs.services import create_lab_session
from lms.extensions import db
from lms.models import Role
from lms.services import cohorts

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEXT_SATURDAY = (datetime.now() + timedelta(days=(5 - datetime.now().weekday()) % 7 + 7)).replace(
    hour=9, minute=0, second=0, microsecond=0
)
B, W, C = BookingState.BOOKED, BookingState.WAITLISTED, BookingState.CANCELLED


def _book(occurrence: LabOccurrence, user, state: BookingState, attendance: Attendance | None = None) -> None:
    db.session.add(
        Booking(
            occurrence_id=occurrence.id,
            user_id=user.id,
            state=state,
            attendance=attendance,
            waitlisted_at=occurrence.starts_at - timedelta(days=3) if state == W else None,
        )
    )
    if state == B:
        occurrence.booked_count += 1


@pytest.fixture
def scene(app, people, dummy_cohort, create_room, create_user):
    """Four Saturdays of one lab for a cohort of four (plus two withdrawn trainees): two meetings past,
    the third cancelled, the fourth still to come. Attendance is written straight into the bookings."""
    trainees = {"A": people["trainee"]}
    for key in "BCD":
        trainees[key] = create_user(Role.TRAINEE, username=f"trainee-{key.lower()}", real_name=f"学员{key}")
        cohorts.enroll(trainees[key], dummy_cohort)
    for key in ("W1", "W2"):  # W1 never booked, W2 came once before leaving
        trainees[key] = create_user(Role.TRAINEE, username=f"trainee-{key.lower()}", real_name=f"退学{key}")
        enrollment = cohorts.enroll(trainees[key], dummy_cohort)
        cohorts.withdraw(enrollment, actor=None)
    room = create_room(code="R10", seats=10)
    session = create_lab_session(
        cohort=dummy_cohort,
        unit_key="m03-lab",
        room=room,
        trainers=[people["trainer"]],
        first_start_local=NEXT_SATURDAY - timedelta(days=21),
        duration_minutes=180,
        rrule="FREQ=WEEKLY;BYDAY=SA;COUNT=4",
        title="图像分类实验",
    )
    m1, m2, m3, m4 = session.occurrences
    m3.status, m3.sequence = OccurrenceStatus.CANCELLED, 1
    t = trainees
    _book(m1, t["A"], B, Attendance.ATTENDED)
    _book(m1, t["B"], B, Attendance.LATE)
    _book(m1, t["C"], B, Attendance.ABSENT)
    _book(m1, t["D"], B)  # nothing recorded: a no-show
    _book(m1, t["W2"], B, Attendance.ATTENDED)
    _book(m2, t["A"], B, Attendance.EXCUSED)
    _book(m2, t["B"], B)  # a no-show
    _book(m2, t["C"], W)  # waited in vain: not a no-show
    _book(m2, t["D"], C)
    _book(m3, t["A"], C)  # cancelled meeting: left out of the report
    _book(m4, t["A"], B)  # still to come: booked, not a no-show
    _book(m4, t["B"], W)
    db.session.commit()
    return {"cohort": dummy_cohort, "room": room, "session": session, "meetings": [m1, m2, m3, m4], **t}


def test_attendance_grid_counts_no_shows_only_for_seats_held_in_ended_meetings(app, scene):
    report = reports.cohort_attendance(scene["cohort"])
    m1, m2, _m3, m4 = scene["meetings"]
    assert [c.occurrence.id for c in report.columns] == [m1.id, m2.id, m4.id]
    assert [c.ended for c in report.columns] == [True, True, False]
    assert report.columns[0].local_start.replace(tzinfo=None) == NEXT_SATURDAY - timedelta(days=21)
    grid = {row.user.username: [cell.mark for cell in row.cells] for row in report.rows}
    assert grid == {
        scene["A"].username: [Mark.ATTENDED, Mark.EXCUSED, Mark.BOOKED],
        "trainee-b": [Mark.LATE, Mark.NO_SHOW, Mark.WAITLISTED],
        "trainee-c": [Mark.ABSENT, Mark.WAITLISTED, Mark.NONE],
        "trainee-d": [Mark.NO_SHOW, Mark.NONE, Mark.NONE],
        "trainee-w2": [Mark.ATTENDED, Mark.NONE, Mark.NONE],
    }
    totals = {
        row.user.username: (t.booked, t.attended, t.late, t.absent, t.excused, t.no_show)
        for row in report.rows
        for t in [row.totals]
    }
    assert totals == {
        scene["A"].username: (3, 1, 0, 0, 1, 0),
        "trainee-b": (2, 0, 1, 0, 0, 1),
        "trainee-c": (1, 0, 0, 1, 0, 1),
        "trainee-d": (1, 0, 0, 0, 0, 1),
        "trainee-w2": (1, 1, 0, 0, 0, 0),
    }
    assert [(t.booked, t.present, t.no_show) for t in report.column_totals] == [
        (5, 3, 2),
        (2, 0, 1),
        (1, 0, 0),
    ]
    t = report.totals
    assert (t.booked, t.attended, t.late, t.absent, t.excused, t.no_show) == (8, 2, 1, 1, 1, 3)


def test_upcoming_booking_becomes_a_no_show_once_the_meeting_ends(app, scene):
    m4 = scene["meetings"][3]
    during = reports.cohort_attendance(scene["cohort"], now=m4.ends_at - timedelta(minutes=1))
    after = reports.cohort_attendance(scene["cohort"], now=m4.ends_at)
    row = next(r for r in during.rows if r.user.id == scene["A"].id)
    assert (row.cells[2].mark, row.totals.no_show) == (Mark.BOOKED, 0)
    row = next(r for r in after.rows if r.user.id == scene["A"].id)
    assert (row.cells[2].mark, row.totals.no_show) == (Mark.NO_SHOW, 1)


def test_seat_use_per_meeting_and_week_in_the_sites_zone(app, people, scene, create_cohort):
    room = scene["room"]
    room.open_from, room.open_until = time(0, 0), time(23, 59)
    m1, m2, m3, m4 = scene["meetings"]
    other = create_cohort(code="OTHER")
    # The same week as m1, nobody booked; and a Monday 07:30 meeting, which is Sunday in UTC.
    afternoon = create_lab_session(
        cohort=other,
        unit_key="m04-lab",
        room=room,
        trainers=[],
        first_start_local=NEXT_SATURDAY.replace(hour=14) - timedelta(days=21),
        duration_minutes=60,
    ).occurrences[0]
    monday = NEXT_SATURDAY.replace(hour=7, minute=30) + timedelta(days=2)
    early = create_lab_session(
        cohort=other,
        unit_key="m04-lab",
        room=room,
        trainers=[],
        first_start_local=monday,
        duration_minutes=60,
    ).occurrences[0]
    assert early.starts_at.weekday() == 6  # Sunday in UTC
    db.session.commit()

    first_day = (NEXT_SATURDAY - timedelta(days=21)).date()
    last_day = monday.date()
    report = reports.room_seat_use(room, first_day, last_day)
    assert [(m.occurrence.id, m.booked, m.seats, m.present) for m in report.meetings] == [
        (m1.id, 5, 10, 3),
        (afternoon.id, 0, 10, 0),
        (m2.id, 2, 10, 0),
        (m4.id, 1, 10, 0),
        (early.id, 0, 10, 0),
    ]
    assert m3.id not in {m.occurrence.id for m in report.meetings}
    mondays = [w.monday for w in report.weeks]
    assert mondays[0] == first_day - timedelta(days=first_day.weekday()) and mondays[-1] == monday.date()
    assert all(d.weekday() == 0 for d in mondays)
    assert [(w.meetings, w.seats, w.booked, w.share) for w in report.weeks] == [
        (2, 20, 5, 0.25),
        (1, 10, 2, 0.2),
        (0, 0, 0, None),  # the cancelled meeting's week
        (1, 10, 1, 0.1),
        (1, 10, 0, 0.0),  # Monday early morning counts in its local week
    ]
    assert (report.booked, report.seats) == (8, 50)


@pytest.mark.parametrize(
    ("first", "last"), [(date(2026, 3, 2), date(2026, 3, 1)), (date(2025, 1, 1), date(2026, 1, 2))]
)
def test_impossible_periods_are_refused(app, create_room, first, last):
    with pytest.raises(reports.InvalidPeriod):
        reports.room_seat_use(create_room(), first, last)


# --- pages and CSV -------------------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    assert response.content_type == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_trainer_sees_the_grid_and_downloads_it_as_csv(app, client, auth, people, scene):
    scene["D"].real_name = '=HYPERLINK("http://evil")'
    people["trainer"].locale = "en"
    db.session.commit()
    auth.login(people["trainer"].username)
    page = client.get(f"/labs/reports/cohorts/{scene['cohort'].id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "学员B" in html and "No-show" in html and "图像分类实验" in html
    assert "退学W2" in html and "退学W1" not in html

    rows = _csv(client.get(f"/labs/reports/cohorts/{scene['cohort'].id}/attendance.csv"))
    header, body, footer = rows[0], rows[1:-1], rows[-1]
    assert header[:4] == ["Username", "Real name", "Employer", "Status"]
    assert header[-6:] == ["Booked", "Attended", "Late", "Absent", "Excused", "No-shows"]
    assert len(header) == 4 + 3 + 6
    m1 = scene["meetings"][0]
    local_start = m1.starts_at.astimezone(SHANGHAI)
    assert header[4] == f"{local_start:%Y-%m-%d %H:%M} 图像分类实验"
    by_user = {r[0]: r for r in body}
    assert by_user["trainee-b"][4:] == ["Late", "No-show", "Waiting list", "2", "0", "1", "0", "0", "1"]
    assert by_user["trainee-d"][1] == '\'=HYPERLINK("http://evil")'
    assert by_user["trainee-w2"][3] == "Withdrawn"
    assert footer[4:7] == ["3", "0", "0"] and footer[-6:] == ["8", "2", "1", "1", "1", "3"]


def test_attendance_report_is_for_the_cohorts_trainers_and_base_admins(
    app, client, auth, people, scene, create_user, create_institution
):
    other_trainer = create_user(Role.TRAINER, username="trainer-other")
    other_admin = create_user(Role.ADMIN, institution=create_institution(code="ELSE"), username="admin-else")
    base_admin = create_user(Role.ADMIN, institution=scene["cohort"].training_base, username="admin-base")
    db.session.commit()
    path = f"/labs/reports/cohorts/{scene['cohort'].id}"
    for username, status in [
        (other_trainer.username, 404),
        (other_admin.username, 404),
        (people["trainee"].username, 403),
        (base_admin.username, 200),
        (people["admin"].username, 200),
    ]:
        auth.login(username)
        assert client.get(path).status_code == status, username
        assert client.get(path + "/attendance.csv").status_code == status, username
        listing = client.get("/labs/reports/")
        if status != 403:
            assert (scene["cohort"].code in listing.get_data(as_text=True)) == (status == 200), username
        auth.logout()
    auth.login(people["admin"].username)
    assert client.get("/labs/reports/cohorts/999999").status_code == 404


def test_room_report_draws_an_accessible_chart_with_a_table(app, client, auth, people, scene):
    room = scene["room"]
    first = (NEXT_SATURDAY - timedelta(days=21)).date()
    last = NEXT_SATURDAY.date()
    people["admin"].locale = "en"
    db.session.commit()
    auth.login(people["admin"].username)
    response = client.get(f"/labs/reports/rooms/{room.id}?from={first}&to={last}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<svg viewBox="0 0' in html and 'role="img"' in html
    assert 'aria-labelledby="seat-chart-title seat-chart-desc"' in html
    assert html.count('<rect class="bar"') == 4  # one bar per week of the period
    assert "50% of seats booked (5 of 10)" in html
    assert "<caption>Seat use per week</caption>" in html and "50%" in html

    rows = _csv(client.get(f"/labs/reports/rooms/{room.id}/seat-use.csv?from={first}&to={last}"))
    assert rows[0][:2] == ["Week of", "Date"]
    m1 = scene["meetings"][0]
    assert rows[1] == [
        str(first - timedelta(days=first.weekday())),
        str(first),
        "09:00",
        "12:00",
        scene["cohort"].code,
        "图像分类实验",
        "10",
        "5",
        "50.0",
        "3",
    ]
    assert len(rows) == 1 + 3 and m1.status == OccurrenceStatus.SCHEDULED


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-13-01", "is not a date"),
        ("from=2026-03-02&to=2026-03-01", "ends before it starts"),
        ("from=2024-01-01&to=2026-01-01", "at most 366 days"),
    ],
)
def test_bad_periods_get_a_400_saying_why(app, client, auth, people, create_room, query, message):
    room = create_room()
    people["admin"].locale = "en"
    db.session.commit()
    auth.login(people["admin"].username)
    for suffix in ("", "/seat-use.csv"):
        response = client.get(f"/labs/reports/rooms/{room.id}{suffix}?{query}")
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)


def test_room_report_is_for_admins_of_the_rooms_base(
    app, client, auth, people, create_room, create_user, create_institution
):
    room = create_room()
    other_admin = create_user(Role.ADMIN, institution=create_institution(code="ELSE"), username="admin-else")
    db.session.commit()
    auth.login(other_admin.username)
    assert client.get(f"/labs/reports/rooms/{room.id}").status_code == 404
    assert client.get(f"/labs/reports/rooms/{room.id}/seat-use.csv").status_code == 404
    assert room.code not in client.get("/labs/reports/").get_data(as_text=True)
    auth.logout()
    auth.login(people["trainer"].username)
    assert client.get(f"/labs/reports/rooms/{room.id}").status_code == 403
