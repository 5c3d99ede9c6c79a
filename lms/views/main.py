"""The home redirect and the role dashboards."""

from datetime import date
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from lms import access
from lms.extensions import db
from lms.models import Cohort, Enrollment, EnrollmentStatus, Institution, Role
from lms.services import cohorts as cohort_service
from lms.services import progress
from lms.services.hours import cohort_hours, hours_summary

bp = Blueprint("main", __name__)


@bp.route("/")
@access.public
def index():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


def plugin_panels(role: Role) -> list:
    panels = []
    for plugin in current_app.extensions.get("lms.plugins", []):
        panels.extend(plugin.dashboard_panels(current_user, role))
    return sorted(panels, key=lambda panel: panel.order)


@bp.route("/dashboard")
@access.signed_in
def dashboard():
    user = current_user
    sections: dict[str, dict[str, Any]] = {}
    today = date.today()
    if user.has_role(Role.TRAINEE):
        enrollments = db.session.scalars(
            select(Enrollment)
            .join(Cohort)
            .where(Enrollment.user_id == user.id, Enrollment.status != EnrollmentStatus.WITHDRAWN)
            .order_by(Cohort.starts_on.desc())
        ).all()
        sections["trainee"] = {
            "rows": [
                {
                    "enrollment": e,
                    "summary": hours_summary(user, e.cohort),
                    "modules": progress.module_progress(user, e.cohort),
                    "next": progress.next_units(user, e.cohort, today=today),
                }
                for e in enrollments
            ],
            "panels": plugin_panels(Role.TRAINEE),
        }
    if user.has_role(Role.TRAINER):
        taught = db.session.scalars(
            select(Cohort).where(Cohort.trainers.any(id=user.id)).order_by(Cohort.starts_on.desc())
        ).all()
        rows = []
        for cohort in taught:
            active = [e for e in cohort.enrollments if e.status != EnrollmentStatus.WITHDRAWN]
            minutes = cohort_hours(cohort)
            required = cohort.required_hours * 60
            expected = required * progress.expected_share(cohort, today)
            behind = sum(1 for e in active if progress.is_behind(minutes.get(e.user_id, 0), expected))
            mean = sum(minutes.get(e.user_id, 0) for e in active) / len(active) / 60 if active else 0.0
            rows.append({"cohort": cohort, "trainees": len(active), "mean_hours": mean, "behind": behind})
        sections["trainer"] = {"rows": rows, "panels": plugin_panels(Role.TRAINER)}
    if user.has_role(Role.ASSESSOR):
        sites = [g.institution for g in user.grants if g.role == Role.ASSESSOR and g.institution]
        sections["assessor"] = {"sites": sites, "panels": plugin_panels(Role.ASSESSOR)}
    if user.has_role(Role.ADMIN):
        cohorts = cohort_service.visible_cohorts(user)
        sections["admin"] = {
            "cohorts": cohorts[:10],
            "institution_count": db.session.query(Institution).count(),
            "panels": plugin_panels(Role.ADMIN),
        }
    return render_template(
        "lms/dashboard.html",
        sections=sections,
        today=today,
        localized=progress.localized,
        unit_kinds=unit_kind_labels(),
    )


def unit_kind_labels() -> dict[str, str]:
    """The unit kinds as a trainee reads them."""
    return {"lesson": _("Lesson"), "quiz": _("Quiz"), "lab": _("Lab"), "exercise": _("Exercise")}


@bp.route("/cohorts/<int:cohort_id>")
@access.roles(Role.ADMIN, Role.TRAINER)
def show_cohort(cohort_id: int):
    from flask import abort

    from lms.forms import ConfirmForm, EnrollForm

    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    minutes = cohort_hours(cohort)
    enrollments = sorted(cohort.enrollments, key=lambda e: e.user.username)
    return render_template(
        "lms/cohort.html",
        cohort=cohort,
        enrollments=enrollments,
        minutes=minutes,
        can_administer=cohort_service.can_administer_cohort(current_user, cohort),
        enroll_form=EnrollForm(),
        confirm_form=ConfirmForm(),
        panels=plugin_panels(Role.TRAINER),
    )
