"""Completion pages: the trainee's checklist and certificate, the cohort's eligibility for trainers, the
certificate PDF, revocation, and the public verification page (no sign-in)."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from lms import access
from lms.extensions import db
from lms.forms import CompletionRulesForm, HandoverForm, RevokeCertificateForm
from lms.i18n import current_locale
from lms.models import Certificate, Cohort, Enrollment, EnrollmentStatus, Role
from lms.services import assessment, completion
from lms.services import cohorts as cohort_service
from lms.services.certificates import (
    CertificateError,
    find_by_serial,
    get_certificate,
    masked_name,
    render_pdf,
    revoke_certificate,
)
from lms.services.progress import MAX_ID, localized

bp = Blueprint("completion", __name__)

CHECKLIST_LABELS = {
    "hours_total": lambda: _("Hours in total"),
    "hours_online": lambda: _("Online hours"),
    "hours_offline": lambda: _("Offline (lab) hours"),
    "lab_attendance": lambda: _("Lab sessions attended"),
}


def _cohort(cohort_id: int) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id) if cohort_id <= MAX_ID else None
    if cohort is None:
        abort(404)
    return cohort


def _managed_cohort(cohort_id: int) -> Cohort:
    """The cohort, if the signed-in user teaches it or administers it (404 otherwise)."""
    cohort = _cohort(cohort_id)
    if not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    return cohort


def _enrollment(cohort: Cohort) -> Enrollment | None:
    return next((e for e in cohort.enrollments if e.user_id == current_user.id), None)


@bp.get("/learn/<int:cohort_id>/completion")
@access.signed_in
def show_checklist(cohort_id: int):
    cohort = _cohort(cohort_id)
    enrollment = _enrollment(cohort)
    if enrollment is None or enrollment.status == EnrollmentStatus.WITHDRAWN:
        abort(404)
    return render_template(
        "lms/completion/checklist.html",
        cohort=cohort,
        checklist=completion.trainee_checklist(current_user, cohort),
        certificate=get_certificate(current_user, cohort),
        attempts=[c for c in assessment.candidates_of_user(current_user) if c.cohort_id == cohort.id],
        labels=CHECKLIST_LABELS,
        localized=localized,
        locale=current_locale(),
    )


@bp.get("/cohorts/<int:cohort_id>/eligibility")
@access.roles(Role.ADMIN, Role.TRAINER)
def show_eligibility(cohort_id: int):
    cohort = _managed_cohort(cohort_id)
    rows = completion.cohort_eligibility(cohort)
    return render_template(
        "lms/completion/eligibility.html",
        cohort=cohort,
        rows=rows,
        rules=completion.cohort_rules(cohort),
        eligible=sum(1 for row in rows if row.checklist.complete),
        revoke_form=RevokeCertificateForm(),
        can_revoke=cohort_service.can_administer_cohort(current_user, cohort),
        handover_form=_handover_form(),
        rules_form=_rules_form(cohort),
        to_hand_over=assessment.candidates_to_hand_over(cohort),
        exam_status={c.user_id: c for c in reversed(assessment.cohort_candidates(cohort))},
        labels=CHECKLIST_LABELS,
        localized=localized,
        locale=current_locale(),
    )


@bp.get("/cohorts/<int:cohort_id>/eligibility.csv")
@access.roles(Role.ADMIN, Role.TRAINER)
def export_eligibility(cohort_id: int):
    cohort = _managed_cohort(cohort_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["username", "real_name", "eligible", "requirements_left", "certificate", "revoked"])
    for row in completion.cohort_eligibility(cohort):
        left = [item.unit.key if item.unit else item.kind for item in row.checklist.left]
        certificate = row.certificate
        writer.writerow(
            [
                row.trainee.username,
                _safe_cell(row.trainee.real_name),
                "yes" if row.checklist.complete else "no",
                " ".join(left),
                certificate.serial if certificate else "",
                "yes" if certificate is not None and certificate.revoked else "",
            ]
        )
    return send_file(
        io.BytesIO(out.getvalue().encode("utf-8-sig")),
        mimetype="text/csv",
        as_attachment=True,
        download_name=f"{cohort.code}-eligibility.csv",
        max_age=0,
    )


def _rules_form(cohort: Cohort, formdata: bool = False) -> CompletionRulesForm:
    rules = completion.cohort_rules(cohort)
    form = CompletionRulesForm(
        **({} if formdata else {"formdata": None}),
        total_hours=rules.total_hours,
        online_hours=rules.online_hours,
        offline_hours=rules.offline_hours,
        lab_attendance=round(rules.lab_attendance * 100),
        exercise_pass_mark=rules.exercise_pass_mark,
        quizzes=rules.quizzes,
        final_project=rules.final_project or "",
    )
    exercises = [unit for unit in completion.rule_units(cohort) if unit.kind == "exercise"]
    form.final_project.choices = [("", _("None"))] + [
        (unit.key, localized(dict(unit.title), current_locale())) for unit in exercises
    ]
    return form


@bp.post("/cohorts/<int:cohort_id>/completion-rules")
@access.roles(Role.ADMIN)
def change_rules(cohort_id: int):
    cohort = _cohort(cohort_id)
    if not cohort_service.can_administer_cohort(current_user, cohort):
        abort(404)
    form = _rules_form(cohort, formdata=True)
    back = url_for("completion.show_eligibility", cohort_id=cohort.id)
    if not form.validate_on_submit():
        for field, errors in form.errors.items():
            for error in errors:
                flash(f"{getattr(form, field).label.text}: {error}", "error")
        return redirect(back)
    overrides: dict[str, object] = {}
    if not form.reset.data:
        overrides = {
            "hours": {
                "total": form.total_hours.data,
                "online": form.online_hours.data,
                "offline": form.offline_hours.data,
            },
            "lab_attendance": (form.lab_attendance.data or 0) / 100,
            "exercise_pass_mark": form.exercise_pass_mark.data,
            "quizzes": bool(form.quizzes.data),
            "final_project": form.final_project.data or None,
        }
    try:
        completion.set_cohort_overrides(cohort, overrides, current_user)
    except completion.InvalidCompletionRules as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(back)
    db.session.commit()
    flash(
        _("The completion rules of %(code)s were saved; every trainee was checked again.", code=cohort.code),
        "success",
    )
    return redirect(back)


def _handover_form() -> HandoverForm:
    form = HandoverForm()
    form.site.choices = [(site.id, site.name) for site in assessment.assessment_sites()]
    return form


def _safe_cell(value: str) -> str:
    """A cell that spreadsheet programs will not read as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _certificate_for_viewer(serial: str) -> Certificate:
    """The certificate, if the signed-in user may see its PDF: its holder, the cohort's managers, admins."""
    certificate = find_by_serial(serial)
    if certificate is None:
        abort(404)
    if certificate.user_id != current_user.id and not cohort_service.can_manage_cohort(
        current_user, certificate.cohort
    ):
        abort(404)
    return certificate


@bp.get("/certificates/<serial>.pdf")
@access.signed_in
def download_certificate(serial: str):
    certificate = _certificate_for_viewer(serial)
    if certificate.revoked:
        abort(410, _("This certificate was revoked; it can no longer be downloaded."))
    pdf = render_pdf(certificate, url_for("completion.verify", serial=certificate.serial, _external=True))
    return send_file(
        io.BytesIO(pdf),
        mimetype="application/pdf",
        as_attachment=request.args.get("inline") != "1",
        download_name=f"certificate-{certificate.serial}.pdf",
        max_age=0,
    )


@bp.post("/certificates/<serial>/revoke")
@access.roles(Role.ADMIN, Role.TRAINER)
def revoke(serial: str):
    certificate = find_by_serial(serial)
    if certificate is None or not cohort_service.can_administer_cohort(current_user, certificate.cohort):
        abort(404)
    form = RevokeCertificateForm()
    back = url_for("completion.show_eligibility", cohort_id=certificate.cohort_id)
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(back)
    try:
        revoke_certificate(certificate, current_user, form.reason.data or "")
    except CertificateError as error:
        flash(str(error), "error")
        return redirect(back)
    db.session.commit()
    flash(_("Certificate %(serial)s was revoked.", serial=certificate.serial), "success")
    return redirect(back)


@bp.get("/verify")
@access.public
def verify_form():
    serial = (request.args.get("serial") or "").strip()
    if serial:
        return redirect(url_for("completion.verify", serial=serial.upper()))
    return render_template("lms/completion/verify_form.html")


@bp.get("/verify/<serial>")
@access.public
def verify(serial: str):
    certificate = find_by_serial(serial)
    if certificate is None:
        abort(404, _("No certificate has this serial number. Check it against the certificate."))
    return render_template(
        "lms/completion/verify.html",
        certificate=certificate,
        holder=masked_name(certificate.holder_name),
        locale=current_locale(),
    )
