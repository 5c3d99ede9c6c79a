"""Trainers' progress reports on a cohort: the trainee × module grid (and its CSV), unit completion, and
quiz item analysis. Read-only; the cohort's trainers and admins only (404 for everyone else)."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, abort, render_template, send_file
from flask_babel import gettext as _
from flask_login import current_user

from lms import access
from lms.extensions import db
from lms.i18n import current_locale
from lms.models import Cohort, Role
from lms.services import cohorts as cohort_service
from lms.services import progress
from lms.services.progress import CohortGrid, localized

bp = Blueprint("reports", __name__)

#: Characters that make spreadsheet programs read a cell as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _managed_cohort(cohort_id: int) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id) if cohort_id <= progress.MAX_ID else None
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    return cohort


@bp.get("/cohorts/<int:cohort_id>/progress")
@access.roles(Role.ADMIN, Role.TRAINER)
def show_progress(cohort_id: int):
    cohort = _managed_cohort(cohort_id)
    grid = progress.cohort_grid(cohort)
    return render_template(
        "lms/reports/progress.html",
        cohort=cohort,
        grid=grid,
        completion=progress.unit_completion(cohort),
        localized=localized,
        unit_kinds={"lesson": _("Lesson"), "quiz": _("Quiz")},
    )


@bp.get("/cohorts/<int:cohort_id>/progress.csv")
@access.roles(Role.ADMIN, Role.TRAINER)
def export_progress(cohort_id: int):
    cohort = _managed_cohort(cohort_id)
    data = progress_csv(progress.cohort_grid(cohort), current_locale())
    return send_file(
        io.BytesIO(data),
        mimetype="text/csv",
        as_attachment=True,
        download_name=f"{cohort.code}-progress.csv",
        max_age=0,
    )


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def progress_csv(grid: CohortGrid, locale: str) -> bytes:
    """The grid as CSV in UTF-8 with a BOM, so that Excel opens the Chinese text correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            _("Username"),
            _("Real name"),
            _("Employer"),
            _("Online hours"),
            _("Offline hours"),
            _("Total hours"),
            _("Required hours"),
            _("Expected hours by today"),
            _("Behind schedule"),
            _("Units done"),
            _("Units in the course"),
            *(
                _("%(module)s (of %(n)d units)", module=localized(module.title, locale), n=total)
                for module, total in zip(grid.modules, grid.module_totals, strict=True)
            ),
        ]
    )
    for row in grid.rows:
        writer.writerow(
            [
                _cell(row.trainee.username),
                _cell(row.trainee.real_name),
                _cell(row.trainee.employer),
                f"{row.online_minutes / 60:.1f}",
                f"{row.offline_minutes / 60:.1f}",
                f"{row.total_minutes / 60:.1f}",
                f"{grid.required_minutes / 60:.0f}",
                f"{grid.expected_minutes / 60:.1f}",
                _("yes") if row.behind else _("no"),
                row.units_done,
                grid.units_total,
                *row.module_done,
            ]
        )
    return out.getvalue().encode("utf-8-sig")


@bp.get("/cohorts/<int:cohort_id>/quizzes/<unit_key>")
@access.roles(Role.ADMIN, Role.TRAINER)
def show_quiz_analysis(cohort_id: int, unit_key: str):
    cohort = _managed_cohort(cohort_id)
    analysis = progress.quiz_item_analysis(cohort, unit_key)
    if analysis is None:
        abort(404)
    return render_template("lms/reports/quiz.html", cohort=cohort, analysis=analysis, localized=localized)
