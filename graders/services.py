"""Graders services: assignments from curriculum exercises, submissions (durable first), grading jobs and
their leases, recording grades, manual grading, feedback release, and the gradebook.

Typed functions on explicit objects: they flush but never commit, raise ``GradersError`` subclasses, and
never touch the request. Grade changes are audited with who, when, the old and the new value.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from graders.models import (
    Assignment,
    CellGrade,
    CellKind,
    GradingJob,
    JobKind,
    JobState,
    Submission,
    SubmissionStatus,
)
from lms import signals
from lms.extensions import db
from lms.models import Cohort, CourseUnit, Enrollment, EnrollmentStatus, UnitKind, User
from lms.services import DomainError, audit
from lms.services.cohorts import can_manage_cohort
from lms.services.learning import exercise_due_at
from lms.timeutil import utcnow


class GradersError(DomainError):
    """A grading action the rules do not allow; the message is fit to show."""


class NotEnrolled(GradersError):
    """Only trainees enrolled in the assignment's cohort hand in."""


class NotReleased(GradersError):
    """The assignment's release notebook is not ready yet."""


class PastCutoff(GradersError):
    """The hard cut-off has passed: no more submissions."""


class SubmissionLimitReached(GradersError):
    """The trainee has used every allowed submission."""


class InvalidGrade(GradersError):
    """Points outside the cell's range, or a cell that does not exist."""


# --- assignments ---------------------------------------------------------------------------------------


def _notebook_json(notebook: Any) -> str:
    return json.dumps(notebook, ensure_ascii=False, sort_keys=True)


def _graded_ids(notebook: Mapping[str, Any]) -> frozenset[str]:
    ids = set()
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") and (meta.get("solution") or meta.get("grade")):
            ids.add(str(meta["grade_id"]))
    return frozenset(ids)


def manual_cell_ids(notebook: Mapping[str, Any]) -> list[str]:
    """grade_ids of manually graded answers (solution and grade) in notebook order."""
    ids = []
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") and meta.get("solution") and meta.get("grade"):
            ids.append(str(meta["grade_id"]))
    return ids


def exercise_units(cohort: Cohort) -> list[CourseUnit]:
    """The exercise units of the cohort's course version, in teaching order."""
    if cohort.course_version_id is None:
        return []
    return [
        unit
        for module in cohort.course_version.modules  # type: ignore[union-attr]
        for unit in module.units
        if unit.kind == UnitKind.EXERCISE and isinstance(unit.body.get("notebook"), dict | str)
    ]


def publish_assignments(cohort: Cohort, actor: User | None) -> list[Assignment]:
    """An assignment for every exercise of the cohort's course that has none yet, each with a release job."""
    existing = set(db.session.scalars(select(Assignment.unit_key).where(Assignment.cohort_id == cohort.id)))
    created = []
    for unit in exercise_units(cohort):
        if unit.key in existing:
            continue
        notebook = unit.body["notebook"]
        if isinstance(notebook, str):  # the importer stores the notebook's JSON text
            notebook = json.loads(notebook)
        source = _notebook_json(notebook)
        due = exercise_due_at(cohort, unit)
        assignment = Assignment(
            cohort=cohort,
            unit_key=unit.key,
            slug=unit.key,
            notebook=unit.key,
            title=dict(unit.title or {}),
            source_notebook=source,
            source_sha256=hashlib.sha256(source.encode()).hexdigest(),
            max_points=float(unit.body.get("points") or 0),
            due_at=due,
            cutoff_at=due + timedelta(days=7) if due is not None else None,
        )
        db.session.add(assignment)
        db.session.flush()
        db.session.add(GradingJob(kind=JobKind.RELEASE, assignment_id=assignment.id))
        audit.record("graders.assignment_published", actor, assignment, cohort=cohort.code, unit=unit.key)
        created.append(assignment)
    db.session.flush()
    return created


@dataclass(frozen=True)
class AssignmentSettings:
    due_at: datetime | None
    cutoff_at: datetime | None
    late_penalty_percent: float
    max_submissions: int
    cell_timeout: int
    total_timeout: int
    anonymous_grading: bool


def update_settings(assignment: Assignment, settings: AssignmentSettings, actor: User) -> None:
    """Change the rules of an assignment (audited with old and new values)."""
    if settings.due_at and settings.cutoff_at and settings.cutoff_at < settings.due_at:
        raise GradersError(_("The cut-off cannot be before the due date."))
    if not 0 <= settings.late_penalty_percent <= 100:
        raise GradersError(_("The late penalty is a percentage from 0 to 100."))
    if not 1 <= settings.max_submissions <= 100:
        raise GradersError(_("Allow between 1 and 100 submissions."))
    if not 5 <= settings.cell_timeout <= 3600 or not 30 <= settings.total_timeout <= 4 * 3600:
        raise GradersError(_("Cell time limit: 5 to 3,600 seconds; total: 30 seconds to 4 hours."))
    if settings.total_timeout < settings.cell_timeout:
        raise GradersError(_("The total time limit cannot be shorter than one cell's."))
    changes = {}
    for name in AssignmentSettings.__dataclass_fields__:
        old, new = getattr(assignment, name), getattr(settings, name)
        if old != new:
            changes[name] = {"old": _plain(old), "new": _plain(new)}
            setattr(assignment, name, new)
    if changes:
        audit.record("graders.assignment_settings", actor, assignment, changes=changes)
    db.session.flush()


def set_rubric(
    assignment: Assignment, rubric: Mapping[str, Sequence[Mapping[str, Any]]], actor: User
) -> None:
    """Replace the quick marks of the assignment's manually graded cells."""
    manual = set(manual_cell_ids(json.loads(assignment.source_notebook)))
    cleaned: dict[str, list[dict[str, Any]]] = {}
    for grade_id, items in rubric.items():
        if grade_id not in manual:
            raise InvalidGrade(_("%(cell)s is not a manually graded cell of this assignment.", cell=grade_id))
        cleaned[grade_id] = [
            {"points": float(item["points"]), "text": str(item["text"])[:500]} for item in items
        ]
    audit.record("graders.rubric_changed", actor, assignment, old=assignment.rubric, new=cleaned)
    assignment.rubric = cleaned
    db.session.flush()


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def get_assignment(assignment_id: int) -> Assignment | None:
    return db.session.get(Assignment, assignment_id)


def cohort_assignments(cohort: Cohort) -> list[Assignment]:
    """The cohort's assignments by due date."""
    return list(
        db.session.scalars(
            select(Assignment)
            .where(Assignment.cohort_id == cohort.id)
            .order_by(Assignment.due_at.is_(None), Assignment.due_at, Assignment.slug)
        )
    )


def is_enrolled(user: User, cohort_id: int) -> bool:
    return (
        db.session.scalar(
            select(Enrollment.id).where(
                Enrollment.user_id == user.id,
                Enrollment.cohort_id == cohort_id,
                Enrollment.status != EnrollmentStatus.WITHDRAWN,
            )
        )
        is not None
    )


def can_grade(user: User, assignment: Assignment) -> bool:
    """Trainers of the cohort and administrators grade."""
    return can_manage_cohort(user, assignment.cohort)


def can_view_submission(user: User, submission: Submission) -> bool:
    return submission.user_id == user.id or can_grade(user, submission.assignment)


@dataclass(frozen=True)
class TraineeAssignment:
    assignment: Assignment
    latest: Submission | None
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.assignment.max_submissions - self.used)


def trainee_assignments(user: User) -> list[TraineeAssignment]:
    """Released assignments of every cohort the trainee is in, with the latest submission of each."""
    assignments = list(
        db.session.scalars(
            select(Assignment)
            .join(Enrollment, Enrollment.cohort_id == Assignment.cohort_id)
            .where(
                Enrollment.user_id == user.id,
                Enrollment.status != EnrollmentStatus.WITHDRAWN,
                Assignment.released_at.is_not(None),
            )
            .order_by(Assignment.due_at.is_(None), Assignment.due_at, Assignment.slug)
        )
    )
    if not assignments:
        return []
    ids = [a.id for a in assignments]
    latest_attempts = (
        select(Submission.assignment_id, func.max(Submission.attempt).label("attempt"))
        .where(Submission.user_id == user.id, Submission.assignment_id.in_(ids))
        .group_by(Submission.assignment_id)
        .subquery()
    )
    latest = {
        s.assignment_id: s
        for s in db.session.scalars(
            select(Submission)
            .join(
                latest_attempts,
                and_(
                    Submission.assignment_id == latest_attempts.c.assignment_id,
                    Submission.attempt == latest_attempts.c.attempt,
                ),
            )
            .where(Submission.user_id == user.id)
        )
    }
    return [
        TraineeAssignment(a, latest.get(a.id), latest[a.id].attempt if a.id in latest else 0)
        for a in assignments
    ]


def submissions_of(user: User, assignment: Assignment) -> list[Submission]:
    """The trainee's submissions to the assignment, newest first."""
    return list(
        db.session.scalars(
            select(Submission)
            .where(Submission.user_id == user.id, Submission.assignment_id == assignment.id)
            .order_by(Submission.attempt.desc())
        )
    )


# --- submitting ----------------------------------------------------------------------------------------


def late_penalty(max_points: float, percent_per_day: float, due_at: datetime | None, at: datetime) -> float:
    """Points lost for handing in at ``at``: ``percent_per_day`` of the maximum per started day late."""
    if due_at is None or at <= due_at or percent_per_day <= 0:
        return 0.0
    days = math.ceil((at - due_at).total_seconds() / 86400)
    return round(min(max_points, max_points * percent_per_day / 100 * days), 2)


def other_assignment_ids(assignment: Assignment) -> dict[str, frozenset[str]]:
    """Graded cell ids of the cohort's other assignments (to recognise a notebook for another one)."""
    rows = db.session.execute(
        select(Assignment.slug, Assignment.source_notebook).where(
            Assignment.cohort_id == assignment.cohort_id, Assignment.id != assignment.id
        )
    )
    return {slug: _graded_ids(json.loads(source)) for slug, source in rows}


def submit(
    assignment: Assignment,
    user: User,
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int,
    max_cells: int,
    now: datetime | None = None,
) -> tuple[Submission, bool]:
    """Store a trainee's notebook and queue it for grading; (submission, created).

    The same bytes handed in again right after (a double-clicked button, a retried upload) return the
    stored submission instead of spending another attempt. Raises UploadRejected or a GradersError.
    """
    now = now or utcnow()
    if not is_enrolled(user, assignment.cohort_id):
        raise NotEnrolled(_("You are not a trainee of this assignment's cohort."))
    if assignment.release_notebook is None or assignment.released_at is None:
        raise NotReleased(_("This assignment is not open yet."))
    if assignment.cutoff_at is not None and now > assignment.cutoff_at:
        raise PastCutoff(_("The cut-off for this assignment has passed; submissions are closed."))
    digest = hashlib.sha256(data).hexdigest()
    previous = submissions_of(user, assignment)
    if previous and previous[0].sha256 == digest:
        return previous[0], False
    if len(previous) >= assignment.max_submissions:
        raise SubmissionLimitReached(
            _(
                "You have used all %(count)d submissions for this assignment.",
                count=assignment.max_submissions,
            )
        )
    import nbformat

    from graders.repair import check_assignment, read_upload, repair

    notebook = read_upload(data, max_bytes=max_bytes, max_cells=max_cells)
    source = json.loads(assignment.source_notebook)
    check_assignment(
        notebook,
        slug=assignment.slug,
        graded_ids=_graded_ids(source),
        others=other_assignment_ids(assignment),
    )
    repaired = repair(notebook, nbformat.reads(assignment.release_notebook, as_version=4))
    submission = Submission(
        assignment=assignment,
        user=user,
        attempt=(previous[0].attempt + 1) if previous else 1,
        content=data,
        sha256=digest,
        size=len(data),
        filename=filename[:255],
        submitted_at=now,
        repairs={
            "restored": list(repaired.restored),
            "missing_answers": list(repaired.missing_answers),
            "stripped": list(repaired.stripped),
        },
        max_score=assignment.max_points,
        late_penalty=late_penalty(
            assignment.max_points, assignment.late_penalty_percent, assignment.due_at, now
        ),
    )
    try:
        with db.session.begin_nested():
            db.session.add(submission)
            db.session.flush()
    except IntegrityError:
        # Another request stored this attempt first (a double click): answer with what it stored.
        again = submissions_of(user, assignment)
        if again and again[0].sha256 == digest:
            return again[0], False
        raise GradersError(
            _("Another submission was being stored at the same moment; please try again.")
        ) from None
    db.session.add(
        GradingJob(kind=JobKind.AUTOGRADE, assignment_id=assignment.id, submission_id=submission.id)
    )
    db.session.flush()
    return submission, True


def queued_job_ids(submission: Submission) -> list[int]:
    """Jobs of the submission that still wait for a worker (to hand to the broker after commit)."""
    return list(
        db.session.scalars(
            select(GradingJob.id).where(
                GradingJob.submission_id == submission.id, GradingJob.state == JobState.QUEUED
            )
        )
    )


def queued_release_job_ids(assignments: Iterable[Assignment]) -> list[int]:
    ids = [a.id for a in assignments]
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(GradingJob.id).where(
                GradingJob.assignment_id.in_(ids),
                GradingJob.kind == JobKind.RELEASE,
                GradingJob.state == JobState.QUEUED,
            )
        )
    )


# --- jobs ----------------------------------------------------------------------------------------------


def claim_job(job_id: int, worker: str, lease_seconds: int, now: datetime | None = None) -> bool:
    """Take the job for this worker if nobody holds it (queued, or running with an expired lease).

    One UPDATE decides, so two workers that receive the same job id never both run it.
    """
    now = now or utcnow()
    result = db.session.execute(
        update(GradingJob)
        .where(
            GradingJob.id == job_id,
            or_(
                GradingJob.state == JobState.QUEUED,
                and_(GradingJob.state == JobState.RUNNING, GradingJob.lease_expires_at < now),
            ),
        )
        .values(
            state=JobState.RUNNING,
            attempts=GradingJob.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker=worker[:200],
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def extend_lease(job_id: int, worker: str, lease_seconds: int, now: datetime | None = None) -> bool:
    """Keep a running job ours for another lease period (the heartbeat of a live worker)."""
    now = now or utcnow()
    result = db.session.execute(
        update(GradingJob)
        .where(
            GradingJob.id == job_id, GradingJob.state == JobState.RUNNING, GradingJob.worker == worker[:200]
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def jobs_to_resend(now: datetime, requeue_after: int) -> list[int]:
    """Jobs whose worker died (lease expired) or whose message seems lost (queued too long), marked as
    queued again with a fresh timestamp so that each is re-sent at most once per period."""
    stale = now - timedelta(seconds=requeue_after)
    ids = list(
        db.session.scalars(
            select(GradingJob.id).where(
                or_(
                    and_(GradingJob.state == JobState.RUNNING, GradingJob.lease_expires_at < now),
                    and_(GradingJob.state == JobState.QUEUED, GradingJob.enqueued_at < stale),
                )
            )
        )
    )
    if ids:
        db.session.execute(
            update(GradingJob)
            .where(
                GradingJob.id.in_(ids),
                or_(
                    and_(GradingJob.state == JobState.RUNNING, GradingJob.lease_expires_at < now),
                    GradingJob.state == JobState.QUEUED,
                ),
            )
            .values(state=JobState.QUEUED, enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def finish_job(
    job: GradingJob, *, failed: bool, log: Sequence[str] = (), now: datetime | None = None
) -> None:
    job.state = JobState.FAILED if failed else JobState.DONE
    job.finished_at = now or utcnow()
    job.lease_expires_at = None
    job.log = "\n".join([job.log or "", *log]).strip()[-20000:]


def record_release(assignment: Assignment, release_notebook: str, now: datetime | None = None) -> None:
    """Store the release notebook made by nbgrader and open the assignment."""
    assignment.release_notebook = release_notebook
    assignment.released_at = assignment.released_at or now or utcnow()
    assignment.release_error = ""


@dataclass(frozen=True)
class GradedCell:
    """What the autograder says about one graded cell (from nbgrader's gradebook)."""

    grade_id: str
    kind: CellKind
    max_points: float
    auto_points: float | None


def record_autograde(
    submission: Submission, cells: Sequence[GradedCell], autograded_notebook: str, now: datetime | None = None
) -> bool:
    """Write the autograder's points (keeping any trainer's points and comments); True if the score is final.

    Running this twice for the same submission leaves one row per cell: grades are keyed by cell.
    """
    now = now or utcnow()
    existing = {cell.grade_id: cell for cell in submission.cells}
    for position, graded in enumerate(cells):
        row = existing.get(graded.grade_id)
        if row is None:
            row = CellGrade(grade_id=graded.grade_id, kind=graded.kind, max_points=graded.max_points)
            submission.cells.append(row)
        row.position = position
        row.kind = graded.kind
        row.max_points = graded.max_points
        row.auto_points = graded.auto_points if graded.kind == CellKind.TESTS else None
    submission.autograded_notebook = autograded_notebook
    submission.graded_at = now
    db.session.flush()
    return _settle(submission, now)


def record_failure(submission: Submission, message: str) -> None:
    submission.status = SubmissionStatus.FAILED
    submission.message = message[:2000]


def _settle(submission: Submission, now: datetime) -> bool:
    """Recompute the submission's totals and status; send ``submission-graded`` when the score is final."""
    cells = submission.cells
    auto = sum(cell.points or 0.0 for cell in cells)
    extra = sum(cell.extra_credit for cell in cells) + submission.extra_credit
    submission.auto_score = round(auto, 4)
    pending = any(cell.needs_manual for cell in cells)
    was_final = submission.status == SubmissionStatus.GRADED
    if pending:
        submission.status = SubmissionStatus.AUTOGRADED
        submission.score = None
        return False
    total = max(0.0, auto - submission.late_penalty) + extra
    changed = submission.score != round(total, 4)
    submission.score = round(total, 4)
    submission.status = SubmissionStatus.GRADED
    if submission.feedback_released_at is None:
        submission.feedback_released_at = now
    db.session.flush()
    if changed or not was_final:
        signals.submission_graded.send(
            None,
            user=submission.user,
            cohort=submission.assignment.cohort,
            assignment_id=submission.assignment_id,
            unit_key=submission.assignment.unit_key,
            score=submission.score,
            max_score=submission.max_score,
        )
    return True


# --- manual grading ------------------------------------------------------------------------------------


def grade_cell(
    submission: Submission,
    grade_id: str,
    actor: User,
    *,
    points: float | None,
    comment: str,
    extra_credit: float = 0.0,
    now: datetime | None = None,
) -> CellGrade:
    """A trainer's points (None clears an override of an autograded cell), comment and extra credit."""
    now = now or utcnow()
    cell = next((c for c in submission.cells if c.grade_id == grade_id), None)
    if cell is None:
        raise InvalidGrade(_("This submission has no graded cell %(cell)s.", cell=grade_id))
    if points is not None and not (0 <= points <= cell.max_points) or not math.isfinite(points or 0.0):
        raise InvalidGrade(
            _(
                "Points for %(cell)s must be between 0 and %(max)s.",
                cell=grade_id,
                max=_number(cell.max_points),
            )
        )
    if points is None and cell.kind == CellKind.MANUAL:
        raise InvalidGrade(_("Give points for %(cell)s: it is graded by hand.", cell=grade_id))
    if not 0 <= extra_credit <= 1000 or not math.isfinite(extra_credit):
        raise InvalidGrade(_("Extra credit must be between 0 and 1,000 points."))
    comment = comment.strip()[:5000]
    old = {"points": cell.manual_points, "comment": cell.comment, "extra_credit": cell.extra_credit}
    new = {"points": points, "comment": comment, "extra_credit": extra_credit}
    if old == new:
        return cell
    cell.manual_points = points
    cell.comment = comment
    cell.extra_credit = extra_credit
    cell.graded_by_id = actor.id
    cell.graded_at = now
    audit.record(
        "graders.grade_changed",
        actor,
        submission,
        cell=grade_id,
        old=old,
        new=new,
        trainee=submission.user_id,
    )
    db.session.flush()
    _settle(submission, now)
    return cell


def _number(value: float) -> str:
    return f"{value:g}"


def request_regrade(submission: Submission, actor: User) -> GradingJob:
    """Run the autograder again on the stored notebook (trainers' points and comments are kept)."""
    if submission.status in (SubmissionStatus.QUEUED, SubmissionStatus.GRADING):
        raise GradersError(_("This submission is already waiting to be graded."))
    job = GradingJob(
        kind=JobKind.AUTOGRADE, assignment_id=submission.assignment_id, submission_id=submission.id
    )
    submission.status = SubmissionStatus.QUEUED
    submission.message = ""
    db.session.add(job)
    audit.record("graders.regrade_requested", actor, submission, old_score=submission.score)
    db.session.flush()
    return job


def release_feedback(submission: Submission, actor: User, now: datetime | None = None) -> None:
    """Show the trainee the feedback now (before manual grading is finished)."""
    if submission.feedback_released_at is None:
        submission.feedback_released_at = now or utcnow()
        audit.record("graders.feedback_released", actor, submission)
        db.session.flush()


def feedback_visible(submission: Submission) -> bool:
    return submission.feedback_released_at is not None and submission.autograded_notebook is not None


def may_read_feedback(user: User, submission: Submission) -> bool:
    """Its trainee once the feedback is released; the cohort's graders as soon as it is autograded
    (callers have already checked that ``user`` may see the submission at all)."""
    if submission.user_id == user.id:
        return feedback_visible(submission)
    return submission.graded_at is not None and submission.autograded_notebook is not None


# --- what trainers see ---------------------------------------------------------------------------------


def latest_submissions(assignment_ids: Sequence[int]) -> Select[Any]:
    """A select of the latest submission of each (assignment, trainee) among ``assignment_ids``."""
    latest = (
        select(Submission.assignment_id, Submission.user_id, func.max(Submission.attempt).label("attempt"))
        .where(Submission.assignment_id.in_(assignment_ids))
        .group_by(Submission.assignment_id, Submission.user_id)
        .subquery()
    )
    return select(Submission).join(
        latest,
        and_(
            Submission.assignment_id == latest.c.assignment_id,
            Submission.user_id == latest.c.user_id,
            Submission.attempt == latest.c.attempt,
        ),
    )


def manual_queue(
    trainer: User, *, assignment_id: int | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[Submission], int]:
    """Latest submissions awaiting a trainer, oldest first, in cohorts the user manages; (page, total)."""
    from lms.models import Role, cohort_trainer

    assignments = select(Assignment.id)
    if not trainer.is_platform_admin:
        # cohorts the user teaches, and those of training bases the user administers
        bases = [g.institution_id for g in trainer.grants if g.role == Role.ADMIN and g.institution_id]
        teaches = select(cohort_trainer.c.cohort_id).where(cohort_trainer.c.user_id == trainer.id)
        assignments = assignments.join(Cohort, Cohort.id == Assignment.cohort_id).where(
            or_(Assignment.cohort_id.in_(teaches), Cohort.training_base_id.in_(bases))
        )
    if assignment_id is not None:
        assignments = assignments.where(Assignment.id == assignment_id)
    ids = list(db.session.scalars(assignments))
    if not ids:
        return [], 0
    query = latest_submissions(ids).where(Submission.status == SubmissionStatus.AUTOGRADED)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(
        db.session.scalars(
            query.order_by(Submission.submitted_at, Submission.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return rows, int(total)


def pseudonym(submission: Submission) -> str:
    """A stable name for anonymous grading that does not reveal the trainee."""
    digest = hashlib.sha256(f"{submission.assignment_id}:{submission.user_id}".encode()).hexdigest()
    return _("Trainee %(code)s", code=digest[:6].upper())


@dataclass(frozen=True)
class GradebookRow:
    trainee: User
    cells: dict[int, Submission]  # assignment id → latest submission

    def total(self) -> float:
        return sum(s.score or 0.0 for s in self.cells.values())


def cohort_gradebook(cohort: Cohort) -> tuple[list[Assignment], list[GradebookRow]]:
    """Assignments × trainees of a cohort with each trainee's latest submission."""
    assignments = cohort_assignments(cohort)
    trainees = list(
        db.session.scalars(
            select(User)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(Enrollment.cohort_id == cohort.id, Enrollment.status != EnrollmentStatus.WITHDRAWN)
            .order_by(User.username)
        )
    )
    by_user: dict[int, dict[int, Submission]] = {}
    if assignments:
        for submission in db.session.scalars(latest_submissions([a.id for a in assignments])):
            by_user.setdefault(submission.user_id, {})[submission.assignment_id] = submission
    return assignments, [GradebookRow(t, by_user.get(t.id, {})) for t in trainees]


def score_histogram(scores: Iterable[float], max_score: float, bins: int = 10) -> list[int]:
    """How many scores fall in each of ``bins`` equal parts of 0..max_score (the last includes the max)."""
    counts = [0] * bins
    if max_score <= 0:
        return counts
    for score in scores:
        index = min(bins - 1, max(0, int(score / max_score * bins)))
        counts[index] += 1
    return counts


def trainer_assignments_needing_grading(trainer: User) -> int:
    """How many submissions wait for this trainer's manual grading (for the dashboard)."""
    return manual_queue(trainer, per_page=1)[1]


def job_for_submission(submission: Submission) -> GradingJob | None:
    return db.session.scalar(
        select(GradingJob)
        .where(GradingJob.submission_id == submission.id)
        .order_by(GradingJob.id.desc())
        .limit(1)
    )
