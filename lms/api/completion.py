"""Completion resources: the caller's checklists and certificates."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, url_for

from lms import access
from lms.api import bp
from lms.completion import Checklist
from lms.models import Certificate, User
from lms.services import cohorts as cohort_service
from lms.services import completion
from lms.services.certificates import user_certificates


def certificate_json(certificate: Certificate) -> dict[str, Any]:
    return {
        "serial": certificate.serial,
        "cohort_id": certificate.cohort_id,
        "course_code": certificate.course_code,
        "course_title": certificate.course_title,
        "hours": {
            "online_minutes": certificate.online_minutes,
            "offline_minutes": certificate.offline_minutes,
        },
        "issued_at": certificate.issued_at.isoformat(),
        "revoked_at": certificate.revoked_at.isoformat() if certificate.revoked_at else None,
        "pdf_url": None
        if certificate.revoked
        else url_for("completion.download_certificate", serial=certificate.serial, _external=True),
        "verification_url": url_for("completion.verify", serial=certificate.serial, _external=True),
    }


def checklist_json(result: Checklist) -> list[dict[str, Any]]:
    return [
        {
            "kind": item.kind,
            "unit_key": item.unit.key if item.unit else None,
            "done": item.done,
            "have": round(item.have, 2),
            "need": round(item.need, 2),
        }
        for item in result.items
    ]


@bp.get("/me/certificates")
@access.signed_in
def list_my_certificates():
    return jsonify(items=[certificate_json(c) for c in user_certificates(g.api_user)])


@bp.get("/me/completion")
@access.signed_in
def get_my_completion():
    user: User = g.api_user
    enrollments = cohort_service.current_enrollments(user)
    items = []
    for enrollment in enrollments:
        result = completion.trainee_checklist(user, enrollment.cohort)
        items.append(
            {
                "cohort_id": enrollment.cohort_id,
                "complete": result.complete,
                "completed_at": enrollment.completed_at.isoformat() if enrollment.completed_at else None,
                "requirements": checklist_json(result),
            }
        )
    return jsonify(items=items)
