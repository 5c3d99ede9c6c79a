"""Separate assessment pages: the training base hands eligible trainees over; the assessment site's
assessors seat them in exam sessions, print admission slips and import the results. Assessors see
rosters and exams only; nothing here changes a training record."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm

from lms import access
from lms.extensions import db
from lms.forms import ExamRoomForm, ExamSessionForm, HandoverForm, ResultsForm
from lms.i18n import current_locale
from lms.models import Candidate, CandidateStatus, Cohort, ExamRoom, ExamSession, Institution, Role, User
from lms.services import assessment
from lms.services import cohorts as cohort_service
from lms.services.progress import MAX_ID

bp = Blueprint("assessment", __name__)
T = TypeVar("T")


def _get(model: type[T], row_id: int) -> T:
    row = db.session.get(model, row_id) if row_id <= MAX_ID else None
    if row is None:
        abort(404)
    return row


def _site(site_id: int) -> Institution:
    site = _get(Institution, site_id)
    if not assessment.can_assess(current_user, site):
        abort(404)
    return site


def _flash_form_errors(form: FlaskForm) -> None:
    for field, errors in form.errors.items():
        label = getattr(getattr(form, field, None), "label", None)
        for error in errors:
            flash(f"{label.text}: {error}" if label is not None else error, "error")


# --- the training base's side ------------------------------------------------------------------------------


@bp.post("/cohorts/<int:cohort_id>/handover")
@access.roles(Role.ADMIN, Role.TRAINER)
def hand_over(cohort_id: int):
    cohort = _get(Cohort, cohort_id)
    if not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    form = HandoverForm()
    form.site.choices = [(site.id, site.name) for site in assessment.assessment_sites()]
    back = url_for("completion.show_eligibility", cohort_id=cohort.id)
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return redirect(back)
    ids = [
        int(value) for value in request.form.getlist("trainee") if value.isdigit() and int(value) <= MAX_ID
    ]
    trainees = [user for user_id in ids if (user := db.session.get(User, user_id)) is not None]
    site = _get(Institution, form.site.data)
    try:
        handover = assessment.hand_over(cohort, site, trainees, current_user)
    except assessment.AssessmentError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(back)
    db.session.commit()
    flash(
        ngettext(
            "%(num)d trainee was handed over to %(site)s.",
            "%(num)d trainees were handed over to %(site)s.",
            len(trainees),
            site=handover.site.name,
        ),
        "success",
    )
    return redirect(back)


# --- the assessment site's side ----------------------------------------------------------------------------


@bp.get("/assessment")
@access.roles(Role.ASSESSOR, Role.ADMIN)
def list_sites():
    sites = assessment.sites_of(current_user)
    if len(sites) == 1:
        return redirect(url_for("assessment.show_site", site_id=sites[0].id))
    return render_template("lms/assessment/sites.html", sites=sites, waiting=assessment.waiting_count)


@bp.get("/assessment/sites/<int:site_id>")
@access.roles(Role.ASSESSOR, Role.ADMIN)
def show_site(site_id: int):
    site = _site(site_id)
    return _render_site(site, ExamRoomForm(), _exam_form(site), ResultsForm())


def _exam_form(site: Institution) -> ExamSessionForm:
    form = ExamSessionForm()
    form.room.choices = [
        (room.id, f"{room.code} · {room.name} ({room.seats})") for room in assessment.rooms_of(site)
    ]
    return form


def _render_site(
    site: Institution,
    room_form: ExamRoomForm,
    exam_form: ExamSessionForm,
    results_form: ResultsForm,
    problems: list[assessment.ResultProblem] | None = None,
    status: int = 200,
) -> Any:
    return (
        render_template(
            "lms/assessment/site.html",
            site=site,
            rosters=assessment.rosters_for(site),
            waiting=assessment.candidates_of(site, CandidateStatus.WAITING),
            exams=assessment.exam_sessions_of(site),
            rooms=assessment.rooms_of(site),
            room_form=room_form,
            exam_form=exam_form,
            results_form=results_form,
            problems=problems or [],
            locale=current_locale(),
        ),
        status,
    )


@bp.post("/assessment/sites/<int:site_id>/rooms")
@access.roles(Role.ASSESSOR, Role.ADMIN)
def create_room(site_id: int):
    site = _site(site_id)
    form = ExamRoomForm()
    if not form.validate_on_submit():
        return _render_site(site, form, _exam_form(site), ResultsForm(), status=422)
    try:
        room = assessment.create_room(
            site, form.code.data or "", form.name.data or "", form.seats.data or 0, current_user
        )
    except assessment.AssessmentError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _render_site(site, form, _exam_form(site), ResultsForm(), status=422)
    db.session.commit()
    flash(_("Room %(code)s was added.", code=room.code), "success")
    return redirect(url_for("assessment.show_site", site_id=site.id))


@bp.post("/assessment/sites/<int:site_id>/exams")
@access.roles(Role.ASSESSOR, Role.ADMIN)
def schedule_exam(site_id: int):
    site = _site(site_id)
    form = _exam_form(site)
    if not form.validate_on_submit():
        return _render_site(site, ExamRoomForm(), form, ResultsForm(), status=422)
    room = db.session.get(ExamRoom, form.room.data)
    assert room is not None  # the choices are the site's rooms
    ids = {int(v) for v in request.form.getlist("candidate") if v.isdigit() and int(v) <= MAX_ID}
    candidates = [c for c in assessment.candidates_of(site, CandidateStatus.WAITING) if c.id in ids]
    starts_at = assessment.local_to_utc(site, datetime.combine(form.day.data, form.start.data))
    try:
        session = assessment.schedule_exam(
            site, room, starts_at, form.minutes.data or 0, candidates, current_user
        )
    except assessment.AssessmentError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _render_site(site, ExamRoomForm(), form, ResultsForm(), status=422)
    db.session.commit()
    flash(_("The exam was scheduled and %(n)d candidates were seated.", n=len(candidates)), "success")
    return redirect(url_for("assessment.show_exam", exam_id=session.id))


@bp.get("/assessment/exams/<int:exam_id>")
@access.roles(Role.ASSESSOR, Role.ADMIN)
def show_exam(exam_id: int):
    session = _get(ExamSession, exam_id)
    if not assessment.can_assess(current_user, session.site):
        abort(404)
    return render_template("lms/assessment/exam.html", exam=session, seated=assessment.seated(session))


@bp.post("/assessment/sites/<int:site_id>/results")
@access.roles(Role.ASSESSOR, Role.ADMIN)
def import_results(site_id: int):
    site = _site(site_id)
    form = ResultsForm()
    if not form.validate_on_submit():
        return _render_site(site, ExamRoomForm(), _exam_form(site), form, status=422)
    data = form.file.data.read(assessment.MAX_RESULTS_BYTES + 1)
    try:
        report = assessment.import_results(site, data, current_user)
    except assessment.ResultsInvalid as error:
        db.session.rollback()
        flash(str(error), "error")
        return _render_site(site, ExamRoomForm(), _exam_form(site), form, problems=error.problems, status=422)
    db.session.commit()
    flash(
        _(
            "Results recorded: %(passed)d passed, %(failed)d failed, %(absent)d absent; "
            "%(retakes)d retakes opened.",
            passed=report.passed,
            failed=report.failed,
            absent=report.absent,
            retakes=report.retakes,
        ),
        "success",
    )
    return redirect(url_for("assessment.show_site", site_id=site.id))


@bp.get("/assessment/candidates/<int:candidate_id>/admission-slip.pdf")
@access.signed_in
def admission_slip(candidate_id: int):
    candidate = _get(Candidate, candidate_id)
    if candidate.user_id != current_user.id and not assessment.can_assess(
        current_user, _get(Institution, candidate.site_id)
    ):
        abort(404)
    if candidate.exam_session is None:
        abort(404)
    return send_file(
        io.BytesIO(assessment.admission_slip_pdf(candidate)),
        mimetype="application/pdf",
        as_attachment=True,
        download_name=f"admission-slip-{candidate.number}.pdf",
        max_age=0,
    )
