"""Online theory: the course page, unit pages (lesson, lab plan, exercise, quiz), reading-time
heartbeats, marking a lesson read, quiz submission, and course images.

Trainees actively enrolled in the cohort learn (progress and hours are recorded); the cohort's trainers
and admins preview (nothing is recorded); everyone else gets 404 (or 403 from the role check).
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from lms import access
from lms.extensions import db
from lms.forms import ConfirmForm
from lms.i18n import current_locale
from lms.markdown import render_markdown
from lms.models import Cohort, CourseAsset, CourseUnit, QuizAttempt, Role, UnitKind
from lms.services import DomainError
from lms.services import learning as learning_service
from lms.services.hours import hours_summary
from lms.services.learning import Mode

bp = Blueprint("learn", __name__)

LEARNING_ROLES = (Role.TRAINEE, Role.TRAINER, Role.ADMIN)
_LEADING_TITLE_RE = re.compile(r"\A\s*#(?!#)[^\n]*(?:\n|\Z)")


def _cohort_and_mode(cohort_id: int) -> tuple[Cohort, Mode]:
    cohort = db.session.get(Cohort, cohort_id)
    mode = learning_service.access_mode(current_user, cohort) if cohort is not None else None
    if cohort is None or mode is None:
        abort(404)
    return cohort, mode


def _unit_or_404(cohort: Cohort, unit_key: str) -> CourseUnit:
    unit = learning_service.get_unit(cohort, unit_key)
    if unit is None:
        abort(404)
    return unit


def _not_imported(cohort: Cohort, mode: Mode) -> Any:
    return render_template("lms/learn/not_imported.html", cohort=cohort, mode=mode, locale=current_locale())


@lru_cache(maxsize=256)
def _rendered(version_id: int, text: str, script_root: str) -> Markup:
    """A version's files never change, so its rendered Markdown is kept (keyed by the text itself)."""

    def asset_url(path: str) -> str:
        return url_for("learn.show_asset", version_id=version_id, path=path)

    return render_markdown(_LEADING_TITLE_RE.sub("", text, count=1), asset_url)


def _markdown(version_id: int, texts: dict[str, str] | None, locale: str) -> Markup:
    return _rendered(version_id, learning_service.localised(texts, locale), request.script_root)


@bp.route("/learn/<int:cohort_id>")
@access.roles(*LEARNING_ROLES)
def show_course(cohort_id: int):
    cohort, mode = _cohort_and_mode(cohort_id)
    if cohort.course_version is None:
        return _not_imported(cohort, mode)
    learner = current_user if mode is Mode.LEARNER else None
    return render_template(
        "lms/learn/course.html",
        cohort=cohort,
        mode=mode,
        version=cohort.course_version,
        modules=learning_service.course_outline(cohort, learner),
        summary=hours_summary(current_user, cohort) if learner else None,
        required_seconds=learning_service.required_active_seconds,
        localised=learning_service.localised,
        locale=current_locale(),
    )


@bp.route("/learn/<int:cohort_id>/units/<unit_key>")
@access.roles(*LEARNING_ROLES)
def show_unit(cohort_id: int, unit_key: str):
    cohort, mode = _cohort_and_mode(cohort_id)
    if cohort.course_version is None:
        return _not_imported(cohort, mode)
    unit = _unit_or_404(cohort, unit_key)
    progress = None
    if mode is Mode.LEARNER and unit.kind.is_online:
        progress = learning_service.open_unit(current_user, cohort, unit)
        db.session.commit()
    locale = current_locale()
    context: dict[str, Any] = {}
    if unit.kind == UnitKind.LESSON:
        context["content"] = _markdown(unit.version_id, unit.body.get("content"), locale)
        context["complete_form"] = ConfirmForm()
    elif unit.kind == UnitKind.LAB:
        context["plan"] = _markdown(unit.version_id, unit.body.get("plan"), locale)
    elif unit.kind == UnitKind.EXERCISE:
        context["due_at"] = learning_service.exercise_due_at(cohort, unit)
    elif unit.kind == UnitKind.QUIZ:
        context["attempt_number"] = learning_service.next_attempt_number(progress)
        context["latest"] = (
            learning_service.latest_attempt(current_user, cohort, unit.key) if mode is Mode.LEARNER else None
        )
    return _render_unit(cohort, mode, unit, progress, **context)


def _render_unit(cohort, mode, unit, progress, template: str | None = None, **context: Any) -> Any:
    before, after = learning_service.adjacent_units(unit)
    return render_template(
        template or f"lms/learn/{unit.kind.value}.html",
        cohort=cohort,
        mode=mode,
        unit=unit,
        module=unit.module,
        progress=progress,
        before=before,
        after=after,
        required_seconds=learning_service.required_active_seconds(unit),
        heartbeat_seconds=int(current_app.config["HEARTBEAT_SECONDS"]),
        localised=learning_service.localised,
        locale=current_locale(),
        **context,
    )


def _json_error(message: str, status: int = 400) -> Any:
    response = jsonify(error="invalid", message=message)
    response.status_code = status
    return response


def _claimed_seconds() -> int | None:
    """The ``seconds`` of a heartbeat body: a finite, non-negative number, else None."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return None
    seconds = payload.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(int(seconds), 10**9)


@bp.route("/learn/<int:cohort_id>/units/<unit_key>/heartbeat", methods=["POST"])
@access.roles(*LEARNING_ROLES)
def record_heartbeat(cohort_id: int, unit_key: str):
    cohort, mode = _cohort_and_mode(cohort_id)
    unit = _unit_or_404(cohort, unit_key)
    claimed = _claimed_seconds()
    if claimed is None:
        return _json_error(_('Send JSON like {"seconds": 15} with a whole number of seconds, 0 or more.'))
    if not unit.kind.is_online:
        return _json_error(_("Labs and exercises are done on site; they have no online progress."))
    if mode is not Mode.LEARNER:
        return jsonify(accepted=0, active_seconds=0, credited=False, preview=True)
    progress, accepted, _credited_now = learning_service.heartbeat(current_user, cohort, unit, claimed)
    db.session.commit()
    return jsonify(accepted=accepted, active_seconds=progress.active_seconds, credited=progress.credited)


@bp.route("/learn/<int:cohort_id>/units/<unit_key>/complete", methods=["POST"])
@access.roles(*LEARNING_ROLES)
def complete_unit(cohort_id: int, unit_key: str):
    cohort, mode = _cohort_and_mode(cohort_id)
    unit = _unit_or_404(cohort, unit_key)
    back = url_for("learn.show_unit", cohort_id=cohort.id, unit_key=unit.key)
    if mode is not Mode.LEARNER:
        flash(_("This is a preview: nothing is recorded."), "info")
        return redirect(back)
    try:
        progress, credited = learning_service.complete_unit(current_user, cohort, unit)
    except DomainError as exc:
        flash(str(exc), "error")
        return redirect(back)
    db.session.commit()
    if credited or progress.credited:
        flash(
            _("Marked as read. %(minutes)d minutes are credited to your online hours.", minutes=unit.minutes),
            "success",
        )
    else:
        remaining = max(0, learning_service.required_active_seconds(unit) - progress.active_seconds)
        flash(
            _(
                "Marked as read. The %(minutes)d minutes are credited once you have spent about "
                "%(more)d more minutes reading this lesson.",
                minutes=unit.minutes,
                more=math.ceil(remaining / 60),
            ),
            "info",
        )
    return redirect(back)


def _answers_from_form(unit: CourseUnit) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for question in unit.body.get("questions", []):
        name = f"q-{question['id']}"
        if question["type"] == "multiple":
            answers[question["id"]] = request.form.getlist(name)
        else:
            answers[question["id"]] = request.form.get(name, "")
    return answers


@bp.route("/learn/<int:cohort_id>/units/<unit_key>/quiz", methods=["POST"])
@access.roles(*LEARNING_ROLES)
def submit_quiz(cohort_id: int, unit_key: str):
    cohort, mode = _cohort_and_mode(cohort_id)
    unit = _unit_or_404(cohort, unit_key)
    if unit.kind != UnitKind.QUIZ:
        abort(404)
    locale = current_locale()
    answers = _answers_from_form(unit)
    if mode is not Mode.LEARNER:
        grade = learning_service.grade_quiz(unit.body, answers, locale)
        preview = QuizAttempt(
            answers=learning_service.clean_answers(unit.body, answers),
            results=grade.results,
            score=grade.score,
            max_score=grade.max_score,
            passed=learning_service.quiz_passed(unit.body, grade),
        )
        return _render_unit(
            cohort,
            mode,
            unit,
            None,
            template="lms/learn/quiz_result.html",
            attempt=preview,
            credited=False,
            duplicate=False,
        )
    try:
        attempt_number = int(request.form.get("attempt", ""))
    except ValueError:
        abort(400)
    duplicate = False
    credited = False
    try:
        attempt, credited = learning_service.submit_quiz(
            current_user, cohort, unit, answers, attempt_number=attempt_number, locale=locale
        )
    except learning_service.AttemptAlreadySubmitted as exc:
        db.session.rollback()
        latest = learning_service.latest_attempt(current_user, cohort, unit.key)
        if latest is None:
            flash(str(exc), "error")
            return redirect(url_for("learn.show_unit", cohort_id=cohort.id, unit_key=unit.key))
        attempt, duplicate = latest, True
    db.session.commit()
    progress = learning_service.get_progress(current_user, cohort, unit.key)
    return _render_unit(
        cohort,
        mode,
        unit,
        progress,
        template="lms/learn/quiz_result.html",
        attempt=attempt,
        credited=credited,
        duplicate=duplicate,
    )


@bp.route("/courses/<int:version_id>/assets/<path:path>")
@access.roles(*LEARNING_ROLES)
def show_asset(version_id: int, path: str):
    if not learning_service.can_view_version(current_user, version_id):
        abort(404)
    asset = db.session.scalar(
        select(CourseAsset).where(CourseAsset.version_id == version_id, CourseAsset.path == path)
    )
    if asset is None:
        abort(404)
    response = current_app.response_class(asset.data, mimetype=asset.content_type)
    # A version's files never change: cache for a year; the sandbox keeps an SVG's scripts inert.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    response.set_etag(hashlib.sha256(asset.data).hexdigest()[:32])
    return response.make_conditional(request)
