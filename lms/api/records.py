"""Record resources: the caller's hours transcript (JSON, or the latest cohort's as CSV or PDF)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from flask import abort, g, jsonify, request, send_file
from flask_babel import gettext as _

from lms import access
from lms.api import bp
from lms.i18n import current_locale
from lms.models import User
from lms.services import cohorts as cohort_service
from lms.services.transcript import Transcript, TranscriptLine, transcript, transcript_csv, transcript_pdf

FORMATS = ("json", "csv", "pdf")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def line_json(line: TranscriptLine) -> dict[str, Any]:
    return {
        "at": line.at.isoformat(),
        "recorded_at": line.recorded_at.isoformat(),
        "source": line.source.value,
        "delivery": line.delivery.value,
        "unit_key": line.unit_key,
        "title": line.title or None,
        "minutes": line.minutes,
        "evidence": {
            "active_minutes": line.active_minutes,
            "score_percent": line.score,
            "session_starts_at": _time(line.starts_at),
            "session_ends_at": _time(line.ends_at),
            "checked_in_at": _time(line.checked_in_at),
            "attendance": line.attendance or None,
            "site": line.site or None,
            "room": line.room or None,
            "note": line.note or None,
        },
    }


def transcript_json(t: Transcript) -> dict[str, Any]:
    assert t.cohort is not None
    return {
        "cohort_id": t.cohort.id,
        "cohort_code": t.cohort.code,
        "course_code": t.cohort.course.code,
        "online_minutes": t.online_minutes,
        "offline_minutes": t.offline_minutes,
        "lines": [line_json(line) for line in t.lines],
        "exercises": [
            {
                "unit_key": e.unit_key,
                "title": e.title or None,
                "best_percent": e.best_percent,
                "attempts": e.attempts,
            }
            for e in t.exercises
        ],
    }


@bp.get("/me/transcript")
@access.signed_in
def get_my_transcript():
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        response = jsonify(
            error="bad_request",
            message=_("Unknown format %(format)s: use json, csv or pdf.", format=fmt[:20]),
        )
        response.status_code = 400
        return response
    user: User = g.api_user
    enrollments = cohort_service.current_enrollments(user)
    if fmt == "json":
        return jsonify(items=[transcript_json(transcript(user, e.cohort)) for e in enrollments])
    if not enrollments:
        abort(404)  # no enrollment, so no transcript file
    latest = transcript(user, enrollments[0].cohort)
    if fmt == "csv":
        data, mimetype = transcript_csv(latest, current_locale()), "text/csv"
    else:
        data, mimetype = transcript_pdf(latest, current_locale()), "application/pdf"
    name = f"transcript-{latest.cohort.code if latest.cohort else 'all'}-{user.username}.{fmt}"
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)
