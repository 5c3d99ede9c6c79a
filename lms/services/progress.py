"""Read-only progress reports over the course outline, the unit progress rows and the hours ledger.

For a trainee: module progress and what to do next. For trainers: the cohort grid (who is behind),
per-unit completion and quiz item analysis. Every function runs a handful of grouped queries whatever
the size of the cohort, never one query per trainee. Titles and question texts are returned as
``{locale: text}`` dicts; views pick the locale with :func:`localized`.

"Units" in done/total counts are the online units (lessons and quizzes): labs count through the offline
hours of the ledger and exercises through the graders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import and_, func, select

from lms.extensions import db
from lms.models import (
    Cohort,
    Course,
    CourseModule,
    CourseUnit,
    CourseVersion,
    Delivery,
    Enrollment,
    EnrollmentStatus,
    HoursEntry,
    HoursSource,
    ProgressStatus,
    QuizAttempt,
    Role,
    UnitKind,
    UnitProgress,
    User,
)

ONLINE_KINDS = (UnitKind.LESSON, UnitKind.QUIZ)
#: The largest id a row can have: ids are INTEGER columns, 32 bits on PostgreSQL, which raises on larger
#: query parameters; callers treat larger ids as unknown.
MAX_ID = 2**31 - 1
#: A trainee is behind when their credited hours are below this share of today's linear expectation.
BEHIND_THRESHOLD = 0.8
NOT_STARTED = "not_started"


def localized(texts: dict[str, str] | None, locale: str) -> str:
    """The text in the locale, falling back to Chinese, then to any text there is."""
    if not texts:
        return ""
    return texts.get(locale) or texts.get("zh_CN") or next(iter(texts.values()), "")


# --- the outline ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutlineUnit:
    id: int
    key: str
    kind: UnitKind
    title: dict[str, str]
    minutes: int
    module_key: str
    points: float | None  # exercises only
    due_days: int | None  # exercises only

    @property
    def is_online(self) -> bool:
        return self.kind.is_online


@dataclass(frozen=True)
class OutlineModule:
    id: int
    key: str
    position: int
    title: dict[str, str]
    units: tuple[OutlineUnit, ...]

    @property
    def online_units(self) -> tuple[OutlineUnit, ...]:
        return tuple(unit for unit in self.units if unit.is_online)


def current_version(course: Course) -> CourseVersion | None:
    """The course's current version, or None before its files are imported."""
    return db.session.scalar(
        select(CourseVersion).where(CourseVersion.course_id == course.id, CourseVersion.is_current.is_(True))
    )


def cohort_version_id(cohort: Cohort) -> int | None:
    """The version the cohort follows, else its course's current version, else None."""
    if cohort.course_version_id is not None:
        return cohort.course_version_id
    return db.session.scalar(
        select(CourseVersion.id).where(
            CourseVersion.course_id == cohort.course_id, CourseVersion.is_current.is_(True)
        )
    )


def course_outline(version_id: int | None) -> list[OutlineModule]:
    """Modules and units of a version in teaching order, without the units' (large) bodies."""
    if version_id is None:
        return []
    modules = db.session.execute(
        select(CourseModule.id, CourseModule.key, CourseModule.position, CourseModule.title)
        .where(CourseModule.version_id == version_id)
        .order_by(CourseModule.position)
    ).all()
    units: dict[int, list[OutlineUnit]] = defaultdict(list)
    keys = {module.id: module.key for module in modules}
    rows = db.session.execute(
        select(
            CourseUnit.id,
            CourseUnit.module_id,
            CourseUnit.key,
            CourseUnit.kind,
            CourseUnit.title,
            CourseUnit.minutes,
            CourseUnit.body["points"].as_float(),
            CourseUnit.body["due_days"].as_integer(),
        )
        .where(CourseUnit.version_id == version_id)
        .order_by(CourseUnit.position, CourseUnit.id)
    )
    for unit_id, module_id, key, kind, title, minutes, points, due_days in rows:
        exercise = kind == UnitKind.EXERCISE
        units[module_id].append(
            OutlineUnit(
                id=unit_id,
                key=key,
                kind=kind,
                title=title,
                minutes=minutes,
                module_key=keys[module_id],
                points=points if exercise else None,
                due_days=due_days if exercise else None,
            )
        )
    return [
        OutlineModule(id=m.id, key=m.key, position=m.position, title=m.title, units=tuple(units[m.id]))
        for m in modules
    ]


def _units(outline: Iterable[OutlineModule]) -> list[OutlineUnit]:
    return [unit for module in outline for unit in module.units]


# --- one trainee ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleProgress:
    module: OutlineModule
    done: int
    total: int
    online_minutes: int  # credited in the ledger for the module's units

    @property
    def share(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class UnitStatus:
    unit: OutlineUnit
    status: str  # not_started | started | completed
    credited: bool
    best_score: float | None
    attempts: int


@dataclass(frozen=True)
class UpcomingExercise:
    unit: OutlineUnit
    due_on: date


@dataclass(frozen=True)
class NextSteps:
    units: list[OutlineUnit]
    exercise: UpcomingExercise | None


def _completed_keys(user_id: int, cohort_id: int) -> set[str]:
    return set(
        db.session.scalars(
            select(UnitProgress.unit_key).where(
                UnitProgress.user_id == user_id,
                UnitProgress.cohort_id == cohort_id,
                UnitProgress.status == ProgressStatus.COMPLETED,
            )
        )
    )


def _online_minutes_by_unit(user_id: int, cohort_id: int) -> dict[str, int]:
    """Ledger minutes per unit key; online-unit credits carry ``"<cohort id>:<unit key>"`` as source_ref
    (see lms.services.hours.on_lesson_completed)."""
    prefix = f"{cohort_id}:"
    rows = db.session.execute(
        select(HoursEntry.source_ref, func.sum(HoursEntry.minutes))
        .where(
            HoursEntry.user_id == user_id,
            HoursEntry.cohort_id == cohort_id,
            HoursEntry.source == HoursSource.ONLINE_UNIT,
        )
        .group_by(HoursEntry.source_ref)
    )
    return {ref.removeprefix(prefix): int(total or 0) for ref, total in rows if ref.startswith(prefix)}


def module_progress(user: User, cohort: Cohort) -> list[ModuleProgress]:
    """Per module of the cohort's version: online units done / total and online minutes credited."""
    outline = course_outline(cohort_version_id(cohort))
    done = _completed_keys(user.id, cohort.id)
    minutes = _online_minutes_by_unit(user.id, cohort.id)
    result = []
    for module in outline:
        online = module.online_units
        result.append(
            ModuleProgress(
                module=module,
                done=sum(1 for unit in online if unit.key in done),
                total=len(online),
                online_minutes=sum(minutes.get(unit.key, 0) for unit in module.units),
            )
        )
    return result


def unit_statuses(user: User, cohort: Cohort) -> list[UnitStatus]:
    """Every unit of the cohort's version in teaching order with the trainee's progress on it."""
    outline = course_outline(cohort_version_id(cohort))
    rows = {
        row.unit_key: row
        for row in db.session.execute(
            select(
                UnitProgress.unit_key,
                UnitProgress.status,
                UnitProgress.credited,
                UnitProgress.best_score,
                UnitProgress.attempts,
            ).where(UnitProgress.user_id == user.id, UnitProgress.cohort_id == cohort.id)
        )
    }
    statuses = []
    for unit in _units(outline):
        row = rows.get(unit.key)
        if row is None:
            statuses.append(UnitStatus(unit, NOT_STARTED, False, None, 0))
        else:
            statuses.append(
                UnitStatus(unit, row.status.value, bool(row.credited), row.best_score, row.attempts or 0)
            )
    return statuses


def next_units(user: User, cohort: Cohort, limit: int = 3, today: date | None = None) -> NextSteps:
    """The first ``limit`` online units not yet completed, in teaching order, and the not-completed
    exercise due next (on or after today; due ``due_days`` after the cohort starts)."""
    today = today or date.today()
    outline = course_outline(cohort_version_id(cohort))
    done = _completed_keys(user.id, cohort.id)
    units = _units(outline)
    pending = [unit for unit in units if unit.is_online and unit.key not in done][: max(limit, 0)]
    upcoming = [
        UpcomingExercise(unit, cohort.starts_on + timedelta(days=unit.due_days))
        for unit in units
        if unit.kind == UnitKind.EXERCISE and unit.due_days is not None and unit.key not in done
    ]
    upcoming = [item for item in upcoming if item.due_on >= today]
    exercise = min(upcoming, key=lambda item: item.due_on) if upcoming else None
    return NextSteps(pending, exercise)


# --- a cohort ---------------------------------------------------------------------------------------------


def expected_share(cohort: Cohort, today: date) -> float:
    """The share of the hours a trainee on schedule has by today (linear over the cohort's dates)."""
    span = (cohort.ends_on - cohort.starts_on).days or 1
    return max(0.0, min(1.0, (today - cohort.starts_on).days / span))


def is_behind(credited_minutes: int, expected_minutes: float) -> bool:
    """Credited hours more than 20% below today's linear expectation."""
    return expected_minutes > 0 and credited_minutes < BEHIND_THRESHOLD * expected_minutes


@dataclass(frozen=True)
class Trainee:
    id: int
    username: str
    real_name: str
    employer: str


@dataclass(frozen=True)
class GridCell:
    """Online units done in one module by one trainee."""

    done: int
    total: int

    @property
    def level(self) -> int:
        """0 (nothing done) to 5 (all done): the colour step of the cell."""
        if self.total <= 0 or self.done <= 0:
            return 0
        share = self.done / self.total
        return 5 if share >= 1 else 4 if share >= 0.75 else 3 if share >= 0.5 else 2 if share >= 0.25 else 1


@dataclass(frozen=True)
class GridRow:
    trainee: Trainee
    online_minutes: int
    offline_minutes: int
    module_done: tuple[int, ...]  # aligned with CohortGrid.modules
    module_totals: tuple[int, ...]  # online units per module, the same for every row
    behind: bool

    @property
    def total_minutes(self) -> int:
        return self.online_minutes + self.offline_minutes

    @property
    def units_done(self) -> int:
        return sum(self.module_done)

    @property
    def cells(self) -> tuple[GridCell, ...]:
        return tuple(
            GridCell(done, total) for done, total in zip(self.module_done, self.module_totals, strict=True)
        )


@dataclass(frozen=True)
class CohortGrid:
    cohort: Cohort
    modules: tuple[OutlineModule, ...]
    rows: tuple[GridRow, ...]  # behind trainees first, then by username
    required_minutes: int
    expected_minutes: float  # what a trainee on schedule has by today

    @cached_property
    def module_totals(self) -> tuple[int, ...]:
        return tuple(len(module.online_units) for module in self.modules)

    @cached_property
    def units_total(self) -> int:
        return sum(self.module_totals)

    @cached_property
    def behind_count(self) -> int:
        return sum(1 for row in self.rows if row.behind)


def _not_withdrawn(cohort: Cohort):
    return and_(Enrollment.cohort_id == cohort.id, Enrollment.status != EnrollmentStatus.WITHDRAWN)


def cohort_trainees(cohort: Cohort) -> list[Trainee]:
    """The cohort's trainees who have not withdrawn, by username."""
    rows = db.session.execute(
        select(User.id, User.username, User.real_name, User.employer)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(_not_withdrawn(cohort))
        .order_by(User.username)
    )
    return [Trainee(*row) for row in rows]


def cohort_grid(cohort: Cohort, today: date | None = None) -> CohortGrid:
    """Per trainee: hours online and offline, online units done per module, and the behind flag."""
    today = today or date.today()
    version_id = cohort_version_id(cohort)
    outline = tuple(course_outline(version_id))
    trainees = cohort_trainees(cohort)
    minutes: dict[int, dict[Delivery, int]] = defaultdict(dict)
    for user_id, delivery, total in db.session.execute(
        select(HoursEntry.user_id, HoursEntry.delivery, func.sum(HoursEntry.minutes))
        .where(HoursEntry.cohort_id == cohort.id)
        .group_by(HoursEntry.user_id, HoursEntry.delivery)
    ):
        minutes[user_id][delivery] = int(total or 0)
    done: dict[tuple[int, int], int] = {}
    if version_id is not None:
        for user_id, module_id, count in db.session.execute(
            select(UnitProgress.user_id, CourseUnit.module_id, func.count())
            .join(
                CourseUnit,
                and_(CourseUnit.key == UnitProgress.unit_key, CourseUnit.version_id == version_id),
            )
            .where(
                UnitProgress.cohort_id == cohort.id,
                UnitProgress.status == ProgressStatus.COMPLETED,
                CourseUnit.kind.in_(ONLINE_KINDS),
            )
            .group_by(UnitProgress.user_id, CourseUnit.module_id)
        ):
            done[(user_id, module_id)] = int(count)
    required = cohort.required_hours * 60
    expected = required * expected_share(cohort, today)
    totals = tuple(len(module.online_units) for module in outline)
    rows = []
    for trainee in trainees:
        online = minutes[trainee.id].get(Delivery.ONLINE, 0)
        offline = minutes[trainee.id].get(Delivery.OFFLINE, 0)
        rows.append(
            GridRow(
                trainee=trainee,
                online_minutes=online,
                offline_minutes=offline,
                module_done=tuple(done.get((trainee.id, module.id), 0) for module in outline),
                module_totals=totals,
                behind=is_behind(online + offline, expected),
            )
        )
    rows.sort(key=lambda row: (not row.behind, row.trainee.username))
    return CohortGrid(cohort, outline, tuple(rows), required, expected)


@dataclass(frozen=True)
class UnitCompletion:
    unit: OutlineUnit
    completed: int
    trainees: int

    @property
    def share(self) -> float:
        return self.completed / self.trainees if self.trainees else 0.0


def unit_completion(cohort: Cohort) -> list[UnitCompletion]:
    """Per lesson and quiz, in teaching order: trainees who completed it / trainees in the cohort."""
    outline = course_outline(cohort_version_id(cohort))
    trainees = db.session.scalar(select(func.count()).select_from(Enrollment).where(_not_withdrawn(cohort)))
    counts: dict[str, int] = {
        key: int(count)
        for key, count in db.session.execute(
            select(UnitProgress.unit_key, func.count())
            .join(
                Enrollment,
                and_(
                    Enrollment.user_id == UnitProgress.user_id, Enrollment.cohort_id == UnitProgress.cohort_id
                ),
            )
            .where(_not_withdrawn(cohort), UnitProgress.status == ProgressStatus.COMPLETED)
            .group_by(UnitProgress.unit_key)
        )
    }
    return [
        UnitCompletion(unit, int(counts.get(unit.key, 0)), int(trainees or 0))
        for unit in _units(outline)
        if unit.is_online
    ]


@dataclass(frozen=True)
class QuestionStat:
    question_id: str
    position: int  # in the quiz; questions no longer in the version come last
    type: str
    prompt: dict[str, str]
    answered: int  # trainees whose latest attempt scored this question
    correct: int

    @property
    def share_correct(self) -> float | None:
        return self.correct / self.answered if self.answered else None


@dataclass(frozen=True)
class QuizAnalysis:
    unit: OutlineUnit
    pass_mark: float | None
    trainees: int  # in the cohort
    attempted: int  # trainees with at least one attempt
    attempts: int  # all attempts
    passed: int  # trainees whose latest attempt passed
    questions: list[QuestionStat]  # most missed first


def quiz_item_analysis(cohort: Cohort, unit_key: str) -> QuizAnalysis | None:
    """Per question of a quiz: how many trainees' latest attempts got it right, most missed first.

    None when the cohort's version has no quiz with this key."""
    version_id = cohort_version_id(cohort)
    if version_id is None:
        return None
    quiz = db.session.scalar(
        select(CourseUnit).where(
            CourseUnit.version_id == version_id, CourseUnit.key == unit_key, CourseUnit.kind == UnitKind.QUIZ
        )
    )
    if quiz is None:
        return None
    body: dict[str, Any] = quiz.body or {}
    joined_enrollment = and_(
        Enrollment.user_id == QuizAttempt.user_id, Enrollment.cohort_id == QuizAttempt.cohort_id
    )
    of_quiz = and_(
        QuizAttempt.cohort_id == cohort.id, QuizAttempt.unit_key == unit_key, _not_withdrawn(cohort)
    )
    attempts, attempted = db.session.execute(
        select(func.count(QuizAttempt.id), func.count(QuizAttempt.user_id.distinct()))
        .join(Enrollment, joined_enrollment)
        .where(of_quiz)
    ).one()
    ranked = (
        select(
            QuizAttempt.results,
            QuizAttempt.passed,
            func.row_number()
            .over(
                partition_by=QuizAttempt.user_id,
                order_by=(QuizAttempt.submitted_at.desc(), QuizAttempt.id.desc()),
            )
            .label("rank"),
        )
        .join(Enrollment, joined_enrollment)
        .where(of_quiz)
        .subquery()
    )
    answered: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    passed = 0
    for results, was_passed in db.session.execute(
        select(ranked.c.results, ranked.c.passed).where(ranked.c.rank == 1)
    ):
        passed += bool(was_passed)
        for question_id, ok in (results or {}).items():
            answered[str(question_id)] += 1
            correct[str(question_id)] += bool(ok)
    questions = {
        str(q["id"]): QuestionStat(
            str(q["id"]),
            index,
            q.get("type", ""),
            q.get("prompt", {}),
            answered[str(q["id"])],
            correct[str(q["id"])],
        )
        for index, q in enumerate(body.get("questions", []))
    }
    for question_id in sorted(set(answered) - set(questions)):
        questions[question_id] = QuestionStat(
            question_id, len(questions), "", {}, answered[question_id], correct[question_id]
        )
    ordered = sorted(
        questions.values(),
        key=lambda q: (q.share_correct is None, q.share_correct or 0.0, q.position),
    )
    trainees = db.session.scalar(select(func.count()).select_from(Enrollment).where(_not_withdrawn(cohort)))
    unit = OutlineUnit(quiz.id, quiz.key, quiz.kind, quiz.title, quiz.minutes, quiz.module.key, None, None)
    return QuizAnalysis(
        unit=unit,
        pass_mark=body.get("pass_mark"),
        trainees=int(trainees or 0),
        attempted=int(attempted or 0),
        attempts=int(attempts or 0),
        passed=passed,
        questions=ordered,
    )


# --- courses ----------------------------------------------------------------------------------------------


def _is_staff(user: User) -> bool:
    return bool(user.roles - {Role.TRAINEE})


def _enrolled_course_ids(user: User):
    return (
        select(Cohort.course_id)
        .join(Enrollment, Enrollment.cohort_id == Cohort.id)
        .where(Enrollment.user_id == user.id, Enrollment.status != EnrollmentStatus.WITHDRAWN)
    )


def visible_courses(user: User) -> list[Course]:
    """Staff (any role besides trainee) see every course; trainees the courses of their cohorts."""
    query = select(Course).order_by(Course.code)
    if not _is_staff(user):
        query = query.where(Course.id.in_(_enrolled_course_ids(user)))
    return list(db.session.scalars(query))


def can_see_course(user: User, course: Course) -> bool:
    """The rule of :func:`visible_courses` for one course."""
    if _is_staff(user):
        return True
    return bool(
        db.session.scalar(select(_enrolled_course_ids(user).where(Cohort.course_id == course.id).exists()))
    )


def current_versions(courses: Iterable[Course]) -> dict[int, CourseVersion]:
    """The current version of each course that has one, by course id."""
    ids = [course.id for course in courses]
    if not ids:
        return {}
    return {
        version.course_id: version
        for version in db.session.scalars(
            select(CourseVersion).where(CourseVersion.course_id.in_(ids), CourseVersion.is_current.is_(True))
        )
    }
