"""Learning resources: courses and their outlines, and the caller's own progress and quiz attempts."""

from __future__ import annotations

from typing import Any

from flask import abort, g, jsonify, request
from sqlalchemy import select

from lms import access
from lms.api import bp
from lms.api.core import MAX_INT64
from lms.extensions import db
from lms.models import Course, CourseVersion, QuizAttempt, User
from lms.services import cohorts as cohort_service
from lms.services import progress
from lms.services.hours import hours_summary


def version_json(version: CourseVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {"id": version.id, "version": version.version, "imported_at": version.imported_at.isoformat()}


def course_json(course: Course, version: CourseVersion | None) -> dict[str, Any]:
    return {
        "id": course.id,
        "code": course.code,
        "title": {"zh_CN": course.title, "en": course.title_en},
        "level": course.level.value,
        "hours": {
            "total": course.total_hours,
            "online": course.online_hours,
            "offline": course.offline_hours,
        },
        "current_version": version_json(version),
    }


def unit_json(unit: progress.OutlineUnit) -> dict[str, Any]:
    return {
        "key": unit.key,
        "kind": unit.kind.value,
        "title": unit.title,
        "minutes": unit.minutes,
        "points": unit.points,
        "due_days": unit.due_days,
    }


@bp.get("/courses")
@access.signed_in
def list_courses():
    courses = progress.visible_courses(g.api_user)
    versions = progress.current_versions(courses)
    return jsonify(items=[course_json(course, versions.get(course.id)) for course in courses])


@bp.get("/courses/<int:course_id>/outline")
@access.signed_in
def get_course_outline(course_id: int):
    user: User = g.api_user
    course = db.session.get(Course, course_id) if course_id <= progress.MAX_ID else None
    if course is None or not progress.can_see_course(user, course):
        abort(404)
    version = progress.current_version(course)
    modules = progress.course_outline(version.id if version else None)
    return jsonify(
        course=course_json(course, version),
        modules=[
            {"key": m.key, "title": m.title, "units": [unit_json(unit) for unit in m.units]} for m in modules
        ],
    )


@bp.get("/me/progress")
@access.signed_in
def get_my_progress():
    user: User = g.api_user
    enrollments = cohort_service.current_enrollments(user)
    items = []
    for enrollment in enrollments:
        cohort = enrollment.cohort
        summary = hours_summary(user, cohort)
        statuses = progress.unit_statuses(user, cohort)
        online = [s for s in statuses if s.unit.is_online]
        items.append(
            {
                "cohort": {"id": cohort.id, "code": cohort.code, "name": cohort.name},
                "course_id": cohort.course_id,
                "enrollment_status": enrollment.status.value,
                "required_hours": cohort.required_hours,
                "hours": {
                    "online_minutes": summary.online_minutes,
                    "offline_minutes": summary.offline_minutes,
                    "required_minutes": summary.required_minutes,
                },
                "units_done": sum(1 for s in online if s.status == "completed"),
                "units_total": len(online),
                "units": [
                    {
                        "key": s.unit.key,
                        "kind": s.unit.kind.value,
                        "module_key": s.unit.module_key,
                        "status": s.status,
                        "credited": s.credited,
                        "best_score": s.best_score,
                        "attempts": s.attempts,
                    }
                    for s in statuses
                ],
            }
        )
    return jsonify(items=items)


@bp.get("/me/quiz-attempts")
@access.signed_in
def list_my_quiz_attempts():
    user: User = g.api_user
    query = (
        select(
            QuizAttempt.id,
            QuizAttempt.cohort_id,
            QuizAttempt.unit_key,
            QuizAttempt.score,
            QuizAttempt.max_score,
            QuizAttempt.passed,
            QuizAttempt.submitted_at,
        )
        .where(QuizAttempt.user_id == user.id)
        .order_by(QuizAttempt.submitted_at.desc(), QuizAttempt.id.desc())
    )
    if "cohort_id" in request.args:
        cohort_id = request.args.get("cohort_id", type=int)
        if cohort_id is None or not 1 <= cohort_id <= MAX_INT64:
            abort(400)
        if cohort_id > progress.MAX_ID:
            return jsonify(items=[])  # no row has such an id; PostgreSQL would refuse the parameter
        query = query.where(QuizAttempt.cohort_id == cohort_id)
    items = [
        {
            "id": row.id,
            "cohort_id": row.cohort_id,
            "unit_key": row.unit_key,
            "score": row.score,
            "max_score": row.max_score,
            "passed": row.passed,
            "submitted_at": row.submitted_at.isoformat(),
        }
        for row in db.session.execute(query)
    ]
    return jsonify(items=items)
