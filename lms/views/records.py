"""Records: hours transcripts (page, CSV, PDF), the subsidy evidence pack, and the audit log."""

from __future__ import annotations

import io
import json

from flask import Blueprint, Response, abort, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from lms import access
from lms.extensions import db
from lms.i18n import current_locale
from lms.models import AuditLog, Cohort, Enrollment, Role, RoleGrant, User
from lms.services import audit
from lms.services import cohorts as cohort_service
from lms.services.progress import MAX_ID, localized
from lms.services.transcript import subsidy_pack, transcript, transcript_csv, transcript_pdf

bp = Blueprint("records", __name__)
AUDIT_PAGE_SIZE = 50
MAX_FILTER = 64


def _own_cohort(user: User) -> Cohort:
    """The cohort of ``?cohort_id=`` among the user's enrollments, else the latest one (404 if none)."""
    enrollments = cohort_service.current_enrollments(user)
    wanted = request.args.get("cohort_id", type=int)
    for enrollment in enrollments:
        if wanted is None or enrollment.cohort_id == wanted:
            return enrollment.cohort
    abort(404)


def _file(data: bytes, mimetype: str, name: str) -> Response:
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)


@bp.get("/me/transcript")
@access.signed_in
def show_my_transcript():
    enrollments = cohort_service.current_enrollments(current_user)
    if not enrollments:
        return render_template("lms/records/transcript.html", t=None, enrollments=[])
    return render_template(
        "lms/records/transcript.html",
        t=transcript(current_user, _own_cohort(current_user)),
        enrollments=enrollments,
        localized=localized,
        locale=current_locale(),
    )


@bp.get("/me/transcript.csv")
@access.signed_in
def export_my_transcript():
    t = transcript(current_user, _own_cohort(current_user))
    return _file(transcript_csv(t, current_locale()), "text/csv", f"transcript-{t.cohort.code}.csv")


@bp.get("/me/transcript.pdf")
@access.signed_in
def print_my_transcript():
    t = transcript(current_user, _own_cohort(current_user))
    return _file(transcript_pdf(t), "application/pdf", f"transcript-{t.cohort.code}.pdf")


@bp.get("/cohorts/<int:cohort_id>/trainees/<int:user_id>/transcript.pdf")
@access.roles(Role.ADMIN, Role.TRAINER)
def print_trainee_transcript(cohort_id: int, user_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    enrollment = db.session.scalar(
        select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.user_id == user_id)
    )
    if enrollment is None:
        abort(404)
    t = transcript(enrollment.user, cohort)
    return _file(
        transcript_pdf(t), "application/pdf", f"transcript-{cohort.code}-{enrollment.user.username}.pdf"
    )


@bp.get("/cohorts/<int:cohort_id>/subsidy-pack.zip")
@access.roles(Role.ADMIN)
def download_subsidy_pack(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_administer_cohort(current_user, cohort):
        abort(404)
    data = subsidy_pack(cohort, lambda serial: url_for("completion.verify", serial=serial, _external=True))
    audit.record("subsidy_pack.downloaded", current_user, cohort, bytes=len(data))
    db.session.commit()
    return _file(data, "application/zip", f"subsidy-evidence-{cohort.code}.zip")


@bp.get("/admin/audit")
@access.roles(Role.ADMIN)
def list_audit():
    action = (request.args.get("action") or "").strip()[:MAX_FILTER]
    actor = (request.args.get("actor") or "").strip()[:MAX_FILTER]
    target = (request.args.get("target") or "").strip()[:MAX_FILTER]
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_ID // AUDIT_PAGE_SIZE)
    query = select(AuditLog)
    if not current_user.is_platform_admin:
        # an institution's admin sees what its people did, and what the system did
        institutions = {g.institution_id for g in current_user.grants if g.role == Role.ADMIN}
        staff = select(RoleGrant.user_id).where(RoleGrant.institution_id.in_(institutions))
        query = query.where(or_(AuditLog.actor_id.is_(None), AuditLog.actor_id.in_(staff)))
    if action:
        query = query.where(AuditLog.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditLog.actor.has(User.username == actor))
    if target:
        query = query.where(AuditLog.target_type == target)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    lines = db.session.scalars(
        query.order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(AUDIT_PAGE_SIZE)
        .offset((page - 1) * AUDIT_PAGE_SIZE)
    ).all()
    return render_template(
        "lms/records/audit.html",
        lines=lines,
        details={line.id: json.dumps(line.details, ensure_ascii=False, sort_keys=True) for line in lines},
        action=action,
        actor=actor,
        target=target,
        page=page,
        pages=max(1, -(-total // AUDIT_PAGE_SIZE)),
        total=total,
    )
