"""Online theory delivery: who may learn or preview a cohort's course, opening units, reading time
measured by heartbeats, completion, crediting the hours ledger, and quizzes.

Hours are credited on evidence. The browser reports active reading seconds; the server accepts at most
the real time elapsed since the previous heartbeat (and at most HEARTBEAT_MAX_SECONDS per heartbeat), so
no client can claim more time than has passed. A completed online unit credits its nominal minutes once
its active time reaches ONLINE_CREDIT_SHARE of them, exactly once, through the ``lesson-completed``
signal that the core's hours ledger listens to.
"""

from __future__ import annotations

import enum
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from lms import signals
from lms.extensions import db
from lms.models import (
    Cohort,
    CourseModule,
    CourseUnit,
    Enrollment,
    EnrollmentStatus,
    ProgressStatus,
    QuizAttempt,
    Role,
    UnitKind,
    UnitProgress,
    User,
    cohort_trainer,
)
from lms.services import DomainError
from lms.services.cohorts import can_manage_cohort
from lms.timeutil import utcnow

MAX_FILL_ANSWER = 200


class LearningError(DomainError):
    """A learning action the rules do not allow."""


class NotAnOnlineUnit(LearningError):
    """Labs and exercises are done offline; they have no reading time or online completion."""


class CannotMarkAsRead(LearningError):
    """Only lessons are marked as read; a quiz is completed by passing it."""


class NotAQuiz(LearningError):
    pass


class AttemptAlreadySubmitted(LearningError):
    """The quiz form was submitted before (a double click, a reload, or another window)."""


class Mode(enum.StrEnum):
    """How a user sees a cohort's course."""

    LEARNER = "learner"  # an actively enrolled trainee: progress and hours are recorded
    PREVIEW = "preview"  # trainers, admins, trainees who finished: nothing is recorded


def access_mode(user: User, cohort: Cohort) -> Mode | None:
    """LEARNER for a trainee actively enrolled in the cohort; PREVIEW for its trainers and admins
    (and for trainees whose enrollment is completed); None for everyone else."""
    status = db.session.scalar(
        select(Enrollment.status).where(Enrollment.cohort_id == cohort.id, Enrollment.user_id == user.id)
    )
    if status == EnrollmentStatus.ACTIVE:
        return Mode.LEARNER
    if status == EnrollmentStatus.COMPLETED or can_manage_cohort(user, cohort):
        return Mode.PREVIEW
    return None


def can_view_version(user: User, version_id: int) -> bool:
    """Whether the user may see the files (images) of a course version: platform admins, and whoever
    may learn or preview a cohort that follows it."""
    if user.is_platform_admin:
        return True
    follows = Cohort.course_version_id == version_id
    enrolled = exists().where(
        Enrollment.cohort_id == Cohort.id,
        Enrollment.user_id == user.id,
        Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED]),
    )
    teaches = exists().where(cohort_trainer.c.cohort_id == Cohort.id, cohort_trainer.c.user_id == user.id)
    conditions: list[ColumnElement[bool]] = [enrolled, teaches]
    administered = {g.institution_id for g in user.grants if g.role == Role.ADMIN and g.institution_id}
    if administered:
        conditions.append(Cohort.training_base_id.in_(administered))
    return db.session.scalar(select(exists().where(follows, or_(*conditions)))) or False


def localised(texts: Mapping[str, str] | None, locale: str) -> str:
    """The text in ``locale``, falling back to Chinese, then to any locale given."""
    if not texts:
        return ""
    return texts.get(locale) or texts.get("zh_CN") or next(iter(texts.values()), "")


# --- the course outline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitRow:
    unit: CourseUnit
    progress: UnitProgress | None

    @property
    def completed(self) -> bool:
        return self.progress is not None and self.progress.status == ProgressStatus.COMPLETED


@dataclass(frozen=True)
class ModuleRow:
    module: CourseModule
    units: list[UnitRow]

    @property
    def online_units(self) -> int:
        return sum(1 for row in self.units if row.unit.kind.is_online)

    @property
    def online_completed(self) -> int:
        return sum(1 for row in self.units if row.unit.kind.is_online and row.completed)


def course_outline(cohort: Cohort, user: User | None) -> list[ModuleRow]:
    """The cohort's course version module by module, with ``user``'s progress on each unit (none when
    ``user`` is None, as in a preview)."""
    version = cohort.course_version
    if version is None:
        return []
    progress: dict[str, UnitProgress] = {}
    if user is not None:
        progress = {
            p.unit_key: p
            for p in db.session.scalars(
                select(UnitProgress).where(
                    UnitProgress.user_id == user.id, UnitProgress.cohort_id == cohort.id
                )
            )
        }
    return [
        ModuleRow(module, [UnitRow(unit, progress.get(unit.key)) for unit in module.units])
        for module in version.modules
    ]


def get_unit(cohort: Cohort, unit_key: str) -> CourseUnit | None:
    """The unit with this key in the cohort's course version, or None."""
    if cohort.course_version_id is None:
        return None
    return db.session.scalar(
        select(CourseUnit).where(
            CourseUnit.version_id == cohort.course_version_id, CourseUnit.key == unit_key
        )
    )


def adjacent_units(unit: CourseUnit) -> tuple[CourseUnit | None, CourseUnit | None]:
    """The units before and after ``unit`` in teaching order across the whole version."""
    ordered = [u for module in unit.version.modules for u in module.units]
    index = next(i for i, u in enumerate(ordered) if u.id == unit.id)
    before = ordered[index - 1] if index > 0 else None
    after = ordered[index + 1] if index + 1 < len(ordered) else None
    return before, after


def exercise_due_at(cohort: Cohort, unit: CourseUnit) -> datetime | None:
    """When an exercise is due: the end of the day ``due_days`` after the cohort starts, in the training
    base's time zone, as UTC."""
    due_days = unit.body.get("due_days")
    if unit.kind != UnitKind.EXERCISE or due_days is None:
        return None
    try:
        zone = ZoneInfo(cohort.training_base.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Asia/Shanghai")
    day = cohort.starts_on + timedelta(days=int(due_days))
    return datetime.combine(day, time(23, 59), tzinfo=zone).astimezone(UTC)


# --- progress, heartbeats and crediting -----------------------------------------------------------


def get_progress(user: User, cohort: Cohort, unit_key: str) -> UnitProgress | None:
    """The user's progress on the unit in the cohort, or None."""
    return db.session.scalar(
        select(UnitProgress).where(
            UnitProgress.user_id == user.id,
            UnitProgress.cohort_id == cohort.id,
            UnitProgress.unit_key == unit_key,
        )
    )


def open_unit(user: User, cohort: Cohort, unit: CourseUnit, now: datetime | None = None) -> UnitProgress:
    """The user's progress on an online unit, started now if this is the first visit."""
    if not unit.kind.is_online:
        raise NotAnOnlineUnit(_("Labs and exercises are done on site; they have no online progress."))
    progress = get_progress(user, cohort, unit.key)
    if progress is not None:
        return progress
    progress = UnitProgress(
        user_id=user.id, cohort_id=cohort.id, unit_key=unit.key, started_at=now or utcnow()
    )
    try:
        with db.session.begin_nested():
            db.session.add(progress)
    except IntegrityError:
        # Another request (a second tab) opened it first; use that row.
        found = get_progress(user, cohort, unit.key)
        assert found is not None
        return found
    return progress


def record_heartbeat(progress: UnitProgress, claimed_seconds: int, now: datetime | None = None) -> int:
    """Add the active seconds a heartbeat claims, capped by the real time since the previous heartbeat
    (or the first opening) and by HEARTBEAT_MAX_SECONDS; returns the seconds accepted.

    The previous heartbeat's time is compared and replaced in one UPDATE, so heartbeats sent in
    parallel cannot each claim the same elapsed time: only one of them wins the interval.
    """
    now = now or utcnow()
    db.session.flush()
    previous = progress.last_heartbeat_at
    reference = max(progress.started_at, previous) if previous is not None else progress.started_at
    elapsed = max(0, math.floor((now - reference).total_seconds()))
    cap = int(current_app.config["HEARTBEAT_MAX_SECONDS"])
    accepted = max(0, min(int(claimed_seconds), elapsed, cap))
    same_interval = (
        UnitProgress.last_heartbeat_at.is_(None)
        if previous is None
        else UnitProgress.last_heartbeat_at == previous
    )
    result = db.session.execute(
        update(UnitProgress)
        .where(UnitProgress.id == progress.id, same_interval)
        .values(active_seconds=UnitProgress.active_seconds + accepted, last_heartbeat_at=max(now, reference))
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(progress)
    return accepted if result.rowcount == 1 else 0  # type: ignore[attr-defined]


def required_active_seconds(unit: CourseUnit, share: float | None = None) -> int:
    """Active seconds a unit needs before its minutes are credited."""
    if share is None:
        share = float(current_app.config["ONLINE_CREDIT_SHARE"])
    return math.ceil(share * unit.minutes * 60)


def credit_if_due(progress: UnitProgress, user: User, cohort: Cohort, unit: CourseUnit) -> bool:
    """Credit the unit's minutes to the ledger when it is completed and its active time reaches the
    configured share; True when this call credited it. Each unit is credited at most once."""
    if (
        progress.credited
        or progress.status != ProgressStatus.COMPLETED
        or not unit.kind.is_online
        or unit.minutes <= 0
        or progress.active_seconds < required_active_seconds(unit)
    ):
        return False
    db.session.flush()
    claimed = db.session.execute(
        update(UnitProgress)
        .where(UnitProgress.id == progress.id, UnitProgress.credited.is_(False))
        .values(credited=True)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(progress)
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False  # a concurrent request credited it
    version = unit.version
    evidence: dict[str, Any] = {
        "active_seconds": progress.active_seconds,
        "required_seconds": required_active_seconds(unit),
        "started_at": progress.started_at.isoformat(),
        "completed_at": progress.completed_at.isoformat() if progress.completed_at else None,
        "course_version": version.version,
        "course_version_id": version.id,
        "unit_kind": unit.kind.value,
    }
    if unit.kind == UnitKind.QUIZ:
        evidence["best_score"] = progress.best_score
        evidence["attempts"] = progress.attempts
    signals.lesson_completed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user=user,
        cohort=cohort,
        unit_id=unit.key,
        minutes=unit.minutes,
        evidence=evidence,
    )
    return True


def heartbeat(
    user: User, cohort: Cohort, unit: CourseUnit, claimed_seconds: int, now: datetime | None = None
) -> tuple[UnitProgress, int, bool]:
    """Record a heartbeat on an online unit and credit it if that made it due:
    (progress, seconds accepted, credited by this call)."""
    progress = open_unit(user, cohort, unit, now)
    accepted = record_heartbeat(progress, claimed_seconds, now)
    return progress, accepted, credit_if_due(progress, user, cohort, unit)


def complete_unit(
    user: User, cohort: Cohort, unit: CourseUnit, now: datetime | None = None
) -> tuple[UnitProgress, bool]:
    """Mark a lesson as read: (progress, credited by this call)."""
    if unit.kind != UnitKind.LESSON:
        if unit.kind == UnitKind.QUIZ:
            raise CannotMarkAsRead(_("A quiz is completed by passing it."))
        raise NotAnOnlineUnit(_("Labs and exercises are done on site; they have no online progress."))
    progress = open_unit(user, cohort, unit, now)
    _mark_completed(progress, now)
    return progress, credit_if_due(progress, user, cohort, unit)


def record_exercise_score(
    sender: Any, *, user: User, cohort: Cohort, unit_key: str, score: float, max_score: float, **_: Any
) -> UnitProgress:
    """On ``submission-graded``: the exercise unit counts as completed, with its best score in percent (as
    quizzes keep theirs)."""
    progress = get_progress(user, cohort, unit_key)
    if progress is None:
        progress = UnitProgress(user_id=user.id, cohort_id=cohort.id, unit_key=unit_key, started_at=utcnow())
        db.session.add(progress)
    percent = round(100 * score / max_score, 2) if max_score > 0 else 100.0
    progress.attempts = (progress.attempts or 0) + 1
    progress.best_score = percent if progress.best_score is None else max(progress.best_score, percent)
    _mark_completed(progress, None)
    return progress


def _mark_completed(progress: UnitProgress, now: datetime | None) -> None:
    if progress.status != ProgressStatus.COMPLETED:
        progress.status = ProgressStatus.COMPLETED
        progress.completed_at = now or utcnow()
        db.session.flush()


# --- quizzes --------------------------------------------------------------------------------------


class QuizGrade(NamedTuple):
    score: float
    max_score: float
    results: dict[str, bool]  # question id -> answered correctly

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0


def _normalise_text(value: str) -> str:
    """Trimmed, case-folded, full-width forms folded (NFKC), inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def clean_answers(body: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """The answers to keep for a quiz: known question ids only, one value per single/true-false/fill
    question (fill text trimmed and shortened), a sorted list of known option ids per multiple one."""
    answers: dict[str, Any] = {}
    for question in body.get("questions", []):
        qid, kind = question["id"], question["type"]
        values = _as_list(raw.get(qid))
        options = {o["id"] for o in question.get("options", [])}
        if kind == "multiple":
            answers[qid] = sorted({v for v in values if v in options})
        elif kind == "fill":
            answers[qid] = values[0].strip()[:MAX_FILL_ANSWER] if values else ""
        elif kind == "single":  # exactly one known option; two values for one radio group are no answer
            answers[qid] = values[0] if len(values) == 1 and values[0] in options else None
        elif kind == "true_false":
            answers[qid] = values[0] if len(values) == 1 and values[0] in ("true", "false") else None
    return answers


def _is_correct(question: Mapping[str, Any], given: Any, locale: str) -> bool:
    kind, answer = question["type"], question["answer"]
    if kind == "single":
        return given is not None and str(given) == str(answer)
    if kind == "multiple":
        return set(_as_list(given)) == set(_as_list(answer)) and bool(answer)
    if kind == "true_false":
        return given in ("true", "false") and (given == "true") == bool(answer)
    if kind == "fill":
        text = _normalise_text(given if isinstance(given, str) else "")
        if not text:
            return False
        accepted = answer if isinstance(answer, dict) else {locale: _as_list(answer)}
        # the learner's own locale first, then every other locale's accepted answers
        ordered = [accepted.get(locale, [])] + [v for k, v in accepted.items() if k != locale]
        return any(text == _normalise_text(str(candidate)) for group in ordered for candidate in group)
    return False


def grade_quiz(body: Mapping[str, Any], answers: Mapping[str, Any], locale: str) -> QuizGrade:
    """Mark a quiz: one point per question. Single choice by option id, multiple choice by the exact set
    of option ids, true/false, and fill-in (trimmed, case-insensitive, any locale's accepted answers)."""
    cleaned = clean_answers(body, answers)
    results = {q["id"]: _is_correct(q, cleaned.get(q["id"]), locale) for q in body.get("questions", [])}
    return QuizGrade(float(sum(results.values())), float(len(results)), results)


def quiz_passed(body: Mapping[str, Any], grade: QuizGrade) -> bool:
    return grade.max_score > 0 and grade.percent >= float(body.get("pass_mark") or 0)


def next_attempt_number(progress: UnitProgress | None) -> int:
    """The one-time attempt number a freshly shown quiz form carries."""
    return (progress.attempts if progress else 0) + 1


def submit_quiz(
    user: User,
    cohort: Cohort,
    unit: CourseUnit,
    answers: Mapping[str, Any],
    *,
    attempt_number: int,
    locale: str,
    now: datetime | None = None,
) -> tuple[QuizAttempt, bool]:
    """Store a marked attempt, keep the best score (percent) and the attempt count, complete the quiz
    when it is passed and credit it if due: (attempt, credited by this call).

    ``attempt_number`` is the one-time number the form was shown with: the attempt count moves from
    ``attempt_number - 1`` to ``attempt_number`` in one conditional UPDATE, so the same form submitted
    twice (or from two windows) stores one attempt and raises AttemptAlreadySubmitted for the other.
    """
    if unit.kind != UnitKind.QUIZ:
        raise NotAQuiz(_("This unit is not a quiz."))
    now = now or utcnow()
    progress = open_unit(user, cohort, unit, now)
    db.session.flush()
    claimed = db.session.execute(
        update(UnitProgress)
        .where(UnitProgress.id == progress.id, UnitProgress.attempts == attempt_number - 1)
        .values(attempts=attempt_number)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(progress)
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AttemptAlreadySubmitted(
            _("This attempt was already submitted; open the quiz again to start a new attempt.")
        )
    grade = grade_quiz(unit.body, answers, locale)
    passed = quiz_passed(unit.body, grade)
    attempt = QuizAttempt(
        user_id=user.id,
        cohort_id=cohort.id,
        unit_key=unit.key,
        version_id=unit.version_id,
        answers=clean_answers(unit.body, answers),
        results=grade.results,
        score=grade.score,
        max_score=grade.max_score,
        passed=passed,
        submitted_at=now,
    )
    db.session.add(attempt)
    if progress.best_score is None or grade.percent > progress.best_score:
        progress.best_score = grade.percent
    if passed:
        _mark_completed(progress, now)
    db.session.flush()
    credited = credit_if_due(progress, user, cohort, unit)
    if passed:
        signals.unit_passed.send(None, user=user, cohort=cohort, unit_key=unit.key, score=grade.percent)
    return attempt, credited


def latest_attempt(user: User, cohort: Cohort, unit_key: str) -> QuizAttempt | None:
    """The user's most recent attempt at the quiz in the cohort, or None."""
    return db.session.scalar(
        select(QuizAttempt)
        .where(
            QuizAttempt.user_id == user.id,
            QuizAttempt.cohort_id == cohort.id,
            QuizAttempt.unit_key == unit_key,
        )
        .order_by(QuizAttempt.submitted_at.desc(), QuizAttempt.id.desc())
        .limit(1)
    )
