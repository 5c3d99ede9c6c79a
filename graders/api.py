"""The graders JSON API: the caller's assignments, release notebooks, handing in, and submission status.

Bearer tokens only (see lms.access): the blueprint is exempt from the CSRF check because no cookie ever
authenticates a call under /api/. Errors are ``{error, message}``; the document is graders/openapi.py.
Refusals of a submission map onto statuses as follows: the caller is not a trainee of the cohort → 404
(as if the assignment did not exist); not released yet, past the cut-off, every attempt used → 409; the
file cannot be graded → 422 with the check's own code.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, g, jsonify, request, url_for
from flask_babel import gettext as _

from graders import services
from graders.handing_in import store_submission
from graders.models import Assignment, Submission, SubmissionStatus
from lms import access
from lms.extensions import csrf, db
from lms.i18n import current_locale
from lms.models import Role, User

bp = Blueprint("graders_api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

#: Error code of each refusal of ``services.submit`` (all answered with 409 but NotEnrolled, a 404).
SUBMIT_REFUSALS: tuple[tuple[type[services.GradersError], str], ...] = (
    (services.NotReleased, "not_released"),
    (services.PastCutoff, "past_cutoff"),
    (services.SubmissionLimitReached, "submission_limit"),
)

#: The lists a submission's ``repairs`` holds (older rows may lack some).
REPAIR_KEYS = ("restored", "missing_answers", "stripped")


def error(status: int, code: str, message: str) -> Response:
    """A JSON error response ``{error, message}``."""
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def submission_url(submission: Submission) -> str:
    """The absolute address of the submission in this API."""
    return url_for("graders_api.get_submission", submission_id=submission.id, _external=True)


def assignment_json(item: services.TraineeAssignment, locale: str) -> dict[str, Any]:
    """One of a trainee's assignments with the rules and the latest submission."""
    assignment, latest = item.assignment, item.latest
    return {
        "id": assignment.id,
        "title": assignment.localised_title(locale),
        "slug": assignment.slug,
        "cohort": assignment.cohort.code,
        "due_at": _iso(assignment.due_at),
        "cutoff_at": _iso(assignment.cutoff_at),
        "max_points": assignment.max_points,
        "max_submissions": assignment.max_submissions,
        "submissions_used": item.used,
        "late_penalty_percent": assignment.late_penalty_percent,
        "download_url": url_for("graders_api.download_release", assignment_id=assignment.id, _external=True),
        "latest_submission": None
        if latest is None
        else {
            "id": latest.id,
            "status": latest.status.value,
            "score": latest.score,
            "url": submission_url(latest),
        },
    }


def receipt_json(submission: Submission) -> dict[str, Any]:
    """What a trainee gets back for an upload: proof of what was stored and when."""
    return {
        "id": submission.id,
        "attempt": submission.attempt,
        "sha256": submission.sha256,
        "submitted_at": submission.submitted_at.isoformat(),
        "status": submission.status.value,
        "status_url": submission_url(submission),
    }


def submission_json(submission: Submission, user: User) -> dict[str, Any]:
    """A submission's grading state and scores as ``user`` may see them (details stay in the feedback)."""
    repairs = submission.repairs or {}
    feedback_url = None
    if services.may_read_feedback(user, submission):
        feedback_url = url_for("graders.show_feedback", submission_id=submission.id, _external=True)
    return {
        "id": submission.id,
        "assignment_id": submission.assignment_id,
        "attempt": submission.attempt,
        "status": submission.status.value,
        "score": submission.score,
        "auto_score": submission.auto_score,
        "max_score": submission.max_score,
        "late_penalty": submission.late_penalty,
        "submitted_at": submission.submitted_at.isoformat(),
        "graded_at": _iso(submission.graded_at),
        "final": submission.status == SubmissionStatus.GRADED,
        "feedback_url": feedback_url,
        "message": submission.message or "",
        "repairs": {key: [str(grade_id) for grade_id in repairs.get(key, [])] for key in REPAIR_KEYS},
    }


def _may_download(user: User, assignment: Assignment) -> bool:
    return services.is_enrolled(user, assignment.cohort_id) or services.can_grade(user, assignment)


@bp.get("/assignments")
@access.signed_in
def list_assignments() -> Response:
    # Signed in rather than trainee-only, like the labs' list: a user enrolled nowhere gets an empty list.
    locale = current_locale()
    items = services.trainee_assignments(g.api_user)
    return jsonify(assignments=[assignment_json(item, locale) for item in items])


@bp.get("/assignments/<int:assignment_id>/release")
@access.signed_in
def download_release(assignment_id: int) -> Response:
    assignment = services.get_assignment(assignment_id)
    if assignment is None or not assignment.is_released or not _may_download(g.api_user, assignment):
        abort(404)
    release = assignment.release_notebook
    if release is None:
        abort(404)
    response = Response(release.encode(), mimetype="application/x-ipynb+json")
    response.headers["Content-Disposition"] = f'attachment; filename="{assignment.slug}.ipynb"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/assignments/<int:assignment_id>/submissions")
@access.roles(Role.TRAINEE)
def create_submission(assignment_id: int) -> Response:
    from graders.repair import UploadRejected
    from graders.tasks import dispatch

    user: User = g.api_user
    assignment = services.get_assignment(assignment_id)
    if assignment is None or not services.is_enrolled(user, assignment.cohort_id):
        abort(404)
    upload = request.files.get("file")  # a body over MAX_CONTENT_LENGTH is a 413 here
    if upload is None:
        return error(400, "missing_file", _("Send the notebook as a multipart/form-data field named 'file'."))
    data = upload.read()
    filename = upload.filename or ""
    try:
        submission_id, created = store_submission(assignment_id, user.id, data, filename)
    except UploadRejected as exc:
        return error(422, exc.code, exc.message)
    except services.NotEnrolled:
        abort(404)
    except services.GradersError as exc:
        code = next((code for kind, code in SUBMIT_REFUSALS if isinstance(exc, kind)), "conflict")
        return error(409, code, str(exc))
    submission = db.session.get(Submission, submission_id)
    assert submission is not None
    if created:
        dispatch(services.queued_job_ids(submission))
    response = jsonify(receipt_json(submission))
    if created:
        response.status_code = 201
        response.headers["Location"] = submission_url(submission)
    return response


@bp.get("/submissions/<int:submission_id>")
@access.signed_in
def get_submission(submission_id: int) -> Response:
    submission = db.session.get(Submission, submission_id)
    if submission is None or not services.can_view_submission(g.api_user, submission):
        abort(404)
    return jsonify(submission_json(submission, g.api_user))
