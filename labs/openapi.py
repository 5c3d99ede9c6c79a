"""OpenAPI path items of the labs API (merged into /api/v1/openapi.json by the core).

Schemas are written inline (a plugin adds paths, not components); every object is closed and lists
every property as required, like the core's, so a field added to labs/api.py without a line here fails
tests/lms/test_openapi.py.
"""

from typing import Any

# The core's limits, kept literal so importing this module stays cheap: offsets are 64-bit, row ids
# 32-bit (lms.web.MAX_ID).
MAX_INT64 = 2**63 - 1
MAX_ID = 2**31 - 1

ID = {"type": "integer", "minimum": 1}
STRING = {"type": "string"}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


UNAUTHENTICATED = {"$ref": "#/components/responses/Unauthenticated"}
FORBIDDEN = {"$ref": "#/components/responses/Forbidden"}
NOT_FOUND = {"$ref": "#/components/responses/NotFound"}

BOOKING = _object(
    {
        "id": ID,
        "occurrence_id": ID,
        "user_id": ID,
        "state": {"type": "string", "enum": ["booked", "waitlisted", "cancelled"]},
        "position": {
            "type": "integer",
            "minimum": 1,
            "nullable": True,
            "description": "Place on the waiting list (1 = next to get a seat); None unless waitlisted.",
        },
        "created_at": DATETIME,
        "cancelled_at": NULLABLE_DATETIME,
        "checked_in_at": NULLABLE_DATETIME,
        "attendance": {
            "type": "string",
            "enum": ["attended", "late", "absent", "excused"],
            "nullable": True,
            "description": "Set by check-in (attended or late) or by the trainer's roster.",
        },
        "walk_in": {
            "type": "boolean",
            "description": "The trainee had no seat and took a free one when checking in.",
        },
    },
    "A trainee's seat, or place on the waiting list, in one lab meeting.",
)

OCCURRENCE = _object(
    {
        "id": ID,
        "session_id": ID,
        "cohort": _object({"id": ID, "code": STRING}),
        "unit_key": STRING,
        "title": STRING,
        "start": DATETIME,
        "end": DATETIME,
        "status": {"type": "string", "enum": ["scheduled", "cancelled"]},
        "room": _object(
            {
                "id": ID,
                "code": STRING,
                "name": STRING,
                "site": _object({"id": ID, "code": STRING, "name": STRING, "timezone": STRING}),
            }
        ),
        "seats": {"type": "integer", "minimum": 1},
        "booked": {"type": "integer", "minimum": 0, "description": "Seats taken."},
        "waitlisted": {"type": "integer", "minimum": 0, "description": "Trainees waiting for a seat."},
        "my_booking": {**BOOKING, "nullable": True, "description": "The caller's own booking, if any."},
    },
    "One meeting of a lab session. Times are UTC; show them in the site's zone.",
)

OCCURRENCE_ID = {
    "name": "occurrence_id",
    "in": "path",
    "required": True,
    "description": "Row ids are 32-bit; an id that cannot exist gets 404.",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
BOOKING_ID = {**OCCURRENCE_ID, "name": "booking_id"}

PATHS: dict[str, Any] = {
    "/api/v1/labs/occurrences": {
        "get": {
            "operationId": "listLabOccurrences",
            "summary": "Upcoming lab meetings the caller may see",
            "description": (
                "Meetings that have not ended, soonest first: of their cohorts for trainees, of the cohorts "
                "and sessions they teach for trainers, of their training bases for admins (all for platform "
                "admins). Cancelled meetings are included with status `cancelled`."
            ),
            "tags": ["labs"],
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Page size, clamped to 1–500; 0 and non-numbers mean 100.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                },
                {
                    "name": "offset",
                    "in": "query",
                    "description": "Meetings to skip; negative values and non-numbers mean 0.",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INT64, "default": 0},
                },
            ],
            "responses": {
                "200": _json(
                    _object(
                        {
                            "items": {"type": "array", "items": OCCURRENCE},
                            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_INT64},
                        }
                    ),
                    "A page of meetings.",
                ),
                "401": UNAUTHENTICATED,
            },
        },
    },
    "/api/v1/labs/occurrences/{occurrence_id}/bookings": {
        "parameters": [OCCURRENCE_ID],
        "post": {
            "operationId": "createLabBooking",
            "summary": "Book a seat (the calling trainee)",
            "description": (
                "Takes a seat, or a place on the waiting list when the seats are gone. Booking closes "
                "before the start (the session's cut-off)."
            ),
            "tags": ["labs"],
            "responses": {
                "201": {
                    **_json(BOOKING, "The new booking: `booked`, or `waitlisted` with its position."),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "The booking."}},
                },
                "401": UNAUTHENTICATED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
                "409": _error(
                    "`already_booked`: the caller holds a seat or a waiting-list place already; "
                    "`booking_refused`: booking has closed, the meeting is cancelled, or the caller has "
                    "another lab at that time."
                ),
            },
        },
    },
    "/api/v1/labs/bookings/{booking_id}": {
        "parameters": [BOOKING_ID],
        "get": {
            "operationId": "getLabBooking",
            "summary": "A booking (its trainee, or the meeting's trainers and admins)",
            "tags": ["labs"],
            "responses": {
                "200": _json(BOOKING, "The booking."),
                "401": UNAUTHENTICATED,
                "404": NOT_FOUND,
            },
        },
        "delete": {
            "operationId": "cancelLabBooking",
            "summary": "Cancel a booking",
            "description": (
                "The freed seat goes to the first trainee on the waiting list. Cancelling a cancelled "
                "booking changes nothing."
            ),
            "tags": ["labs"],
            "responses": {
                "200": _json(BOOKING, "The cancelled booking."),
                "401": UNAUTHENTICATED,
                "404": NOT_FOUND,
                "409": _error("`checked_in`: the trainee has checked in; `ended`: the meeting is over."),
            },
        },
    },
    "/api/v1/labs/occurrences/{occurrence_id}/checkin-code": {
        "parameters": [OCCURRENCE_ID],
        "get": {
            "operationId": "getLabCheckinCode",
            "summary": "The current check-in code (the meeting's trainers and admins)",
            "description": (
                "A 6-digit code that changes every `step_seconds`; the previous code is still accepted "
                "until `expires_at`. Codes are derived, never stored."
            ),
            "tags": ["labs"],
            "responses": {
                "200": _json(
                    _object(
                        {
                            "occurrence_id": ID,
                            "code": {"type": "string", "pattern": "^[0-9]{6}$"},
                            "refresh_at": {**DATETIME, "description": "When the next code appears."},
                            "expires_at": {**DATETIME, "description": "When this code stops being accepted."},
                            "step_seconds": {"type": "integer", "minimum": 1},
                            "open": {"type": "boolean", "description": "Check-in is open now."},
                            "opens_at": DATETIME,
                            "closes_at": DATETIME,
                            "checked_in": {"type": "integer", "minimum": 0},
                            "seated": {"type": "integer", "minimum": 0},
                            "checkin_url": {
                                "type": "string",
                                "description": "The trainee's check-in page with this code filled in.",
                            },
                        }
                    ),
                    "The code to show now.",
                ),
                "401": UNAUTHENTICATED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/v1/labs/occurrences/{occurrence_id}/checkin": {
        "parameters": [OCCURRENCE_ID],
        "post": {
            "operationId": "checkInToLab",
            "summary": "Check in with the code on the trainer's screen (the calling trainee)",
            "description": (
                "Open from 30 minutes before the start to the end, once per trainee. A trainee of the "
                "cohort without a seat (no booking, or on the waiting list) checks in as a walk-in when a "
                "seat is free. Attended minutes are credited to the trainee's hours."
            ),
            "tags": ["labs"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["code"],
                            "properties": {"code": {"type": "string", "example": "123456"}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    _object(
                        {
                            "booking": BOOKING,
                            "walk_in": {"type": "boolean"},
                            "late": {"type": "boolean"},
                            "credited_minutes": {"type": "integer", "minimum": 0},
                        }
                    ),
                    "Checked in.",
                ),
                "400": _error("The body is not a JSON object with a `code`."),
                "401": UNAUTHENTICATED,
                "403": _error(
                    "`forbidden`: the caller is not a trainee; `not_in_cohort`: the meeting belongs to "
                    "another cohort."
                ),
                "404": NOT_FOUND,
                "409": _error(
                    "`not_open`, `closed`, `cancelled`, `already_checked_in`, or `full` (no free seat for a "
                    "walk-in)."
                ),
                "422": _error("`malformed_code`, `wrong_code`, or `expired_code`."),
            },
        },
    },
    "/api/v1/labs/calendar-feed": {
        "get": {
            "operationId": "getLabCalendarFeed",
            "summary": "The caller's iCalendar feed address",
            "description": "A secret address for phone and desktop calendars; keep it private.",
            "tags": ["labs"],
            "responses": {
                "200": _json(_object({"url": {"type": "string"}}), "The feed's address."),
                "401": UNAUTHENTICATED,
                "503": _error("Calendar feeds are not available on this server."),
            },
        },
    },
}
