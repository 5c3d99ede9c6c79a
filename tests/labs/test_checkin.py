"""On-site check-in: rotating codes with a grace step, the check-in window, one check-in per trainee,
walk-ins, the roster's marks, the sign-in sheet, and hours credited once through the signal."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from labs import checkin
from labs.attendance import (
    AttendanceRefused,
    CheckinRefused,
    check_in,
    mark_attendance,
    roster,
)
from labs.models import Attendance, Booking, BookingState, LabOccurrence
from labs.services import book_seat, create_lab_session
from lms import signals
from lms.extensions import db
from lms.models import HoursEntry, HoursSource, Role
from lms.services import cohorts
from lms.timeutil import utcnow
from tests.conftest import csrf_from

# A fixed meeting for the service tests, whose clock is injected: Saturday 2 March 2030, 09:00–12:00 in
# Shanghai (01:00–04:00 UTC).
START = datetime(2030, 3, 2, 1, 0, tzinfo=UTC)
END = START + timedelta(hours=3)


def schedule(cohort, room, trainer, admin, start_utc: datetime, minutes: int = 180, cutoff: int = 60):
    """One meeting of ``cohort`` at ``start_utc`` (an admin overrides any clash: tests run at any hour)."""
    local = start_utc.astimezone(ZoneInfo(room.site.timezone)).replace(tzinfo=None)
    session = create_lab_session(
        cohort=cohort,
        unit_key="m03-lab",
        room=room,
        trainers=[trainer],
        first_start_local=local,
        duration_minutes=minutes,
        title="图像分类实训",
        booking_cutoff_minutes=cutoff,
        actor=admin,
        override_reason="tests run at any hour",
    )
    db.session.commit()
    return session.occurrences[0]


def code_at(occurrence: LabOccurrence, at: datetime) -> str:
    return checkin.current_code(occurrence.checkin_secret, at).code


def lab_credits(user) -> list[HoursEntry]:
    return list(
        db.session.scalars(
            select(HoursEntry).where(
                HoursEntry.user_id == user.id, HoursEntry.source == HoursSource.LAB_ATTENDANCE
            )
        )
    )


@pytest.fixture
def occurrence(app, people, dummy_cohort, create_room):
    return schedule(dummy_cohort, create_room(), people["trainer"], people["admin"], START)


@pytest.fixture
def trainee_factory(create_user, dummy_cohort):
    def make(**params):
        params.setdefault("password", None)  # no sign-in needed: skip the slow password hash
        user = create_user(Role.TRAINEE, **params)
        cohorts.enroll(user, dummy_cohort)
        db.session.commit()
        return user

    return make


# --- codes (pure) --------------------------------------------------------------------------------------


def test_code_is_six_digits_and_changes_every_step():
    secret = "a" * 40
    base = datetime(2030, 1, 1, tzinfo=UTC)
    codes = [checkin.current_code(secret, base + timedelta(seconds=30 * n)).code for n in range(200)]
    assert all(re.fullmatch(r"\d{6}", code) for code in codes)
    assert len(set(codes)) > 190  # a new code nearly every step (collisions are 1 in a million)
    # Same step, same code; the step boundary is where it changes.
    assert checkin.current_code(secret, base + timedelta(seconds=29)).code == codes[0]
    shown = checkin.current_code(secret, base + timedelta(seconds=10))
    assert shown.refresh_at == base + timedelta(seconds=30)
    assert shown.expires_at == base + timedelta(seconds=60)
    # Another meeting's secret gives other codes.
    assert [checkin.current_code("b" * 40, base + timedelta(seconds=30 * n)).code for n in range(5)] != codes[
        :5
    ]


def test_code_follows_rfc_4226_truncation_of_hmac_sha256():
    import hashlib
    import hmac

    secret, step = "secret-of-the-meeting", 12345
    digest = hmac.new(secret.encode(), step.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    expected = (int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF) % 1_000_000
    assert checkin.code_for_step(secret, step) == f"{expected:06d}"


@pytest.mark.parametrize(
    ("shown_seconds_ago", "status"),
    [
        (0, checkin.CodeStatus.VALID),
        (29, checkin.CodeStatus.VALID),  # same step or the previous one, depending on the phase
        (30, checkin.CodeStatus.VALID),  # the previous code: the grace step
        (61, checkin.CodeStatus.EXPIRED),
        (9 * 60, checkin.CodeStatus.EXPIRED),
        (20 * 60, checkin.CodeStatus.WRONG),  # too old to tell apart from a wrong code
    ],
)
def test_previous_code_is_accepted_for_one_step_then_expires(shown_seconds_ago, status):
    secret = "c" * 40
    now = datetime(2030, 1, 1, 8, 0, 15, tzinfo=UTC)  # 15 s into a step
    shown = checkin.current_code(secret, now - timedelta(seconds=shown_seconds_ago)).code
    assert checkin.verify_code(secret, shown, now)[0] == status


def test_code_from_the_future_or_another_meeting_is_wrong():
    now = datetime(2030, 1, 1, 8, 0, 15, tzinfo=UTC)
    future = checkin.current_code("d" * 40, now + timedelta(seconds=30)).code
    other = checkin.current_code("e" * 40, now).code
    assert checkin.verify_code("d" * 40, future, now)[0] == checkin.CodeStatus.WRONG
    if other != checkin.current_code("d" * 40, now).code:
        assert checkin.verify_code("d" * 40, other, now)[0] == checkin.CodeStatus.WRONG


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("123456", "123456"),
        (" 123 456 ", "123456"),
        ("123-456", "123456"),
        (123456, "123456"),
        (42, "000042"),
        ("12345", None),
        ("1234567", None),
        ("12a456", None),
        ("１２３４５６", None),  # full-width digits
        (None, None),
        (True, None),
        (-123456, None),
        (["123456"], None),
        (12.5, None),
    ],
)
def test_typed_codes_are_normalised_or_refused(raw, normalised):
    assert checkin.normalise_code(raw) == normalised


@pytest.mark.parametrize(
    ("offset_minutes", "is_open"),
    [(-31, False), (-30, True), (0, True), (179, True), (180, False)],
)
def test_checkin_window_opens_30_minutes_before_and_closes_at_the_end(offset_minutes, is_open):
    opens, closes = checkin.checkin_window(START, END)
    at = START + timedelta(minutes=offset_minutes)
    assert (opens <= at < closes) == is_open


@pytest.mark.parametrize(
    ("arrived", "minutes", "late"),
    [
        (None, 180, None),
        (START - timedelta(minutes=20), 180, False),
        (START + timedelta(minutes=10), 170, False),  # exactly at the threshold is on time
        (START + timedelta(minutes=10, seconds=1), 169, True),
        (START + timedelta(minutes=95, seconds=30), 84, True),
        (END, 0, True),
        (END + timedelta(minutes=5), 0, True),
    ],
)
def test_attended_minutes_run_from_arrival_or_start_to_the_end(arrived, minutes, late):
    assert checkin.attended_minutes(START, END, arrived) == minutes
    if arrived is not None:
        assert checkin.is_late(arrived, START) is late


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        checkin.time_step(datetime(2030, 1, 1))


# --- check-in service (injected clock) -----------------------------------------------------------------


def test_booked_trainee_checks_in_once_and_hours_are_credited_once_with_evidence(app, people, occurrence):
    trainee = people["trainee"]
    book_seat(trainee, occurrence, now=START - timedelta(days=1))
    db.session.commit()
    sent = []
    at = START + timedelta(minutes=4, seconds=10)
    with signals.lab_attendance_recorded.connected_to(lambda _s, **kw: sent.append(kw)):
        result = check_in(trainee, occurrence, code_at(occurrence, at), at)
        db.session.commit()
        assert not result.walk_in and not result.late and result.minutes == 175
        booking = result.booking
        assert booking.checked_in_at == at and booking.attendance == Attendance.ATTENDED
        # The same code again (still inside its step) is refused: one check-in per trainee.
        with pytest.raises(CheckinRefused) as again:
            check_in(trainee, occurrence, code_at(occurrence, at), at + timedelta(seconds=5))
        assert again.value.reason == "already_checked_in"
        assert "already" in str(again.value)
        db.session.rollback()
        # The trainer re-marks: the signal goes again, the ledger keeps one credit.
        mark_attendance(booking, Attendance.LATE, people["trainer"], now=at + timedelta(minutes=1))
        db.session.commit()
    assert [kw["minutes"] for kw in sent] == [175, 175]
    credits = lab_credits(trainee)
    assert len(credits) == 1
    entry = credits[0]
    assert entry.minutes == 175 and entry.cohort_id == occurrence.session.cohort_id
    assert entry.source_ref == f"occurrence:{occurrence.id}"
    assert entry.evidence["checked_in_at"] == at.isoformat()
    assert entry.evidence["attendance"] == "attended"
    assert entry.evidence["occurrence_id"] == occurrence.id


def test_late_checkin_is_marked_late_and_credits_from_the_checkin(app, people, occurrence):
    book_seat(people["trainee"], occurrence, now=START - timedelta(days=1))
    at = START + timedelta(minutes=25)
    result = check_in(people["trainee"], occurrence, code_at(occurrence, at), at)
    db.session.commit()
    assert result.late and result.booking.attendance == Attendance.LATE
    assert [e.minutes for e in lab_credits(people["trainee"])] == [155]


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (START - timedelta(minutes=31), "not_open"),
        (END, "closed"),
        (END + timedelta(hours=2), "closed"),
    ],
)
def test_checkin_outside_the_window_is_refused(app, people, occurrence, at, reason):
    book_seat(people["trainee"], occurrence, now=START - timedelta(days=1))
    with pytest.raises(CheckinRefused) as refused:
        check_in(people["trainee"], occurrence, code_at(occurrence, at), at)
    assert refused.value.reason == reason
    db.session.rollback()
    assert db.session.scalar(select(Booking.checked_in_at)) is None


def test_checkin_at_the_opening_minute_is_accepted(app, people, occurrence):
    at = START - timedelta(minutes=30)
    result = check_in(people["trainee"], occurrence, code_at(occurrence, at), at)
    assert result.booking.checked_in_at == at and not result.late


@pytest.mark.parametrize(
    ("typed", "reason", "words"),
    [
        ("12345", "malformed_code", "6 digits"),
        ("expired", "expired_code", "expired"),
        ("wrong", "wrong_code", "not the code"),
    ],
)
def test_wrong_expired_and_malformed_codes_are_refused_with_clear_messages(
    app, people, occurrence, typed, reason, words
):
    at = START + timedelta(minutes=1)
    if typed == "expired":
        typed = code_at(occurrence, at - timedelta(minutes=2))
    elif typed == "wrong":
        valid = {code_at(occurrence, at), code_at(occurrence, at - timedelta(seconds=30))}
        typed = next(c for c in ("000000", "111111", "222222") if c not in valid)
    with pytest.raises(CheckinRefused) as refused:
        check_in(people["trainee"], occurrence, typed, at)
    assert refused.value.reason == reason
    assert words in str(refused.value)
    db.session.rollback()
    assert lab_credits(people["trainee"]) == []


def test_trainee_of_another_cohort_is_refused(app, people, occurrence, create_cohort, create_user):
    other_cohort = create_cohort(code="OTHER")
    outsider = create_user(Role.TRAINEE, username="outsider")
    cohorts.enroll(outsider, other_cohort)
    db.session.commit()
    at = START
    with pytest.raises(CheckinRefused) as refused:
        check_in(outsider, occurrence, code_at(occurrence, at), at)
    assert refused.value.reason == "not_in_cohort"
    assert occurrence.session.cohort.code in str(refused.value)


def test_withdrawn_trainee_is_refused(app, people, occurrence, dummy_cohort):
    enrollment = dummy_cohort.enrollments[0]
    cohorts.withdraw(enrollment, actor=None)
    db.session.commit()
    with pytest.raises(CheckinRefused) as refused:
        check_in(people["trainee"], occurrence, code_at(occurrence, START), START)
    assert refused.value.reason == "not_in_cohort"


def test_cancelled_meeting_refuses_checkin(app, people, occurrence):
    from labs.models import OccurrenceStatus

    occurrence.status = OccurrenceStatus.CANCELLED
    db.session.commit()
    with pytest.raises(CheckinRefused) as refused:
        check_in(people["trainee"], occurrence, code_at(occurrence, START), START)
    assert refused.value.reason == "cancelled"


def test_walk_in_takes_a_free_seat_and_is_refused_when_the_room_is_full(
    app, people, dummy_cohort, create_room, trainee_factory
):
    occurrence = schedule(dummy_cohort, create_room(seats=2), people["trainer"], people["admin"], START)
    first, walk_in, late_comer = people["trainee"], trainee_factory(), trainee_factory()
    book_seat(first, occurrence, now=START - timedelta(days=1))
    db.session.commit()
    at = START + timedelta(minutes=2)
    result = check_in(walk_in, occurrence, code_at(occurrence, at), at)
    db.session.commit()
    assert result.walk_in
    assert result.booking.state == BookingState.BOOKED and result.booking.details["walk_in"] is True
    assert db.session.get(LabOccurrence, occurrence.id).booked_count == 2
    with pytest.raises(CheckinRefused) as refused:
        check_in(late_comer, occurrence, code_at(occurrence, at), at)
    assert refused.value.reason == "full"
    db.session.rollback()
    assert db.session.get(LabOccurrence, occurrence.id).booked_count == 2
    assert db.session.scalar(select(Booking).where(Booking.user_id == late_comer.id)) is None
    # The booked trainee keeps the seat they booked and checks in normally.
    assert not check_in(first, occurrence, code_at(occurrence, at), at).walk_in


def test_waitlisted_trainee_cannot_take_a_booked_seat(
    app, people, dummy_cohort, create_room, trainee_factory
):
    occurrence = schedule(dummy_cohort, create_room(seats=1), people["trainer"], people["admin"], START)
    waiting = trainee_factory()
    book_seat(people["trainee"], occurrence, now=START - timedelta(days=1))
    assert book_seat(waiting, occurrence, now=START - timedelta(days=1)).state == BookingState.WAITLISTED
    db.session.commit()
    with pytest.raises(CheckinRefused) as refused:
        check_in(waiting, occurrence, code_at(occurrence, START), START)
    assert refused.value.reason == "full" and "waiting list" in str(refused.value)


def test_trainee_who_cancelled_may_walk_in_again_on_the_same_row(app, people, occurrence):
    from labs.services import cancel_booking

    booking = book_seat(people["trainee"], occurrence, now=START - timedelta(days=1))
    cancel_booking(booking, people["trainee"], now=START - timedelta(hours=20))
    db.session.commit()
    result = check_in(people["trainee"], occurrence, code_at(occurrence, START), START)
    db.session.commit()
    assert result.walk_in and result.booking.id == booking.id
    assert result.booking.state == BookingState.BOOKED and result.booking.cancelled_at is None
    assert db.session.get(LabOccurrence, occurrence.id).booked_count == 1


# --- roster --------------------------------------------------------------------------------------------


def test_roster_lists_seats_then_the_waiting_list_with_suggested_marks(
    app, people, dummy_cohort, create_room, trainee_factory
):
    occurrence = schedule(dummy_cohort, create_room(seats=2), people["trainer"], people["admin"], START)
    on_time = people["trainee"]
    no_show = trainee_factory(real_name="缺席者")
    waiting = trainee_factory(real_name="候补者")
    for trainee in (on_time, no_show, waiting):
        book_seat(trainee, occurrence, now=START - timedelta(days=1))
    check_in(on_time, occurrence, code_at(occurrence, START), START)
    db.session.commit()
    during = roster(occurrence, now=START + timedelta(minutes=30))
    assert {r.user.id for r in during[:2]} == {on_time.id, no_show.id}  # seats first, by name
    by_user = {r.user.id: r for r in during}
    assert by_user[waiting.id].position == 1 and during[-1].user.id == waiting.id
    assert by_user[on_time.id].booking.attendance == Attendance.ATTENDED
    assert by_user[no_show.id].suggested is None  # the meeting is still running
    after = {r.user.id: r for r in roster(occurrence, now=END + timedelta(minutes=1))}
    assert after[no_show.id].suggested == Attendance.ABSENT


def test_trainer_marks_present_late_absent_and_excused(
    app, people, dummy_cohort, create_room, trainee_factory
):
    occurrence = schedule(dummy_cohort, create_room(), people["trainer"], people["admin"], START)
    present, late, absent, excused = (
        people["trainee"],
        trainee_factory(),
        trainee_factory(),
        trainee_factory(),
    )
    bookings = {}
    for trainee in (present, late, absent, excused):
        bookings[trainee.id] = book_seat(trainee, occurrence, now=START - timedelta(days=1))
    db.session.commit()
    trainer = people["trainer"]
    # Before check-in opens only "excused" can be recorded.
    with pytest.raises(AttendanceRefused):
        mark_attendance(bookings[present.id], Attendance.ATTENDED, trainer, now=START - timedelta(hours=2))
    assert mark_attendance(bookings[excused.id], Attendance.EXCUSED, trainer, now=START - timedelta(hours=2))
    later = END + timedelta(minutes=5)
    assert mark_attendance(bookings[present.id], Attendance.ATTENDED, trainer, now=later)
    assert mark_attendance(bookings[late.id], Attendance.LATE, trainer, now=later)
    assert mark_attendance(bookings[absent.id], Attendance.ABSENT, trainer, now=later)
    assert not mark_attendance(bookings[absent.id], Attendance.ABSENT, trainer, now=later)  # no change
    db.session.commit()
    # No check-in: present counts from the start, late from the late threshold; the others get nothing.
    assert [e.minutes for e in lab_credits(present)] == [180]
    assert [e.minutes for e in lab_credits(late)] == [180 - checkin.LATE_MINUTES]
    assert lab_credits(absent) == [] and lab_credits(excused) == []
    assert lab_credits(present)[0].evidence["checked_in_at"] is None
    assert lab_credits(present)[0].evidence["recorded_by"] == trainer.id
    assert bookings[late.id].details["marked_by"] == trainer.id


def test_trainer_can_override_a_late_checkin(app, people, occurrence):
    book_seat(people["trainee"], occurrence, now=START - timedelta(days=1))
    at = START + timedelta(minutes=20)
    booking = check_in(people["trainee"], occurrence, code_at(occurrence, at), at).booking
    assert booking.attendance == Attendance.LATE
    mark_attendance(booking, Attendance.ATTENDED, people["trainer"], now=at + timedelta(minutes=1))
    db.session.commit()
    assert db.session.get(Booking, booking.id).attendance == Attendance.ATTENDED
    assert [e.minutes for e in lab_credits(people["trainee"])] == [160]  # credited once, from the check-in


def test_cancelled_booking_cannot_be_marked(app, people, occurrence):
    from labs.services import cancel_booking

    booking = book_seat(people["trainee"], occurrence, now=START - timedelta(days=1))
    cancel_booking(booking, people["trainee"], now=START - timedelta(days=1))
    with pytest.raises(AttendanceRefused):
        mark_attendance(booking, Attendance.ATTENDED, people["trainer"], now=START)


# --- pages ---------------------------------------------------------------------------------------------


@pytest.fixture
def live(app, people, dummy_cohort, create_room):
    """A meeting that started five minutes ago (real clock), with the trainee booked."""
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=5)
    occurrence = schedule(dummy_cohort, create_room(), people["trainer"], people["admin"], start, cutoff=0)
    book_seat(people["trainee"], occurrence, now=start - timedelta(days=1))
    db.session.commit()
    return occurrence


def test_trainer_screen_shows_the_code_and_a_qr_of_the_prefilled_checkin_page(app, auth, client, live):
    from labs.views_checkin import qr_svg

    auth.login("trainer1")
    page = client.get(f"/labs/occurrences/{live.id}/checkin/screen", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    shown = re.search(r'id="checkin-code"[^>]*>(\d{3}) (\d{3})<', html)
    assert shown, "the big code is on the screen"
    code = shown.group(1) + shown.group(2)
    assert checkin.verify_code(live.checkin_secret, code, utcnow())[0] == checkin.CodeStatus.VALID
    url = f"http://localhost/labs/occurrences/{live.id}/checkin?code={code}"
    with app.test_request_context():
        assert str(qr_svg(url, "QR code: check in to this lab")) in html
    assert 'class="qr"' in html and "<path" in html
    assert "0 checked in of 1 seats taken" in html  # the live count
    assert f"/labs/occurrences/{live.id}/checkin/code.json" in html  # the refresh script's source


def test_screen_json_gives_the_current_code_and_the_live_count(app, auth, client, live, people):
    auth.login("trainer1")
    state = client.get(f"/labs/occurrences/{live.id}/checkin/code.json").get_json()
    assert state["open"] is True and state["seated"] == 1 and state["checked_in"] == 0
    assert checkin.verify_code(live.checkin_secret, state["code"], utcnow())[0] == checkin.CodeStatus.VALID
    assert 0 <= state["refresh_in"] <= checkin.STEP_SECONDS
    assert state["qr_svg"].startswith("<svg")
    assert state["checkin_url"].endswith(f"/labs/occurrences/{live.id}/checkin?code={state['code']}")


def test_screen_is_only_for_the_meetings_trainers_and_admins(app, auth, client, live, create_user):
    create_user(Role.TRAINER, username="stranger")
    db.session.commit()
    auth.login("stranger")
    assert client.get(f"/labs/occurrences/{live.id}/checkin/screen").status_code == 404
    assert client.get(f"/labs/occurrences/{live.id}/checkin/code.json").status_code == 404
    assert client.get(f"/labs/occurrences/{live.id}/roster").status_code == 404
    auth.logout()
    auth.login("admin1")
    assert client.get(f"/labs/occurrences/{live.id}/checkin/screen").status_code == 200


def test_trainee_checks_in_from_the_prefilled_page(app, auth, client, live, people):
    auth.login("trainee1")
    code = code_at(live, utcnow())
    page = client.get(f"/labs/occurrences/{live.id}/checkin?code={code}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'value="{code}"' in html and 'inputmode="numeric"' in html
    response = client.post(
        f"/labs/occurrences/{live.id}/checkin", data={"code": code, "csrf_token": csrf_from(html)}
    )
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "checked in" in done.lower() or "签到" in done
    booking = db.session.scalar(select(Booking).where(Booking.user_id == people["trainee"].id))
    assert booking.checked_in_at is not None and booking.attendance == Attendance.ATTENDED
    assert len(lab_credits(people["trainee"])) == 1
    # The same code again: refused, with the time of the first check-in.
    again = client.post(
        f"/labs/occurrences/{live.id}/checkin", data={"code": code, "csrf_token": csrf_from(html)}
    )
    assert again.status_code in (200, 409)
    assert len(lab_credits(people["trainee"])) == 1


def test_wrong_code_on_the_page_says_so(app, auth, client, live):
    auth.login("trainee1")
    html = client.get(f"/labs/occurrences/{live.id}/checkin").get_data(as_text=True)
    valid = {code_at(live, utcnow()), code_at(live, utcnow() - timedelta(seconds=30))}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid)
    response = client.post(
        f"/labs/occurrences/{live.id}/checkin",
        data={"code": wrong, "csrf_token": csrf_from(html)},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 422
    assert "not the code on the screen" in response.get_data(as_text=True)


def test_trainee_of_another_cohort_sees_why_on_the_page(app, auth, client, live, create_cohort, create_user):
    outsider = create_user(Role.TRAINEE, username="outsider")
    cohorts.enroll(outsider, create_cohort(code="OTHER"))
    db.session.commit()
    auth.login("outsider")
    page = client.get(f"/labs/occurrences/{live.id}/checkin", headers={"Accept-Language": "en"})
    assert page.status_code == 403
    assert "AIET-P-T1" in page.get_data(as_text=True)


def test_checkin_start_page_leads_to_the_open_meeting(app, auth, client, live):
    auth.login("trainee1")
    response = client.get("/labs/checkin")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/labs/occurrences/{live.id}/checkin")


def test_roster_page_saves_marks(app, auth, client, live, people, trainee_factory):
    other = trainee_factory(real_name="王五", employer="中国电信南京分公司")
    book_seat(other, live, now=live.starts_at - timedelta(days=1))
    db.session.commit()
    auth.login("trainer1")
    page = client.get(f"/labs/occurrences/{live.id}/roster", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "王五" in html and "中国电信南京分公司" in html
    bookings = {b.user_id: b.id for b in db.session.scalars(select(Booking))}
    response = client.post(
        f"/labs/occurrences/{live.id}/roster",
        data={
            "csrf_token": csrf_from(html),
            f"mark-{bookings[people['trainee'].id]}": "excused",
            f"mark-{bookings[other.id]}": "attended",
        },
    )
    assert response.status_code == 302
    marks = {b.user_id: b.attendance for b in db.session.scalars(select(Booking))}
    assert marks == {people["trainee"].id: Attendance.EXCUSED, other.id: Attendance.ATTENDED}
    assert lab_credits(people["trainee"]) == [] and len(lab_credits(other)) == 1
    bad = client.post(
        f"/labs/occurrences/{live.id}/roster",
        data={"csrf_token": csrf_from(html), f"mark-{bookings[other.id]}": "asleep"},
    )
    assert bad.status_code == 400


def test_sign_in_sheet_renders_for_printing(app, auth, client, live, people):
    people["trainee"].employer = "中建八局"
    db.session.commit()
    auth.login("trainer1")
    page = client.get(f"/labs/occurrences/{live.id}/sign-in-sheet", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert people["trainee"].real_name in html and "中建八局" in html
    assert "Signature" in html and "@media print" in html
    assert html.count('class="signature"') >= 1 + 5 + 1  # header, the trainee, blank lines
