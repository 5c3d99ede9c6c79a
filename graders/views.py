"""Trainees' pages: assignments, downloading the release notebook, handing in, status and feedback.

Who may see what:

* an assignment, its release notebook and the upload form: trainees enrolled in its cohort once it is
  released (only they hand in); its cohort's trainers and admins may look at the page and download;
* a submission, its status and its feedback: the trainee who handed it in and the cohort's trainers and
  admins; the trainee sees feedback once it is released, trainers as soon as it is autograded;
* everyone else gets 404, so nobody learns that another trainee's submission exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    url_for,
)
from flask_babel import format_datetime, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from graders import services, tasks
from graders.forms import UploadForm
from graders.handing_in import store_submission
from graders.models import Assignment, Submission, SubmissionStatus
from lms import access
from lms.extensions import db
from lms.i18n import current_locale
from lms.models import Role, User
from lms.timeutil import utcnow

bp = Blueprint(
    "graders",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/graders/static",
)

VIEWERS = (Role.TRAINEE, Role.TRAINER, Role.ADMIN)
PANEL_LIMIT = 5

#: Statuses after which nothing changes without a trainer: the page stops asking the server.
SETTLED = frozenset({SubmissionStatus.AUTOGRADED, SubmissionStatus.GRADED, SubmissionStatus.FAILED})
AWAITING_SCORE = frozenset({SubmissionStatus.QUEUED, SubmissionStatus.GRADING, SubmissionStatus.AUTOGRADED})

STATUS_LABELS = {
    SubmissionStatus.QUEUED: _l("Queued: waiting for a grader"),
    SubmissionStatus.GRADING: _l("Grading: your notebook is running"),
    SubmissionStatus.AUTOGRADED: _l("Autograded: a trainer still grades the written answers"),
    SubmissionStatus.GRADED: _l("Graded"),
    SubmissionStatus.FAILED: _l("Grading failed"),
}

# The feedback page shows notebook outputs: no script, no request anywhere, inline styles and images only.
FEEDBACK_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def status_label(status: SubmissionStatus) -> str:
    """The status in the reader's words."""
    return str(STATUS_LABELS[status])


def points(value: float | None) -> str:
    """Points as people write them: 5, 12.5, 3.33."""
    return "—" if value is None else format_decimal(round(value, 2), format="#,##0.##")


def _template_helpers() -> dict[str, Any]:
    return {"status_label": status_label, "points": points, "locale": current_locale(), "now": utcnow()}


# --- Looking records up ---------------------------------------------------------------------------------


def _assignment_or_404(assignment_id: int) -> tuple[Assignment, bool]:
    """The assignment and whether the current user hands it in (True) or only looks at it (a trainer)."""
    assignment = services.get_assignment(assignment_id)
    if assignment is None:
        abort(404)
    if assignment.is_released and services.is_enrolled(current_user, assignment.cohort_id):
        return assignment, True
    if services.can_grade(current_user, assignment):
        return assignment, False
    abort(404)


def _submission_or_404(submission_id: int) -> Submission:
    submission = db.session.get(Submission, submission_id)
    if submission is None or not services.can_view_submission(current_user, submission):
        abort(404)
    return submission


def _is_owner(submission: Submission) -> bool:
    return submission.user_id == current_user.id


def _feedback_url(submission: Submission) -> str | None:
    if not services.may_read_feedback(current_user, submission):
        return None
    return url_for("graders.show_feedback", submission_id=submission.id)


def _trainee_name(submission: Submission) -> str:
    """The trainee's name, or a pseudonym for graders of an anonymously graded assignment."""
    if submission.assignment.anonymous_grading and not _is_owner(submission):
        return services.pseudonym(submission)
    return submission.user.real_name


# --- Assignments ----------------------------------------------------------------------------------------


@bp.get("/assignments")
@access.roles(Role.TRAINEE)
def list_assignments():
    return render_template(
        "graders/assignments.html",
        items=services.trainee_assignments(current_user),
        **_template_helpers(),
    )


def _render_assignment(
    assignment: Assignment, learner: bool, form: UploadForm | None, status: int = 200
) -> tuple[str, int]:
    submissions = services.submissions_of(current_user, assignment) if learner else []
    now = utcnow()
    closed = assignment.cutoff_at is not None and now > assignment.cutoff_at
    remaining = max(0, assignment.max_submissions - len(submissions))
    page = render_template(
        "graders/assignment.html",
        assignment=assignment,
        learner=learner,
        form=form,
        submissions=submissions,
        closed=closed,
        remaining=remaining,
        late=assignment.due_at is not None and now > assignment.due_at,
        max_upload_mb=current_app.config["GRADER_MAX_UPLOAD_BYTES"] / 1_000_000,
        queue_url=_queue_url(),
        **_template_helpers(),
    )
    return page, status


@bp.get("/assignments/<int:assignment_id>")
@access.roles(*VIEWERS)
def show_assignment(assignment_id: int):
    assignment, learner = _assignment_or_404(assignment_id)
    return _render_assignment(assignment, learner, UploadForm() if learner else None)


@bp.get("/assignments/<int:assignment_id>/download")
@access.roles(*VIEWERS)
def download_release(assignment_id: int):
    assignment, _learner = _assignment_or_404(assignment_id)
    if not assignment.is_released or assignment.release_notebook is None:
        abort(404)
    response = Response(assignment.release_notebook.encode(), mimetype="application/x-ipynb+json")
    response.headers["Content-Disposition"] = f'attachment; filename="{assignment.slug}.ipynb"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/assignments/<int:assignment_id>/submissions")
@access.roles(Role.TRAINEE)
def submit(assignment_id: int):
    from graders.repair import UploadRejected

    assignment, learner = _assignment_or_404(assignment_id)
    if not learner:
        abort(404)
    form = UploadForm()
    if not form.validate_on_submit():  # a missing file (CSRF problems are refused before this view)
        return _render_assignment(assignment, learner, form, status=400)
    upload = form.file.data
    data = upload.read()
    filename = upload.filename or ""
    try:
        submission_id, created = store_submission(assignment_id, current_user.id, data, filename)
    except (UploadRejected, services.GradersError) as exc:
        form.file.errors = [str(exc)]
        return _render_assignment(assignment, learner, form, status=422)
    submission = db.session.get(Submission, submission_id)
    assert submission is not None
    if created:
        tasks.dispatch(services.queued_job_ids(submission))
        flash(
            _(
                "Received: attempt %(attempt)d, sha256 %(sha)s…; grading has started.",
                attempt=submission.attempt,
                sha=submission.sha256[:12],
            ),
            "success",
        )
    else:
        flash(
            _(
                "You had already handed in exactly this file as attempt %(attempt)d (sha256 %(sha)s…); "
                "no attempt was used.",
                attempt=submission.attempt,
                sha=submission.sha256[:12],
            ),
            "info",
        )
    return redirect(url_for("graders.show_submission", submission_id=submission.id), 303)


# --- Submissions ----------------------------------------------------------------------------------------


@bp.get("/submissions/<int:submission_id>")
@access.roles(*VIEWERS)
def show_submission(submission_id: int):
    submission = _submission_or_404(submission_id)
    owner = _is_owner(submission)
    return render_template(
        "graders/submission.html",
        submission=submission,
        assignment=submission.assignment,
        owner=owner,
        trainee_name=None if owner else _trainee_name(submission),
        settled=submission.status in SETTLED,
        final=submission.status == SubmissionStatus.GRADED,
        repairs=submission.repairs or {},
        feedback_url=_feedback_url(submission),
        status_labels={status.value: status_label(status) for status in SubmissionStatus},
        **_template_helpers(),
    )


@bp.get("/submissions/<int:submission_id>/status.json")
@access.roles(*VIEWERS)
def submission_status(submission_id: int):
    submission = _submission_or_404(submission_id)
    response = jsonify(
        id=submission.id,
        status=submission.status.value,
        score=submission.score,
        auto_score=submission.auto_score,
        max_score=submission.max_score,
        late_penalty=submission.late_penalty,
        feedback_url=_feedback_url(submission),
        final=submission.status == SubmissionStatus.GRADED,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/submissions/<int:submission_id>/feedback")
@access.roles(*VIEWERS)
def show_feedback(submission_id: int) -> BaseResponse:
    import nbformat

    from graders.feedback import CellScore, FeedbackSummary, render_feedback

    submission = _submission_or_404(submission_id)
    if not services.may_read_feedback(current_user, submission):
        abort(404)
    assignment = submission.assignment
    scores = {
        cell.grade_id: CellScore(
            grade_id=cell.grade_id,
            max_points=cell.max_points,
            points=cell.points,
            comment=cell.comment,
            needs_manual=cell.needs_manual,
            kind=cell.kind.value,
        )
        for cell in submission.cells
    }
    summary = FeedbackSummary(
        title=assignment.localised_title(current_locale()),
        trainee=_trainee_name(submission),
        submitted_at=format_datetime(submission.submitted_at, "medium"),
        score=submission.points_so_far,
        max_score=submission.max_score,
        late_penalty=submission.late_penalty,
        extra_credit=submission.extra_credit + sum(cell.extra_credit for cell in submission.cells),
        restored=tuple(str(grade_id) for grade_id in (submission.repairs or {}).get("restored", [])),
        final=submission.status == SubmissionStatus.GRADED,
    )
    html = render_feedback(
        nbformat.reads(submission.autograded_notebook or "", as_version=4),
        nbformat.reads(assignment.source_notebook, as_version=4),
        scores,
        summary,
        trusted_reader=submission.user_id != current_user.id,  # the cohort's trainers and admins
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = FEEDBACK_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Scores change when a trainer grades; never show a stale copy from a cache.
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- Dashboard panels -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelItem:
    """One line of the trainee's panel: an assignment to hand in, or one whose score is on its way."""

    item: services.TraineeAssignment
    to_hand_in: bool

    @property
    def assignment(self) -> Assignment:
        return self.item.assignment

    @property
    def latest(self) -> Submission | None:
        return self.item.latest


def _panel_item(item: services.TraineeAssignment, now: datetime) -> PanelItem | None:
    assignment, latest = item.assignment, item.latest
    if latest is None:
        still_open = assignment.cutoff_at is None or now <= assignment.cutoff_at
        return PanelItem(item, to_hand_in=True) if still_open and item.remaining > 0 else None
    if latest.status in AWAITING_SCORE:
        return PanelItem(item, to_hand_in=False)
    return None


def trainee_panel(user: User) -> dict[str, Any]:
    """Assignments due soon or awaiting their score (soonest due first); no items means no panel."""
    now = utcnow()
    items = [p for p in (_panel_item(i, now) for i in services.trainee_assignments(user)) if p is not None]
    return {
        "items": items[:PANEL_LIMIT],
        "more": max(0, len(items) - PANEL_LIMIT),
        "status_label": status_label,
        "points": points,
    }


def _queue_url() -> str | None:
    # The grading pages live in another module of this plugin, which a deployment may leave out.
    if "graders_grading.queue" not in current_app.view_functions:
        return None
    return url_for("graders_grading.queue")


def trainer_panel(user: User) -> dict[str, Any]:
    """How many submissions wait for this trainer's manual grading."""
    return {"awaiting": services.trainer_assignments_needing_grading(user), "queue_url": _queue_url()}
