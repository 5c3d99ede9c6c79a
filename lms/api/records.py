"""Record resources: the caller's hours transcript (JSON, CSV or PDF)."""

from __future__ import annotations

import io

from flask import abort, g, jsonify, request, send_file

from lms import access
from lms.api import bp
from lms.i18n import current_locale
from lms.services import cohorts as cohort_service
from lms.services.transcript import transcript, transcript_csv, transcript_pdf


@bp.get("/me/transcript")
@access.signed_in
def get_my_transcript():
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv", "pdf"):
        abort(400)  # the document lists json, csv and pdf
    enrollments = cohort_service.current_enrollments(g.api_user)
    transcripts = [transcript(g.api_user, e.cohort) for e in enrollments]
    if fmt == "json":
        return jsonify(
            items=[
                {
                    "cohort_id": t.cohort.id,
                    "course_code": t.cohort.course.code,
                    "online_minutes": t.online_minutes,
                    "offline_minutes": t.offline_minutes,
                    "lines": [
                        {
                            "at": line.at.isoformat(),
                            "source": line.source.value,
                            "delivery": "online" if line.online else "offline",
                            "unit_key": line.unit_key,
                            "minutes": line.minutes,
                            "evidence": line.evidence,
                        }
                        for line in t.lines
                    ],
                    "exercises": [
                        {"unit_key": e.unit_key, "best_percent": e.best_percent, "attempts": e.attempts}
                        for e in t.exercises
                    ],
                }
                for t in transcripts
            ]
        )
    if not transcripts:
        abort(404)  # no enrollment, so no transcript
    latest = transcripts[0]
    if fmt == "csv":
        data, mimetype = transcript_csv(latest, current_locale()), "text/csv"
    else:
        data, mimetype = transcript_pdf(latest), "application/pdf"
    name = f"transcript-{latest.cohort.code}.{fmt}"
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)
