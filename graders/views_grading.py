"""Trainers' pages: assignments of a cohort and their rules, the manual grading queue, grading a
submission, and the gradebook.

Who may do what: the cohort's trainers and the admins of its training base (platform admins
everywhere), as ``services.can_grade`` says. Anyone else gets 404 for a cohort, assignment or
submission, so nobody learns that another cohort's records exist.

Times are stored in UTC and entered and shown in the user's time zone; the CSV export keeps UTC, as
nbgrader's own export does.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response as BaseResponse

from graders import services, tasks
from graders.forms_grading import (
    GradeForm,
    RubricError,
    SettingsForm,
    format_rubric,
    local_to_utc,
    parse_points,
    parse_rubric,
    utc_to_local,
)
from graders.models import Assignment, CellGrade, CellKind, Submission, SubmissionStatus
from graders.views import points, status_label
from lms import access
from lms.extensions import db
from lms.forms import ConfirmForm
from lms.i18n import current_locale, select_timezone
from lms.models import AuditLog, Cohort, Role, User
from lms.services import cohorts as cohort_service

bp = Blueprint("graders_grading", __name__, url_prefix="/grading", template_folder="templates")

STAFF = (Role.TRAINER, Role.ADMIN)
QUEUE_PAGE_SIZE = 50
HISTOGRAM_BINS = 10

#: The columns of ``nbgrader export`` (its CsvExportPlugin), in its order.
EXPORT_COLUMNS = (
    "assignment",
    "duedate",
    "timestamp",
    "student_id",
    "last_name",
    "first_name",
    "email",
    "raw_score",
    "late_submission_penalty",
    "score",
    "max_score",
)
EXPORT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# How the gradebook marks a latest submission that has no final score: (symbol, words).
PENDING_MARKS = {
    SubmissionStatus.QUEUED: ("⏳", _l("being graded")),
    SubmissionStatus.GRADING: ("⏳", _l("being graded")),
    SubmissionStatus.AUTOGRADED: ("✎", _l("awaits manual grading")),
    SubmissionStatus.FAILED: ("⚠", _l("grading failed")),
}

AUDIT_ACTIONS = {
    "graders.grade_changed": _l("Grade changed"),
    "graders.regrade_requested": _l("Regrade requested"),
    "graders.feedback_released": _l("Feedback released"),
}


# --- Looking records up ---------------------------------------------------------------------------------


def _managed_cohort_or_404(cohort_id: int) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    return cohort


def _gradeable_assignment_or_404(assignment_id: int) -> Assignment:
    assignment = services.get_assignment(assignment_id)
    if assignment is None or not services.can_grade(current_user, assignment):
        abort(404)
    return assignment


def _gradeable_submission_or_404(submission_id: int) -> Submission:
    submission = db.session.get(Submission, submission_id)
    if submission is None or not services.can_grade(current_user, submission.assignment):
        abort(404)
    return submission


def _managed_cohorts(user: User) -> list[Cohort]:
    return [c for c in cohort_service.visible_cohorts(user) if cohort_service.can_manage_cohort(user, c)]


def trainee_label(submission: Submission) -> str:
    """The trainee's name, or a pseudonym while the assignment is graded anonymously."""
    if submission.assignment.anonymous_grading:
        return services.pseudonym(submission)
    return submission.user.real_name


def _template_helpers() -> dict[str, Any]:
    return {"points": points, "locale": current_locale()}


# --- A cohort's assignments and publishing them ---------------------------------------------------------


@dataclass(frozen=True)
class AssignmentRow:
    assignment: Assignment
    handed_in: int  # trainees with at least one submission
    awaiting_manual: int  # latest submissions waiting for a trainer


def _assignment_counts(assignment_ids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Per assignment: how many trainees handed in, and how many latest submissions await a trainer."""
    if not assignment_ids:
        return {}, {}
    handed_in = {
        assignment_id: count
        for assignment_id, count in db.session.execute(
            select(Submission.assignment_id, func.count(distinct(Submission.user_id)))
            .where(Submission.assignment_id.in_(assignment_ids))
            .group_by(Submission.assignment_id)
        )
    }
    waiting = (
        services.latest_submissions(assignment_ids)
        .where(Submission.status == SubmissionStatus.AUTOGRADED)
        .subquery()
    )
    awaiting = {
        assignment_id: count
        for assignment_id, count in db.session.execute(
            select(waiting.c.assignment_id, func.count()).group_by(waiting.c.assignment_id)
        )
    }
    return handed_in, awaiting


@bp.get("/cohorts/<int:cohort_id>")
@access.roles(*STAFF)
def cohort_assignments(cohort_id: int):
    cohort = _managed_cohort_or_404(cohort_id)
    assignments = services.cohort_assignments(cohort)
    handed_in, awaiting = _assignment_counts([a.id for a in assignments])
    published = {a.unit_key for a in assignments}
    unpublished = [u for u in services.exercise_units(cohort) if u.key not in published]
    return render_template(
        "graders/grading/cohort.html",
        cohort=cohort,
        rows=[AssignmentRow(a, handed_in.get(a.id, 0), awaiting.get(a.id, 0)) for a in assignments],
        unpublished=len(unpublished),
        has_course=cohort.course_version_id is not None,
        form=ConfirmForm(),
        **_template_helpers(),
    )


@bp.post("/cohorts/<int:cohort_id>/publish")
@access.roles(*STAFF)
def publish(cohort_id: int) -> BaseResponse:
    cohort = _managed_cohort_or_404(cohort_id)
    back = redirect(url_for(".cohort_assignments", cohort_id=cohort.id), 303)
    try:
        created = services.publish_assignments(cohort, current_user)
        job_ids = services.queued_release_job_ids(created)
        db.session.commit()
    except IntegrityError:
        # Another trainer published the same exercises at the same moment; theirs stand.
        db.session.rollback()
        flash(
            _("These exercises were being published by someone else at the same moment; see below."), "error"
        )
        return back
    tasks.dispatch(job_ids)
    if created:
        flash(
            ngettext(
                "%(num)d exercise published; trainees see it once its notebook is prepared.",
                "%(num)d exercises published; trainees see them once their notebooks are prepared.",
                len(created),
            ),
            "success",
        )
    elif cohort.course_version_id is None:
        flash(_("This cohort has no course files yet, so there is nothing to publish."), "error")
    else:
        flash(_("Nothing new to publish: every exercise of the course already has an assignment."), "info")
    return back


# --- An assignment's rules and rubric -------------------------------------------------------------------


@dataclass
class RubricEditor:
    """One textarea of the rubric editor: the marks of one manually graded cell."""

    index: int
    grade_id: str
    max_points: float | None
    text: str
    error: str = ""

    @property
    def name(self) -> str:
        return f"rubric-{self.index}"


def manual_cells(source_notebook: str) -> list[tuple[str, float | None]]:
    """(grade_id, points) of the notebook's manually graded cells, in notebook order."""
    notebook = json.loads(source_notebook)
    wanted = set(services.manual_cell_ids(notebook))
    cells = []
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = str(meta.get("grade_id", ""))
        if grade_id in wanted:
            raw = meta.get("points")
            cells.append((grade_id, float(raw) if isinstance(raw, int | float) else None))
            wanted.discard(grade_id)
    return cells


def _settings_data(assignment: Assignment, zone: str) -> dict[str, Any]:
    due_date, due_time = utc_to_local(assignment.due_at, zone)
    cutoff_date, cutoff_time = utc_to_local(assignment.cutoff_at, zone)
    return {
        "due_date": due_date,
        "due_time": due_time,
        "cutoff_date": cutoff_date,
        "cutoff_time": cutoff_time,
        "late_penalty_percent": assignment.late_penalty_percent,
        "max_submissions": assignment.max_submissions,
        "cell_timeout": assignment.cell_timeout,
        "total_timeout": assignment.total_timeout,
        "anonymous_grading": assignment.anonymous_grading,
    }


def _rubric_editors(assignment: Assignment, submitted: bool) -> list[RubricEditor]:
    stored = assignment.rubric or {}
    editors = []
    for index, (grade_id, max_points) in enumerate(manual_cells(assignment.source_notebook)):
        editor = RubricEditor(index, grade_id, max_points, format_rubric(stored.get(grade_id, [])))
        if submitted:
            editor.text = request.form.get(editor.name, "")
        editors.append(editor)
    return editors


def _read_rubric(editors: Iterable[RubricEditor]) -> dict[str, list[dict[str, Any]]] | None:
    """The rubric the editors hold, or None when a line cannot be read (its editor then says why)."""
    rubric: dict[str, list[dict[str, Any]]] = {}
    ok = True
    for editor in editors:
        try:
            marks = parse_rubric(editor.text, editor.max_points)
        except RubricError as exc:
            editor.error = str(exc)
            ok = False
            continue
        if marks:
            rubric[editor.grade_id] = [mark.as_dict() for mark in marks]
    return rubric if ok else None


def _same_rubric(old: dict[str, Any], new: dict[str, list[dict[str, Any]]]) -> bool:
    return {k: v for k, v in old.items() if v} == new


@bp.route("/assignments/<int:assignment_id>/settings", methods=["GET", "POST"])
@access.roles(*STAFF)
def edit_settings(assignment_id: int):
    assignment = _gradeable_assignment_or_404(assignment_id)
    zone = select_timezone()
    form = SettingsForm(data=_settings_data(assignment, zone))
    editors = _rubric_editors(assignment, submitted=form.is_submitted())
    problems: list[str] = []
    status = 200
    if form.is_submitted():
        rubric = _read_rubric(editors)
        if form.validate() and rubric is not None:
            settings = services.AssignmentSettings(
                due_at=local_to_utc(form.due_date.data, form.due_time.data, zone),
                cutoff_at=local_to_utc(form.cutoff_date.data, form.cutoff_time.data, zone),
                late_penalty_percent=float(form.late_penalty_percent.data or 0),
                max_submissions=int(form.max_submissions.data or 0),
                cell_timeout=int(form.cell_timeout.data or 0),
                total_timeout=int(form.total_timeout.data or 0),
                anonymous_grading=bool(form.anonymous_grading.data),
            )
            try:
                services.update_settings(assignment, settings, current_user)
                if not _same_rubric(assignment.rubric or {}, rubric):
                    services.set_rubric(assignment, rubric, current_user)
            except services.GradersError as exc:
                db.session.rollback()
                problems.append(str(exc))
            else:
                db.session.commit()
                flash(
                    _(
                        "The rules of %(title)s are saved.",
                        title=assignment.localised_title(current_locale()),
                    ),
                    "success",
                )
                return redirect(url_for(".cohort_assignments", cohort_id=assignment.cohort_id), 303)
        status = 422
    return render_template(
        "graders/grading/settings.html",
        assignment=assignment,
        form=form,
        editors=editors,
        problems=problems,
        zone=zone,
        **_template_helpers(),
    ), status


# --- The manual grading queue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    submission: Submission
    trainee: str
    cohort: Cohort


@bp.get("/queue")
@access.roles(*STAFF)
def queue():
    page = max(1, request.args.get("page", 1, type=int) or 1)
    assignment_id = request.args.get("assignment", type=int)
    cohorts = {c.id: c for c in _managed_cohorts(current_user)}
    submissions, total = services.manual_queue(
        current_user, assignment_id=assignment_id, page=page, per_page=QUEUE_PAGE_SIZE
    )
    # Only cohorts this user manages, whatever the service's own notion of an administrator is.
    submissions = [s for s in submissions if s.assignment.cohort_id in cohorts]
    # The names of the page's trainees in one query, not one per row.
    names: dict[int, str] = {}
    if submissions:
        names = {
            user_id: name
            for user_id, name in db.session.execute(
                select(User.id, User.real_name).where(User.id.in_({s.user_id for s in submissions}))
            )
        }
    rows = [
        QueueRow(
            s,
            services.pseudonym(s) if s.assignment.anonymous_grading else names.get(s.user_id, ""),
            cohorts[s.assignment.cohort_id],
        )
        for s in submissions
    ]
    assignments = (
        list(
            db.session.scalars(
                select(Assignment)
                .where(Assignment.cohort_id.in_(cohorts))
                .order_by(
                    Assignment.cohort_id, Assignment.due_at.is_(None), Assignment.due_at, Assignment.slug
                )
            )
        )
        if cohorts
        else []
    )
    return render_template(
        "graders/grading/queue.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / QUEUE_PAGE_SIZE)),
        assignment_id=assignment_id,
        assignments=assignments,
        cohorts=sorted(cohorts.values(), key=lambda c: (c.starts_on, c.code), reverse=True),
        **_template_helpers(),
    )


# --- Grading one submission -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CellEntry:
    """A graded cell and its part of the form."""

    cell: CellGrade
    form: Any
    marks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_manual(self) -> bool:
        return self.cell.kind == CellKind.MANUAL


def _cell_data(cell: CellGrade) -> dict[str, Any]:
    return {
        "grade_id": cell.grade_id,
        "points": "" if cell.manual_points is None else f"{cell.manual_points:g}",
        "comment": cell.comment,
        "extra_credit": "" if not cell.extra_credit else f"{cell.extra_credit:g}",
    }


def _fresh_form(cells: Sequence[CellGrade]) -> GradeForm:
    return GradeForm(formdata=None, data={"cells": [_cell_data(c) for c in cells]})


def _has_feedback(submission: Submission) -> bool:
    """Whether graders.show_feedback has a notebook to show (without loading the notebook)."""
    if submission.graded_at is None:
        return False
    return (
        db.session.scalar(
            select(Submission.id).where(
                Submission.id == submission.id, Submission.autograded_notebook.is_not(None)
            )
        )
        is not None
    )


def _render_grading(
    submission: Submission, form: GradeForm, problems: Sequence[str] = (), status: int = 200
) -> tuple[str, int]:
    cells = list(submission.cells)
    rubric = submission.assignment.rubric or {}
    entries = [
        CellEntry(cell, entry, list(rubric.get(cell.grade_id, [])))
        for cell, entry in zip(cells, form.cells.entries, strict=False)
    ]
    return render_template(
        "graders/grading/grade.html",
        submission=submission,
        assignment=submission.assignment,
        trainee=trainee_label(submission),
        form=form,
        entries=entries,
        problems=problems,
        feedback_url=(
            url_for("graders.show_feedback", submission_id=submission.id)
            if _has_feedback(submission)
            else None
        ),
        can_regrade=submission.status not in (SubmissionStatus.QUEUED, SubmissionStatus.GRADING),
        confirm=ConfirmForm(),
        status_label=status_label,
        **_template_helpers(),
    ), status


def _next_in_queue(submission: Submission) -> Submission | None:
    """The oldest other submission awaiting this user: of the same assignment first, then any."""
    for assignment_id in (submission.assignment_id, None):
        rows, _total = services.manual_queue(current_user, assignment_id=assignment_id, per_page=2)
        for row in rows:
            if row.id != submission.id and services.can_grade(current_user, row.assignment):
                return row
    return None


@bp.route("/submissions/<int:submission_id>", methods=["GET", "POST"])
@access.roles(*STAFF)
def grade_submission(submission_id: int):
    submission = _gradeable_submission_or_404(submission_id)
    cells = list(submission.cells)
    if request.method == "GET":
        return _render_grading(submission, _fresh_form(cells))
    form = GradeForm()
    if not form.validate():
        return _render_grading(submission, form, status=422)
    entries = form.cells.entries
    if [e.form.grade_id.data for e in entries] != [c.grade_id for c in cells]:
        # The cells changed since the page was loaded (a regrade finished): show them as they are now.
        return _render_grading(
            submission,
            _fresh_form(cells),
            [_("This submission was regraded while you were grading it; nothing was saved. Grade it again.")],
            status=409,
        )
    problems: list[str] = []
    changed = 0
    for entry, cell in zip(entries, cells, strict=True):
        values = entry.form
        try:
            new_points = parse_points(values.points.data)
            extra = parse_points(values.extra_credit.data) or 0.0
        except ValueError:
            problems.append(_("Points and extra credit for %(cell)s must be numbers.", cell=cell.grade_id))
            continue
        comment = (values.comment.data or "").strip()
        if (new_points, comment, extra) == (cell.manual_points, cell.comment, cell.extra_credit):
            continue
        try:
            services.grade_cell(
                submission,
                cell.grade_id,
                current_user,
                points=new_points,
                comment=comment,
                extra_credit=extra,
            )
        except services.InvalidGrade as exc:
            problems.append(str(exc))
            continue
        changed += 1
    if problems:
        db.session.rollback()
        return _render_grading(submission, form, problems, status=422)
    db.session.commit()
    if changed:
        flash(
            ngettext("%(num)d cell graded.", "%(num)d cells graded.", changed)
            + " "
            + (
                _("The score is final: %(score)s.", score=points(submission.score))
                if submission.status == SubmissionStatus.GRADED
                else _("Some cells still need points.")
            ),
            "success",
        )
    else:
        flash(_("Nothing was changed."), "info")
    if request.form.get("then") == "next":
        following = _next_in_queue(submission)
        if following is None:
            flash(_("Nothing else awaits your grading."), "info")
            return redirect(url_for(".queue"), 303)
        return redirect(url_for(".grade_submission", submission_id=following.id), 303)
    return redirect(url_for(".grade_submission", submission_id=submission.id), 303)


@bp.post("/submissions/<int:submission_id>/regrade")
@access.roles(*STAFF)
def regrade(submission_id: int) -> BaseResponse:
    submission = _gradeable_submission_or_404(submission_id)
    try:
        job = services.request_regrade(submission, current_user)
        db.session.commit()
    except services.GradersError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        tasks.dispatch([job.id])
        flash(_("The notebook is being autograded again; your points and comments are kept."), "success")
    return redirect(url_for(".grade_submission", submission_id=submission_id), 303)


@bp.post("/submissions/<int:submission_id>/release")
@access.roles(*STAFF)
def release(submission_id: int) -> BaseResponse:
    submission = _gradeable_submission_or_404(submission_id)
    services.release_feedback(submission, current_user)
    db.session.commit()
    flash(_("The trainee can now read the feedback."), "success")
    return redirect(url_for(".grade_submission", submission_id=submission_id), 303)


# --- History of grade changes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    who: str
    action: str
    cell: str
    old: str
    new: str


def describe_grade(values: Any) -> str:
    """A grade as an audit line shows it: "1.5 points · extra credit 1 · “comment”"."""
    if not isinstance(values, dict):
        return "" if values is None else str(values)
    parts = []
    if "points" in values:
        parts.append(
            _("%(points)s points", points=points(values["points"]))
            if values["points"] is not None
            else _("autograder's points")
        )
    if values.get("extra_credit"):
        parts.append(_("extra credit %(points)s", points=points(values["extra_credit"])))
    if values.get("comment"):
        parts.append(f"“{values['comment']}”")
    return " · ".join(parts)


def _history_line(entry: AuditLog) -> HistoryLine:
    details = entry.details or {}
    if entry.action == "graders.regrade_requested":
        old, new = points(details.get("old_score")), ""
    else:
        old, new = describe_grade(details.get("old")), describe_grade(details.get("new"))
    return HistoryLine(
        at=entry.at,
        who=entry.actor.real_name if entry.actor is not None else _("the system"),
        action=str(AUDIT_ACTIONS.get(entry.action, entry.action)),
        cell=str(details.get("cell", "")),
        old=old,
        new=new,
    )


@bp.get("/submissions/<int:submission_id>/history")
@access.roles(*STAFF)
def history(submission_id: int):
    submission = _gradeable_submission_or_404(submission_id)
    entries = db.session.scalars(
        select(AuditLog)
        .where(AuditLog.target_type == "Submission", AuditLog.target_id == str(submission.id))
        .order_by(AuditLog.at, AuditLog.id)
    ).all()
    return render_template(
        "graders/grading/history.html",
        submission=submission,
        assignment=submission.assignment,
        trainee=trainee_label(submission),
        lines=[_history_line(e) for e in entries],
        **_template_helpers(),
    )


# --- Gradebook and its CSV ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    low: float
    high: float
    count: int


@dataclass(frozen=True)
class ScoreChart:
    """The distribution of an assignment's final scores in equal bins of its points."""

    assignment: Assignment
    bars: list[Bar]
    graded: int

    @property
    def tallest(self) -> int:
        return max((bar.count for bar in self.bars), default=0)


def score_chart(assignment: Assignment, scores: Sequence[float]) -> ScoreChart:
    """The assignment's final ``scores`` counted in ten equal bands of its points."""
    counts = services.score_histogram(scores, assignment.max_points, HISTOGRAM_BINS)
    step = assignment.max_points / HISTOGRAM_BINS
    bars = [Bar(round(i * step, 2), round((i + 1) * step, 2), count) for i, count in enumerate(counts)]
    return ScoreChart(assignment, bars, len(scores))


def gradebook_mark(submission: Submission | None) -> tuple[str, str]:
    """(symbol, words) for a gradebook cell without a final score; ("", "") when it has one."""
    if submission is None:
        return "—", _("not handed in")
    if submission.status == SubmissionStatus.GRADED:
        return "", ""
    symbol, words = PENDING_MARKS[submission.status]
    return symbol, str(words)


@bp.get("/cohorts/<int:cohort_id>/gradebook")
@access.roles(*STAFF)
def gradebook(cohort_id: int):
    cohort = _managed_cohort_or_404(cohort_id)
    assignments, rows = services.cohort_gradebook(cohort)
    charts = [
        score_chart(
            a,
            [
                row.cells[a.id].score or 0.0
                for row in rows
                if a.id in row.cells and row.cells[a.id].status == SubmissionStatus.GRADED
            ],
        )
        for a in assignments
    ]
    return render_template(
        "graders/grading/gradebook.html",
        cohort=cohort,
        assignments=assignments,
        rows=rows,
        charts=charts,
        mark=gradebook_mark,
        **_template_helpers(),
    )


CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def split_name(real_name: str) -> tuple[str, str]:
    """(last_name, first_name) of a real name: a Chinese name's first character is the family name
    (张三丰 → 张, 三丰); otherwise the last word is (Ada King Lovelace → Lovelace, Ada King)."""
    name = " ".join(real_name.split())
    if not name:
        return "", ""
    if CJK.match(name):
        return name[0], name[1:].replace(" ", "")
    first, _space, last = name.rpartition(" ")
    return last, first


def _spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime(EXPORT_TIME_FORMAT)


def _figure(value: float) -> str:
    return str(round(float(value), 4))


def export_rows(
    assignments: Sequence[Assignment], rows: Sequence[services.GradebookRow], extra_credit: dict[int, float]
) -> list[list[str]]:
    """One line per assignment × trainee, as ``nbgrader export`` writes them.

    raw_score is the points before the late penalty (extra credit included, as in nbgrader's gradebook);
    score is after it. A trainee with no submission has no timestamp and zero points.
    """
    lines = []
    for assignment in assignments:
        for row in rows:
            trainee = row.trainee
            last, first = split_name(trainee.real_name)
            submission = row.cells.get(assignment.id)
            if submission is None:
                timestamp, raw, penalty, score = "", 0.0, 0.0, 0.0
            else:
                extra = submission.extra_credit + extra_credit.get(submission.id, 0.0)
                auto = submission.auto_score or 0.0
                timestamp = _utc(submission.submitted_at)
                raw = auto + extra
                penalty = submission.late_penalty
                score = submission.score if submission.score is not None else max(0.0, auto - penalty) + extra
            lines.append(
                [
                    _spreadsheet_safe(assignment.slug),
                    _utc(assignment.due_at),
                    timestamp,
                    _spreadsheet_safe(trainee.username),
                    _spreadsheet_safe(last),
                    _spreadsheet_safe(first),
                    _spreadsheet_safe(trainee.email or ""),
                    _figure(raw),
                    _figure(penalty),
                    _figure(score),
                    _figure(assignment.max_points),
                ]
            )
    return lines


def _cell_extra_credit(rows: Sequence[services.GradebookRow]) -> dict[int, float]:
    ids = [s.id for row in rows for s in row.cells.values()]
    if not ids:
        return {}
    return {
        submission_id: float(total or 0.0)
        for submission_id, total in db.session.execute(
            select(CellGrade.submission_id, func.sum(CellGrade.extra_credit))
            .where(CellGrade.submission_id.in_(ids))
            .group_by(CellGrade.submission_id)
        )
    }


@bp.get("/cohorts/<int:cohort_id>/gradebook.csv")
@access.roles(*STAFF)
def export_gradebook(cohort_id: int) -> BaseResponse:
    cohort = _managed_cohort_or_404(cohort_id)
    assignments, rows = services.cohort_gradebook(cohort)
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads the Chinese names right only with the byte order mark
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(export_rows(assignments, rows, _cell_extra_credit(rows)))
    response = Response(out.getvalue().encode("utf-8"), content_type="text/csv; charset=utf-8")
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"grades-{cohort.code}.csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
