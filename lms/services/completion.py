"""Completion: a trainee's checklist against the cohort's rules, the cohort's eligibility at a glance, and
re-evaluation as evidence arrives (signal receivers), which issues the certificate when the rules hold."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from lms import signals
from lms.completion import (
    Checklist,
    CompletionRules,
    RuleUnit,
    TraineeRecord,
    checklist,
    problems_in,
    rules_from,
)
from lms.extensions import db
from lms.models import (
    Certificate,
    Cohort,
    CourseUnit,
    CourseVersion,
    Delivery,
    Enrollment,
    EnrollmentStatus,
    HoursEntry,
    HoursSource,
    ProgressStatus,
    UnitKind,
    UnitProgress,
    User,
)
from lms.services import DomainError
from lms.services.progress import Trainee, cohort_trainees, cohort_version_id
from lms.timeutil import utcnow

RULE_UNIT_KINDS = (UnitKind.LAB, UnitKind.EXERCISE, UnitKind.QUIZ)


class InvalidCompletionRules(DomainError):
    """A cohort's rule overrides do not fit its course."""


def _version(cohort: Cohort) -> CourseVersion | None:
    version_id = cohort_version_id(cohort)
    return db.session.get(CourseVersion, version_id) if version_id is not None else None


def rule_units(cohort: Cohort) -> list[RuleUnit]:
    """The labs, exercises and quizzes of the cohort's course version, in teaching order."""
    version_id = cohort_version_id(cohort)
    if version_id is None:
        return []
    rows = db.session.execute(
        select(CourseUnit.key, CourseUnit.kind, CourseUnit.title)
        .where(CourseUnit.version_id == version_id, CourseUnit.kind.in_(RULE_UNIT_KINDS))
        .order_by(CourseUnit.module_id, CourseUnit.position)
    )
    return [RuleUnit(key, kind.value, title) for key, kind, title in rows]


def cohort_rules(cohort: Cohort) -> CompletionRules:
    """The course version's rules (course.yaml ``completion``) with the cohort's overrides on top."""
    version = _version(cohort)
    meta = version.meta if version is not None else {}
    course = cohort.course
    hours = meta.get("hours") or {
        "total": course.total_hours,
        "online": course.online_hours,
        "offline": course.offline_hours,
    }
    declared = meta.get("completion") or {}
    if cohort.required_hours and not (declared.get("hours") or {}).get("total"):
        # without a declared total, the cohort's own required hours count (when they ask for more)
        hours = {**hours, "total": max(float(hours.get("total", 0)), float(cohort.required_hours))}
    return rules_from(hours, declared, cohort.completion_overrides)


def set_cohort_overrides(cohort: Cohort, overrides: dict[str, Any], actor: User) -> CompletionRules:
    """Replace the cohort's rule overrides (validated against its course) and re-evaluate its trainees."""
    kinds = {unit.key: unit.kind for unit in rule_units(cohort)}
    problems = problems_in(overrides, kinds)
    if problems:
        raise InvalidCompletionRules("; ".join(message for _, message in problems))
    from lms.services import audit

    audit.record(
        "completion.rules_changed", actor, cohort, old=dict(cohort.completion_overrides or {}), new=overrides
    )
    cohort.completion_overrides = overrides
    db.session.flush()
    for trainee in cohort_trainees(cohort):
        user = db.session.get(User, trainee.id)
        assert user is not None
        reevaluate(user, cohort)
    return cohort_rules(cohort)


def _records(cohort: Cohort, user_ids: list[int]) -> dict[int, TraineeRecord]:
    """The evidence of the given trainees in the cohort, in three queries whatever their number."""
    if not user_ids:
        return {}
    minutes: dict[int, tuple[int, int]] = {}
    for user_id, online, offline in db.session.execute(
        select(
            HoursEntry.user_id,
            func.coalesce(func.sum(case((HoursEntry.delivery == Delivery.ONLINE, HoursEntry.minutes))), 0),
            func.coalesce(func.sum(case((HoursEntry.delivery == Delivery.OFFLINE, HoursEntry.minutes))), 0),
        )
        .where(HoursEntry.cohort_id == cohort.id, HoursEntry.user_id.in_(user_ids))
        .group_by(HoursEntry.user_id)
    ):
        minutes[user_id] = (int(online), int(offline))
    labs: dict[int, set[str]] = defaultdict(set)
    for user_id, evidence in db.session.execute(
        select(HoursEntry.user_id, HoursEntry.evidence).where(
            HoursEntry.cohort_id == cohort.id,
            HoursEntry.user_id.in_(user_ids),
            HoursEntry.source == HoursSource.LAB_ATTENDANCE,
        )
    ):
        if isinstance(evidence, dict) and evidence.get("unit_key"):
            labs[user_id].add(str(evidence["unit_key"]))
    best: dict[int, dict[str, float]] = defaultdict(dict)
    passed: dict[int, set[str]] = defaultdict(set)
    for user_id, unit_key, status, score in db.session.execute(
        select(
            UnitProgress.user_id, UnitProgress.unit_key, UnitProgress.status, UnitProgress.best_score
        ).where(UnitProgress.cohort_id == cohort.id, UnitProgress.user_id.in_(user_ids))
    ):
        if score is not None:
            best[user_id][unit_key] = float(score)
        if status == ProgressStatus.COMPLETED:
            passed[user_id].add(unit_key)
    return {
        user_id: TraineeRecord(
            online_minutes=minutes.get(user_id, (0, 0))[0],
            offline_minutes=minutes.get(user_id, (0, 0))[1],
            attended_labs=frozenset(labs[user_id]),
            best_percent=best[user_id],
            quizzes_passed=frozenset(passed[user_id]),
        )
        for user_id in user_ids
    }


def trainee_checklist(user: User, cohort: Cohort) -> Checklist:
    """What the trainee has done of the cohort's completion rules, and what is left."""
    record = _records(cohort, [user.id])[user.id]
    return checklist(cohort_rules(cohort), rule_units(cohort), record)


@dataclass(frozen=True)
class EligibilityRow:
    trainee: Trainee
    checklist: Checklist
    certificate: Certificate | None


def cohort_eligibility(cohort: Cohort) -> list[EligibilityRow]:
    """Every trainee of the cohort (not withdrawn) with their checklist and certificate, by username."""
    trainees = cohort_trainees(cohort)
    rules, units = cohort_rules(cohort), rule_units(cohort)
    records = _records(cohort, [trainee.id for trainee in trainees])
    certificates = {
        certificate.user_id: certificate
        for certificate in db.session.scalars(select(Certificate).where(Certificate.cohort_id == cohort.id))
    }
    return [
        EligibilityRow(trainee, checklist(rules, units, records[trainee.id]), certificates.get(trainee.id))
        for trainee in trainees
    ]


def reevaluate(user: User, cohort: Cohort) -> Certificate | None:
    """Check the trainee against the rules now; when they hold for the first time, the enrollment is
    completed and the certificate issued. Returns the certificate issued by this call, if any."""
    enrollment = db.session.scalar(
        select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.user_id == user.id)
    )
    if enrollment is None or enrollment.status == EnrollmentStatus.WITHDRAWN:
        return None
    if enrollment.completed_at is not None:
        return None  # completion is a fact once reached; a certificate is withdrawn only by revocation
    result = trainee_checklist(user, cohort)
    if not result.complete:
        return None
    from lms.services.certificates import issue_certificate

    enrollment.completed_at = utcnow()
    enrollment.status = EnrollmentStatus.COMPLETED
    certificate = issue_certificate(user, cohort, result, cohort_rules(cohort))
    signals.training_completed.send(None, enrollment=enrollment, certificate=certificate)
    return certificate


def on_hours_credited(sender: Any, *, entry: HoursEntry, **_: Any) -> None:
    """Receiver of ``hours-credited``: new hours may complete the trainee."""
    if entry.cohort_id is None:
        return
    user, cohort = db.session.get(User, entry.user_id), db.session.get(Cohort, entry.cohort_id)
    if user is not None and cohort is not None:
        reevaluate(user, cohort)


def on_submission_graded(sender: Any, *, user: User, cohort: Cohort, **kwargs: Any) -> None:
    """Receiver of ``submission-graded``: the exercise's best score is kept, then the rules checked."""
    from lms.services.learning import record_exercise_score

    record_exercise_score(sender, user=user, cohort=cohort, **kwargs)
    db.session.flush()
    reevaluate(user, cohort)


def on_unit_passed(sender: Any, *, user: User, cohort: Cohort, **_: Any) -> None:
    """Receiver of ``unit-passed`` (a quiz passed): the rules checked."""
    reevaluate(user, cohort)


def connect_receivers() -> None:
    """Listen to the signals that carry evidence of completion."""
    signals.hours_credited.connect(on_hours_credited)
    signals.submission_graded.connect(on_submission_graded)
    signals.unit_passed.connect(on_unit_passed)
