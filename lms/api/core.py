"""Core resources: the caller, users, cohorts and enrollments."""

from typing import Any

from flask import abort, current_app, g, jsonify, request
from sqlalchemy import select

from lms import access
from lms.api import bp
from lms.extensions import db
from lms.models import Cohort, Enrollment, Role, RoleGrant, User
from lms.services import cohorts as cohort_service
from lms.services.hours import hours_summary
from lms.web import MAX_ID

#: The largest integer the databases store (signed 64 bits); SQLite raises on larger query parameters, so
#: larger ids cannot match anything and larger offsets are clamped.
MAX_INT64 = 2**63 - 1


def user_json(user: User, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "real_name": user.real_name,
        "employer": user.employer,
        "active": user.active,
        "roles": [
            {"role": grant.role.value, "institution_id": grant.institution_id}
            for grant in sorted(user.grants, key=lambda g: (g.role.value, g.institution_id or 0))
        ],
    }
    if full:
        data.update(email=user.email, phone=user.phone, locale=user.locale, timezone=user.timezone)
    return data


def cohort_json(cohort: Cohort) -> dict[str, Any]:
    return {
        "id": cohort.id,
        "code": cohort.code,
        "name": cohort.name,
        "course": {
            "id": cohort.course.id,
            "code": cohort.course.code,
            "title": cohort.course.title,
            "title_en": cohort.course.title_en,
        },
        "training_base": {
            "id": cohort.training_base.id,
            "code": cohort.training_base.code,
            "name": cohort.training_base.name,
        },
        "starts_on": cohort.starts_on.isoformat(),
        "ends_on": cohort.ends_on.isoformat(),
        "required_hours": cohort.required_hours,
        "trainers": [{"id": t.id, "username": t.username, "real_name": t.real_name} for t in cohort.trainers],
    }


@bp.get("/me")
@access.signed_in
def get_me():
    return jsonify(user_json(g.api_user, full=True))


@bp.get("/users")
@access.roles(Role.ADMIN)
def list_users():
    query = select(User).order_by(User.username)
    admin: User = g.api_user
    if not admin.is_platform_admin:
        scope = {gr.institution_id for gr in admin.grants if gr.role == Role.ADMIN}
        query = query.where(User.grants.any(RoleGrant.institution_id.in_(scope)))
    username = request.args.get("username")
    if username is not None:
        query = query.where(User.username == username.strip().lower())
    limit = min(max(request.args.get("limit", 100, type=int) or 100, 1), 1000)
    offset = min(max(request.args.get("offset", 0, type=int) or 0, 0), MAX_INT64)
    users = db.session.scalars(query.limit(limit).offset(offset)).all()
    return jsonify(items=[user_json(u, full=True) for u in users], limit=limit, offset=offset)


@bp.get("/cohorts")
@access.signed_in
def list_cohorts():
    return jsonify(items=[cohort_json(c) for c in cohort_service.visible_cohorts(g.api_user)])


@bp.get("/cohorts/<int:cohort_id>/enrollments")
@access.roles(Role.ADMIN, Role.TRAINER)
def list_enrollments(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id) if cohort_id <= MAX_ID else None
    if cohort is None or not cohort_service.can_manage_cohort(g.api_user, cohort):
        abort(404)
    enrollments = db.session.scalars(
        select(Enrollment).where(Enrollment.cohort_id == cohort.id).order_by(Enrollment.id)
    ).all()
    items = []
    for enrollment in enrollments:
        summary = hours_summary(enrollment.user, cohort)
        items.append(
            {
                "id": enrollment.id,
                "status": enrollment.status.value,
                "enrolled_at": enrollment.enrolled_at.isoformat(),
                "user": user_json(enrollment.user),
                "hours": {
                    "online_minutes": summary.online_minutes,
                    "offline_minutes": summary.offline_minutes,
                    "required_minutes": summary.required_minutes,
                },
            }
        )
    return jsonify(cohort_id=cohort.id, items=items)


@bp.get("/openapi.json")
@access.public
def openapi_document():
    from lms.api.openapi import build_document

    return jsonify(build_document(current_app))
