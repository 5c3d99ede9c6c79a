"""The labs JSON API: meetings, bookings, check-in and the caller's calendar feed.

Bearer tokens only (see lms.access): the blueprint is exempt from the CSRF check because no cookie ever
authenticates a call under /api/. Errors are ``{error, message}``; the document is labs/openapi.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from labs import attendance
from labs import services as lab_services
from labs.checkin import STEP_SECONDS, checkin_window
from labs.models import Booking, BookingState, LabOccurrence
from lms import access
from lms.api.core import MAX_INT64
from lms.db import commit_with_retry
from lms.extensions import csrf, db
from lms.models import Role, User
from lms.timeutil import utcnow

bp = Blueprint("labs_api", __name__, url_prefix="/api/v1/labs")
csrf.exempt(bp)

#: HTTP status of each check-in refusal (its ``reason`` is the error code).
CHECKIN_STATUS = {
    "not_in_cohort": 403,
    "cancelled": 409,
    "not_open": 409,
    "closed": 409,
    "already_checked_in": 409,
    "full": 409,
    "malformed_code": 422,
    "wrong_code": 422,
    "expired_code": 422,
}


def error(status: int, code: str, message: str):
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def _get(model: type, object_id: int) -> Any:
    return db.session.get(model, object_id) if object_id <= MAX_INT64 else None


def booking_json(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "occurrence_id": booking.occurrence_id,
        "user_id": booking.user_id,
        "state": booking.state.value,
        "position": lab_services.waitlist_position(booking),
        "created_at": booking.created_at.isoformat(),
        "cancelled_at": booking.cancelled_at.isoformat() if booking.cancelled_at else None,
        "checked_in_at": booking.checked_in_at.isoformat() if booking.checked_in_at else None,
        "attendance": booking.attendance.value if booking.attendance else None,
        "walk_in": bool(booking.details.get("walk_in")),
    }


def occurrence_json(occurrence: LabOccurrence, waitlisted: int, mine: Booking | None) -> dict[str, Any]:
    session, room = occurrence.session, occurrence.room
    return {
        "id": occurrence.id,
        "session_id": session.id,
        "cohort": {"id": session.cohort.id, "code": session.cohort.code},
        "unit_key": session.unit_key,
        "title": session.title,
        "start": occurrence.starts_at.isoformat(),
        "end": occurrence.ends_at.isoformat(),
        "status": occurrence.status.value,
        "room": {
            "id": room.id,
            "code": room.code,
            "name": room.name,
            "site": {
                "id": room.site.id,
                "code": room.site.code,
                "name": room.site.name,
                "timezone": room.site.timezone,
            },
        },
        "seats": occurrence.seats,
        "booked": occurrence.booked_count,
        "waitlisted": waitlisted,
        "my_booking": booking_json(mine) if mine is not None else None,
    }


def _may_see_booking(user: User, booking: Booking) -> bool:
    return booking.user_id == user.id or attendance.can_run_checkin(user, booking.occurrence)


@bp.get("/occurrences")
@access.signed_in
def list_occurrences():
    user: User = g.api_user
    limit = min(max(request.args.get("limit", 100, type=int) or 100, 1), 500)
    offset = min(max(request.args.get("offset", 0, type=int) or 0, 0), MAX_INT64)
    occurrences = lab_services.upcoming_occurrences(user, utcnow(), limit=limit, offset=offset)
    ids = [o.id for o in occurrences]
    waiting = lab_services.waitlisted_counts(ids)
    mine: dict[int, Booking] = {}
    if ids:
        for booking in db.session.scalars(
            select(Booking).where(
                Booking.user_id == user.id,
                Booking.occurrence_id.in_(ids),
                Booking.state != BookingState.CANCELLED,
            )
        ):
            mine[booking.occurrence_id] = booking
    items = [occurrence_json(o, waiting.get(o.id, 0), mine.get(o.id)) for o in occurrences]
    return jsonify(items=items, limit=limit, offset=offset)


@bp.post("/occurrences/<int:occurrence_id>/bookings")
@access.roles(Role.TRAINEE)
def create_booking(occurrence_id: int):
    user: User = g.api_user
    occurrence = _get(LabOccurrence, occurrence_id)
    if occurrence is None or not lab_services.can_see_occurrence(user, occurrence):
        abort(404)
    user_id = user.id

    def work() -> int:
        trainee = db.session.get(User, user_id)
        fresh = db.session.get(LabOccurrence, occurrence_id)
        assert trainee is not None and fresh is not None
        return lab_services.book_seat(trainee, fresh).id

    try:
        booking_id = commit_with_retry(work)
    except lab_services.AlreadyBooked as exc:
        return error(409, "already_booked", str(exc))
    except lab_services.BookingRefused as exc:
        return error(409, "booking_refused", str(exc))
    booking = db.session.get(Booking, booking_id)
    assert booking is not None
    response = jsonify(booking_json(booking))
    response.status_code = 201
    response.headers["Location"] = url_for("labs_api.get_booking", booking_id=booking.id)
    return response


@bp.get("/bookings/<int:booking_id>")
@access.signed_in
def get_booking(booking_id: int):
    booking = _get(Booking, booking_id)
    if booking is None or not _may_see_booking(g.api_user, booking):
        abort(404)
    return jsonify(booking_json(booking))


@bp.delete("/bookings/<int:booking_id>")
@access.signed_in
def cancel_booking(booking_id: int):
    user: User = g.api_user
    booking = _get(Booking, booking_id)
    if booking is None or not _may_see_booking(user, booking):
        abort(404)
    if booking.state != BookingState.CANCELLED:
        if booking.checked_in_at is not None:
            return error(409, "checked_in", _("A booking cannot be cancelled after checking in."))
        if booking.occurrence.ends_at <= utcnow():
            return error(409, "ended", _("This lab meeting is over; its bookings cannot be cancelled."))
    user_id = user.id

    def work() -> None:
        fresh = db.session.get(Booking, booking_id)
        actor = db.session.get(User, user_id)
        assert fresh is not None and actor is not None
        lab_services.cancel_booking(fresh, actor)

    commit_with_retry(work)
    booking = db.session.get(Booking, booking_id)
    assert booking is not None
    return jsonify(booking_json(booking))


@bp.get("/occurrences/<int:occurrence_id>/checkin-code")
@access.roles(Role.TRAINER, Role.ADMIN)
def get_checkin_code(occurrence_id: int):
    occurrence = _get(LabOccurrence, occurrence_id)
    if occurrence is None or not attendance.can_run_checkin(g.api_user, occurrence):
        abort(404)
    now = utcnow()
    current = attendance.checkin_code(occurrence, now)
    if db.session.dirty:  # an old occurrence just got its secret
        db.session.commit()
    opens, closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    checked_in, seated = attendance.checkin_counts(occurrence)
    response = jsonify(
        occurrence_id=occurrence.id,
        code=current.code,
        refresh_at=current.refresh_at.isoformat(),
        expires_at=current.expires_at.isoformat(),
        step_seconds=STEP_SECONDS,
        open=attendance.checkin_is_open(occurrence, now),
        opens_at=opens.isoformat(),
        closes_at=closes.isoformat(),
        checked_in=checked_in,
        seated=seated,
        checkin_url=url_for(
            "labs_checkin.check_in", occurrence_id=occurrence.id, code=current.code, _external=True
        ),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/occurrences/<int:occurrence_id>/checkin")
@access.roles(Role.TRAINEE)
def check_in(occurrence_id: int):
    occurrence = _get(LabOccurrence, occurrence_id)
    if occurrence is None:
        abort(404)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "code" not in body:
        return error(400, "bad_request", _('Send a JSON object with the code: {"code": "123456"}.'))
    code = body["code"]
    user_id = g.api_user.id

    def work() -> attendance.CheckinResult:
        trainee = db.session.get(User, user_id)
        fresh = db.session.get(LabOccurrence, occurrence_id)
        assert trainee is not None and fresh is not None
        return attendance.check_in(trainee, fresh, code, via="api")

    try:
        result = commit_with_retry(work)
    except attendance.CheckinRefused as exc:
        return error(CHECKIN_STATUS.get(exc.reason, 409), exc.reason, str(exc))
    booking = db.session.get(Booking, result.booking.id)
    assert booking is not None
    return jsonify(
        booking=booking_json(booking),
        walk_in=result.walk_in,
        late=result.late,
        credited_minutes=result.minutes,
    )


@bp.get("/calendar-feed")
@access.signed_in
def get_calendar_feed():
    try:
        from labs.calendar import feed_url_for
    except ImportError:
        current_app.logger.warning("labs.calendar.feed_url_for cannot be imported", exc_info=True)
        return error(503, "unavailable", _("Calendar feeds are not available on this server."))
    url = feed_url_for(g.api_user)
    if db.session.new or db.session.dirty:  # the first call makes the caller's token
        db.session.commit()
    return jsonify(url=url)
