"""Records: the trainee's hours transcript (page, CSV, PDF), trainees' transcripts for their trainers, the
cohort's subsidy evidence pack for its admins, and the audit log viewer."""

from __future__ import annotations

import io
import json

from flask import Blueprint, Response, abort, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import Select, func, or_, select

from lms import access
from lms.extensions import db
from lms.i18n import current_locale
from lms.models import AuditLog, Cohort, Enrollment, Role, RoleGrant, User
from lms.services import audit
from lms.services import cohorts as cohort_service
from lms.services.progress import MAX_ID, localized
from lms.services.transcript import Transcript, subsidy_pack, transcript, transcript_csv, transcript_pdf

bp = Blueprint("records", __name__)

AUDIT_PAGE_SIZE = 50
#: Longest filter text taken from the query string (the columns are 64 characters).
MAX_FILTER = 64
#: ``?cohort_id=all``: the transcript over every cohort of the trainee.
ALL_COHORTS = "all"


def _enrollments(user: User) -> list[Enrollment]:
    """All the user's enrollments, withdrawn ones too (their hours stay in the ledger); latest first."""
    return list(
        db.session.scalars(
            select(Enrollment)
            .join(Cohort)
            .where(Enrollment.user_id == user.id)
            .order_by(Cohort.starts_on.desc(), Cohort.id)
        )
    )


def _own_transcript() -> Transcript:
    """The signed-in user's transcript of ``?cohort_id=`` (one of their cohorts, or ``all``), by default
    of their latest cohort; 404 when they have no such enrollment."""
    enrollments = _enrollments(current_user)
    wanted = request.args.get("cohort_id", "")
    if not enrollments:
        abort(404)
    if wanted == ALL_COHORTS:
        return transcript(current_user)
    for enrollment in enrollments:
        if not wanted or str(enrollment.cohort_id) == wanted:
            return transcript(current_user, enrollment.cohort)
    abort(404)


def _file_name(t: Transcript, extension: str) -> str:
    scope = t.cohort.code if t.cohort is not None else "all"
    return f"transcript-{scope}-{t.user.username}.{extension}"


def _file(data: bytes, mimetype: str, name: str) -> Response:
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)


@bp.get("/me/transcript")
@access.signed_in
def show_my_transcript():
    enrollments = _enrollments(current_user)
    t = _own_transcript() if enrollments else None
    selected: int | str | None = None
    if t is not None:
        selected = t.cohort.id if t.cohort is not None else ALL_COHORTS
    return render_template(
        "lms/records/transcript.html",
        t=t,
        enrollments=enrollments,
        selected=selected,
        all_cohorts=ALL_COHORTS,
        codes={e.cohort_id: e.cohort.code for e in enrollments},
        localized=localized,
        locale=current_locale(),
    )


@bp.get("/me/transcript.csv")
@access.signed_in
def export_my_transcript():
    t = _own_transcript()
    return _file(transcript_csv(t, current_locale()), "text/csv", _file_name(t, "csv"))


@bp.get("/me/transcript.pdf")
@access.signed_in
def print_my_transcript():
    t = _own_transcript()
    return _file(transcript_pdf(t, current_locale()), "application/pdf", _file_name(t, "pdf"))


@bp.get("/cohorts/<int:cohort_id>/trainees/<int:user_id>/transcript.pdf")
@access.roles(Role.ADMIN, Role.TRAINER)
def print_trainee_transcript(cohort_id: int, user_id: int):
    cohort = db.session.get(Cohort, cohort_id) if cohort_id <= MAX_ID else None
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    enrollment = db.session.scalar(
        select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.user_id == user_id)
    )
    if enrollment is None:
        abort(404)
    t = transcript(enrollment.user, cohort)
    return _file(transcript_pdf(t, current_locale()), "application/pdf", _file_name(t, "pdf"))


@bp.get("/cohorts/<int:cohort_id>/subsidy-pack.zip")
@access.roles(Role.ADMIN, Role.TRAINER)
def download_subsidy_pack(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id) if cohort_id <= MAX_ID else None
    # the pack holds phone numbers of every trainee: the cohort's admins only; trainers get 404
    if cohort is None or not cohort_service.can_administer_cohort(current_user, cohort):
        abort(404)
    data = subsidy_pack(cohort, lambda serial: url_for("completion.verify", serial=serial, _external=True))
    audit.record("subsidy_pack.downloaded", current_user, cohort, bytes=len(data))
    db.session.commit()
    return _file(data, "application/zip", f"subsidy-evidence-{cohort.code}.zip")


def _visible_audit(query: Select, user: User) -> Select:
    """Platform admins see every line; an institution's admins the lines of people holding a role at one
    of their institutions, and the system's own lines (no actor)."""
    if user.is_platform_admin:
        return query
    institutions = {g.institution_id for g in user.grants if g.role == Role.ADMIN}
    staff = select(RoleGrant.user_id).where(RoleGrant.institution_id.in_(institutions))
    return query.where(or_(AuditLog.actor_id.is_(None), AuditLog.actor_id.in_(staff)))


def _filter(name: str) -> str:
    return (request.args.get(name) or "").strip()[:MAX_FILTER]


@bp.get("/admin/audit")
@access.roles(Role.ADMIN)
def list_audit():
    action, actor, target = _filter("action"), _filter("actor"), _filter("target")
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_ID // AUDIT_PAGE_SIZE)
    query = _visible_audit(select(AuditLog), current_user)
    if action:
        query = query.where(AuditLog.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditLog.actor.has(func.lower(User.username) == actor.lower()))
    if target:
        query = query.where(AuditLog.target_type == target)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    lines = db.session.scalars(
        query.order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(AUDIT_PAGE_SIZE)
        .offset((min(page, pages) - 1) * AUDIT_PAGE_SIZE)
    ).all()
    return render_template(
        "lms/records/audit.html",
        lines=lines,
        details={
            line.id: json.dumps(
                line.details, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
            )
            for line in lines
        },
        action=action,
        actor=actor,
        target=target,
        page=min(page, pages),
        pages=pages,
        total=total,
    )
