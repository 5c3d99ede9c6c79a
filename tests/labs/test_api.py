"""The labs JSON API: meetings, bookings, check-in codes, check-in and the calendar feed address."""

from __future__ import annotations

import importlib.util
from datetime import timedelta

import pytest
from sqlalchemy import select

from labs import checkin
from labs.models import Booking, BookingState
from labs.services import book_seat
from lms.extensions import db
from lms.models import HoursEntry, Role
from lms.services import cohorts, tokens
from lms.timeutil import utcnow
from tests.labs.test_checkin import code_at, schedule

API = "/api/v1/labs"


@pytest.fixture
def call(client):
    """call(user, method, path, json=None) -> response, with a fresh bearer token of the user."""

    def call(user, method: str, path: str, **kwargs):
        _token, plaintext = tokens.issue_token(user, "test", None, actor=None)
        db.session.commit()
        return client.open(path, method=method, headers={"Authorization": f"Bearer {plaintext}"}, **kwargs)

    return call


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message"} and body["error"] == code and body["message"]
    return body


@pytest.fixture
def upcoming(app, people, dummy_cohort, create_room):
    """A meeting of the dummy cohort tomorrow in a 2-seat room, booking open."""
    start = utcnow().replace(second=0, microsecond=0) + timedelta(days=1)
    return schedule(dummy_cohort, create_room(seats=2), people["trainer"], people["admin"], start)


@pytest.fixture
def live(app, people, dummy_cohort, create_room):
    """A meeting that started five minutes ago, the trainee booked."""
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=5)
    occurrence = schedule(dummy_cohort, create_room(), people["trainer"], people["admin"], start, cutoff=0)
    book_seat(people["trainee"], occurrence, now=start - timedelta(days=1))
    db.session.commit()
    return occurrence


@pytest.fixture
def outsider(create_user, create_cohort):
    user = create_user(Role.TRAINEE, username="outsider")
    cohorts.enroll(user, create_cohort(code="OTHER"))
    db.session.commit()
    return user


def test_list_shows_the_callers_upcoming_meetings(app, call, people, upcoming, outsider):
    response = call(people["trainee"], "GET", f"{API}/occurrences")
    assert response.status_code == 200
    body = response.get_json()
    assert [item["id"] for item in body["items"]] == [upcoming.id]
    item = body["items"][0]
    assert item["seats"] == 2 and item["booked"] == 0 and item["waitlisted"] == 0
    assert item["start"] == upcoming.starts_at.isoformat() and item["end"] == upcoming.ends_at.isoformat()
    assert item["room"]["code"] == upcoming.room.code and item["my_booking"] is None
    assert item["cohort"]["code"] == "AIET-P-T1"
    assert call(outsider, "GET", f"{API}/occurrences").get_json()["items"] == []
    assert [i["id"] for i in call(people["trainer"], "GET", f"{API}/occurrences").get_json()["items"]] == [
        upcoming.id
    ]
    assert call(people["assessor"], "GET", f"{API}/occurrences").get_json()["items"] == []


def test_booking_answers_201_then_409_and_waitlists_when_full(
    app, call, client, people, upcoming, create_user, dummy_cohort
):
    path = f"{API}/occurrences/{upcoming.id}/bookings"
    created = call(people["trainee"], "POST", path)
    assert created.status_code == 201
    booking = created.get_json()
    assert booking["state"] == "booked" and booking["position"] is None
    assert booking["occurrence_id"] == upcoming.id and booking["user_id"] == people["trainee"].id
    assert created.headers["Location"].endswith(f"{API}/bookings/{booking['id']}")
    assert_error(call(people["trainee"], "POST", path), 409, "already_booked")

    second, third = (create_user(Role.TRAINEE, password=None) for _ in range(2))
    for trainee in (second, third):
        cohorts.enroll(trainee, dummy_cohort)
    db.session.commit()
    assert call(second, "POST", path).get_json()["state"] == "booked"
    waiting = call(third, "POST", path)
    assert waiting.status_code == 201
    assert waiting.get_json()["state"] == "waitlisted" and waiting.get_json()["position"] == 1
    listed = call(people["trainee"], "GET", f"{API}/occurrences").get_json()["items"][0]
    assert listed["booked"] == 2 and listed["waitlisted"] == 1
    assert listed["my_booking"]["id"] == booking["id"]


def test_booking_refusals_401_403_404(app, call, client, people, upcoming, outsider):
    path = f"{API}/occurrences/{upcoming.id}/bookings"
    assert_error(client.post(path), 401, "unauthenticated")
    assert_error(call(people["trainer"], "POST", path), 403, "forbidden")
    assert_error(call(outsider, "POST", path), 404, "not_found")
    assert_error(call(people["trainee"], "POST", f"{API}/occurrences/999999/bookings"), 404, "not_found")
    assert_error(call(people["trainee"], "POST", f"{API}/occurrences/{2**64}/bookings"), 404, "not_found")


def test_booking_after_the_cutoff_is_refused_with_409(app, call, people, dummy_cohort, create_room):
    start = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=30)
    soon = schedule(dummy_cohort, create_room(), people["trainer"], people["admin"], start, cutoff=60)
    body = assert_error(
        call(people["trainee"], "POST", f"{API}/occurrences/{soon.id}/bookings"), 409, "booking_refused"
    )
    assert "60" in body["message"]  # the cut-off, in the caller's language


def test_get_and_cancel_a_booking(app, call, people, upcoming, outsider, create_user, dummy_cohort):
    mine = call(people["trainee"], "POST", f"{API}/occurrences/{upcoming.id}/bookings").get_json()
    path = f"{API}/bookings/{mine['id']}"
    assert call(people["trainee"], "GET", path).get_json() == mine
    assert call(people["trainer"], "GET", path).status_code == 200  # the meeting's trainer
    assert_error(call(outsider, "GET", path), 404, "not_found")
    assert_error(call(outsider, "DELETE", path), 404, "not_found")
    cancelled = call(people["trainee"], "DELETE", path)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["state"] == "cancelled" and cancelled.get_json()["cancelled_at"]
    assert call(people["trainee"], "DELETE", path).get_json()["state"] == "cancelled"  # idempotent
    assert db.session.get(Booking, mine["id"]).occurrence.booked_count == 0
    assert_error(call(people["trainee"], "GET", f"{API}/bookings/424242"), 404, "not_found")


def test_cancelling_frees_the_seat_for_the_waiting_list(
    app, call, people, upcoming, create_user, dummy_cohort
):
    others = [create_user(Role.TRAINEE, password=None) for _ in range(2)]
    for trainee in others:
        cohorts.enroll(trainee, dummy_cohort)
    db.session.commit()
    mine = call(people["trainee"], "POST", f"{API}/occurrences/{upcoming.id}/bookings").get_json()
    call(others[0], "POST", f"{API}/occurrences/{upcoming.id}/bookings")
    waiting = call(others[1], "POST", f"{API}/occurrences/{upcoming.id}/bookings").get_json()
    assert waiting["state"] == "waitlisted"
    call(people["trainee"], "DELETE", f"{API}/bookings/{mine['id']}")
    promoted = call(others[1], "GET", f"{API}/bookings/{waiting['id']}").get_json()
    assert promoted["state"] == "booked" and promoted["position"] is None


def test_checked_in_booking_cannot_be_cancelled(app, call, people, live):
    code = code_at(live, utcnow())
    assert (
        call(
            people["trainee"], "POST", f"{API}/occurrences/{live.id}/checkin", json={"code": code}
        ).status_code
        == 200
    )
    booking = db.session.scalar(select(Booking).where(Booking.user_id == people["trainee"].id))
    assert_error(call(people["trainee"], "DELETE", f"{API}/bookings/{booking.id}"), 409, "checked_in")


def test_checkin_code_for_the_meetings_trainer(app, call, people, live, create_user):
    response = call(people["trainer"], "GET", f"{API}/occurrences/{live.id}/checkin-code")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert checkin.verify_code(live.checkin_secret, body["code"], utcnow())[0] == checkin.CodeStatus.VALID
    assert body["step_seconds"] == checkin.STEP_SECONDS and body["open"] is True
    assert body["checked_in"] == 0 and body["seated"] == 1
    assert body["refresh_at"] < body["expires_at"]
    assert body["checkin_url"].endswith(f"/labs/occurrences/{live.id}/checkin?code={body['code']}")
    assert call(people["admin"], "GET", f"{API}/occurrences/{live.id}/checkin-code").status_code == 200
    assert_error(
        call(people["trainee"], "GET", f"{API}/occurrences/{live.id}/checkin-code"), 403, "forbidden"
    )
    stranger = create_user(Role.TRAINER, username="stranger", password=None)
    db.session.commit()
    assert_error(call(stranger, "GET", f"{API}/occurrences/{live.id}/checkin-code"), 404, "not_found")
    assert_error(call(people["trainer"], "GET", f"{API}/occurrences/999999/checkin-code"), 404, "not_found")


def test_checkin_through_the_api(app, call, client, people, live, outsider):
    path = f"{API}/occurrences/{live.id}/checkin"
    code = call(people["trainer"], "GET", f"{API}/occurrences/{live.id}/checkin-code").get_json()["code"]
    assert_error(client.post(path, json={"code": code}), 401, "unauthenticated")
    assert_error(call(people["trainer"], "POST", path, json={"code": code}), 403, "forbidden")
    assert_error(call(outsider, "POST", path, json={"code": code}), 403, "not_in_cohort")
    assert_error(call(people["trainee"], "POST", path, json={"nope": 1}), 400, "bad_request")
    assert_error(call(people["trainee"], "POST", path, data="code=1"), 400, "bad_request")
    assert_error(call(people["trainee"], "POST", path, json={"code": "12"}), 422, "malformed_code")
    valid = {code, code_at(live, utcnow()), code_at(live, utcnow() - timedelta(seconds=30))}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid)
    assert_error(call(people["trainee"], "POST", path, json={"code": wrong}), 422, "wrong_code")
    ok = call(people["trainee"], "POST", path, json={"code": code_at(live, utcnow())})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    body = ok.get_json()
    assert body["walk_in"] is False and body["late"] is False
    assert body["booking"]["attendance"] == "attended" and body["booking"]["checked_in_at"]
    assert 0 < body["credited_minutes"] <= 180
    again = call(people["trainee"], "POST", path, json={"code": code_at(live, utcnow())})
    assert_error(again, 409, "already_checked_in")
    entries = db.session.scalars(select(HoursEntry).where(HoursEntry.user_id == people["trainee"].id)).all()
    assert [e.minutes for e in entries] == [body["credited_minutes"]]
    assert (
        call(people["trainer"], "GET", f"{API}/occurrences/{live.id}/checkin-code").get_json()["checked_in"]
        == 1
    )


def test_walk_in_through_the_api(app, call, people, live, create_user, dummy_cohort):
    walk_in = create_user(Role.TRAINEE, password=None)
    cohorts.enroll(walk_in, dummy_cohort)
    db.session.commit()
    response = call(
        walk_in, "POST", f"{API}/occurrences/{live.id}/checkin", json={"code": code_at(live, utcnow())}
    )
    assert response.status_code == 200
    assert response.get_json()["walk_in"] is True
    assert response.get_json()["booking"]["walk_in"] is True
    booking = db.session.scalar(select(Booking).where(Booking.user_id == walk_in.id))
    assert booking.state == BookingState.BOOKED


def test_checkin_before_the_window_is_409(app, call, people, upcoming):
    book_seat(people["trainee"], upcoming)
    db.session.commit()
    response = call(
        people["trainee"], "POST", f"{API}/occurrences/{upcoming.id}/checkin", json={"code": "123456"}
    )
    assert_error(response, 409, "not_open")


def test_calendar_feed_address(app, call, client, people):
    if importlib.util.find_spec("labs.calendar") is None:
        pytest.skip("labs/calendar.py (the iCalendar feeds) is not in this tree yet")
    assert_error(client.get(f"{API}/calendar-feed"), 401, "unauthenticated")
    first = call(people["trainee"], "GET", f"{API}/calendar-feed")
    assert first.status_code == 200
    url = first.get_json()["url"]
    assert url.startswith("http") and ".ics" in url
    assert call(people["trainee"], "GET", f"{API}/calendar-feed").get_json()["url"] == url  # stable
    assert call(people["trainer"], "GET", f"{API}/calendar-feed").get_json()["url"] != url
