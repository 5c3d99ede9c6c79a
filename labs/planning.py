"""Planner service: gathers a cohort's planning problem from the database for the pure planner
(labs/planner.py), and turns an accepted proposal into lab sessions through create_lab_session, which
checks every clash again. Nothing is saved until a proposal is accepted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext
from sqlalchemy import select

from labs import planner
from labs.models import LabOccurrence, LabSession, OccurrenceStatus, Room, Site, session_trainer
from labs.services import active_trainee_count, create_lab_session
from lms.extensions import db
from lms.models import Cohort, CourseModule, CourseUnit, Enrollment, EnrollmentStatus, UnitKind, User
from lms.services import DomainError, audit

_ = gettext

DEFAULT_LAB_MINUTES = 240
DEFAULT_MAX_HOURS_PER_DAY = 8.0
DEFAULT_TIME_LIMIT_SECONDS = 20.0


class PlanningError(DomainError):
    """The cohort cannot be planned as asked (no lab units, no rooms, an unknown room or person...)."""


@dataclass(frozen=True)
class PlanOptions:
    weekends_only: bool = False
    max_hours_per_day: float | None = DEFAULT_MAX_HOURS_PER_DAY
    room_codes: tuple[str, ...] = ()  # empty (and no ids): every room of the training base's sites
    room_ids: tuple[int, ...] = ()
    start_times: tuple[time, ...] = planner.DEFAULT_START_TIMES
    hard_blackouts: bool = False
    # (username, day): a trainee's blackout date or a trainer's day away
    unavailable: tuple[tuple[str, date], ...] = ()
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS
    not_before: date | None = None  # None: from tomorrow at the site


@dataclass(frozen=True)
class PlanResult:
    cohort: Cohort
    timezone: str
    rooms: list[Room]
    proposal: planner.Proposal
    skipped_units: list[str]  # lab units the cohort already has sessions for

    @property
    def messages(self) -> list[str]:
        return [describe_diagnosis(d) for d in self.proposal.diagnoses]


@dataclass(frozen=True)
class ChosenPlacement:
    """One line of a proposal the user accepts: a lab unit in a room at a local start time."""

    unit_key: str
    room_id: int
    starts_at: datetime  # local to the room's site, naive


def configured_start_times(config: Mapping[str, object]) -> tuple[time, ...]:
    """LABS_PLANNER_START_TIMES ("09:00,14:00,19:00" or a list of "HH:MM") or the default."""
    value = config.get("LABS_PLANNER_START_TIMES")
    if not value:
        return planner.DEFAULT_START_TIMES
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    return parse_start_times(str(item) for item in items)


def parse_start_times(values: Iterable[str]) -> tuple[time, ...]:
    """ "HH:MM" strings as sorted, distinct times; PlanningError names the first bad one."""
    times = set()
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            times.add(datetime.strptime(text, "%H:%M").time())
        except ValueError:
            raise PlanningError(_("'%(value)s' is not a start time like 09:00.", value=text)) from None
    if not times:
        raise PlanningError(_("Give at least one start time, like 09:00."))
    return tuple(sorted(times))


def parse_unavailability(text: str) -> tuple[tuple[str, date], ...]:
    """Lines "username YYYY-MM-DD [YYYY-MM-DD ...]" (commas or spaces); '#' starts a comment."""
    found: list[tuple[str, date]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        username, days = line[0], line[1:]
        if not days:
            raise PlanningError(
                _("Line %(n)d: give a username and at least one date (YYYY-MM-DD).", n=number)
            )
        for day in days:
            try:
                found.append((username, date.fromisoformat(day)))
            except ValueError:
                raise PlanningError(
                    _("Line %(n)d: '%(value)s' is not a date like 2025-03-08.", n=number, value=day)
                ) from None
    return tuple(found)


def describe_diagnosis(diagnosis: planner.Diagnosis) -> str:
    return planner.describe(diagnosis, gettext)


def lab_units(cohort: Cohort) -> list[CourseUnit]:
    """The lab units of the cohort's course version in course order."""
    if cohort.course_version_id is None:
        return []
    return list(
        db.session.scalars(
            select(CourseUnit)
            .join(CourseUnit.module)
            .where(CourseUnit.version_id == cohort.course_version_id, CourseUnit.kind == UnitKind.LAB)
            .order_by(CourseModule.position, CourseUnit.position)
        )
    )


def unit_title(unit: CourseUnit) -> str:
    return unit.title.get("zh_CN") or next(iter(unit.title.values()), "") or unit.key


def scheduled_unit_keys(cohort: Cohort) -> set[str]:
    return set(db.session.scalars(select(LabSession.unit_key).where(LabSession.cohort_id == cohort.id)))


def planning_rooms(cohort: Cohort, codes: Iterable[str] = (), ids: Iterable[int] = ()) -> list[Room]:
    """Rooms of the sites of the cohort's training base, narrowed to ``codes`` or ``ids`` when given."""
    rooms = list(
        db.session.scalars(
            select(Room)
            .join(Site)
            .where(Site.institution_id == cohort.training_base_id)
            .order_by(Site.code, Room.code)
        )
    )
    if not rooms:
        raise PlanningError(
            _("The training base of cohort %(cohort)s has no lab rooms yet.", cohort=cohort.code)
        )
    wanted = [code.strip() for code in codes if code.strip()]
    if wanted:
        unknown = sorted(set(wanted) - {r.code for r in rooms})
        if unknown:
            raise PlanningError(
                _(
                    "No room %(codes)s at the training base of cohort %(cohort)s; its rooms: %(known)s.",
                    codes=", ".join(unknown),
                    cohort=cohort.code,
                    known=", ".join(r.code for r in rooms),
                )
            )
        rooms = [r for r in rooms if r.code in set(wanted)]
    wanted_ids = set(ids)
    if wanted_ids:
        if wanted_ids - {r.id for r in rooms}:
            raise PlanningError(
                _("Choose rooms of the training base of cohort %(cohort)s.", cohort=cohort.code)
            )
        rooms = [r for r in rooms if r.id in wanted_ids]
    zones = {r.site.timezone for r in rooms}
    if len(zones) > 1:
        raise PlanningError(
            _(
                "The rooms are in different time zones (%(zones)s): choose the rooms of one site.",
                zones=", ".join(sorted(zones)),
            )
        )
    return rooms


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _busy(occurrences: Iterable[LabOccurrence], zone: ZoneInfo) -> tuple[planner.Interval, ...]:
    return tuple(planner.Interval(_local(o.starts_at, zone), _local(o.ends_at, zone)) for o in occurrences)


def _scheduled_between(start: datetime, end: datetime):
    return (
        select(LabOccurrence)
        .join(LabSession)
        .where(
            LabOccurrence.status == OccurrenceStatus.SCHEDULED,
            LabOccurrence.starts_at < end,
            LabOccurrence.ends_at > start,
        )
    )


def build_problem(cohort: Cohort, options: PlanOptions) -> tuple[planner.Problem, list[Room], str, list[str]]:
    """The planner's problem for one cohort: (problem, rooms, time zone, lab units already scheduled)."""
    units = lab_units(cohort)
    if not units:
        raise PlanningError(
            _("Cohort %(cohort)s has no lab units: import its course's files first.", cohort=cohort.code)
        )
    scheduled = scheduled_unit_keys(cohort)
    to_place = [u for u in units if u.key not in scheduled]
    if not to_place:
        raise PlanningError(
            _("Every lab unit of cohort %(cohort)s is already scheduled.", cohort=cohort.code)
        )
    if options.max_hours_per_day is not None and options.max_hours_per_day <= 0:
        raise PlanningError(_("The hours per day must be more than zero."))
    if not options.start_times:
        raise PlanningError(_("Give at least one start time, like 09:00."))
    rooms = planning_rooms(cohort, options.room_codes, options.room_ids)
    timezone = rooms[0].site.timezone
    zone = ZoneInfo(timezone)
    not_before = options.not_before or datetime.now(zone).date() + timedelta(days=1)
    if not_before > cohort.ends_on:
        raise PlanningError(
            _(
                "Cohort %(cohort)s ends on %(end)s: there are no days left to plan.",
                cohort=cohort.code,
                end=cohort.ends_on.isoformat(),
            )
        )
    window_start = datetime.combine(cohort.starts_on, time(0), zone).astimezone(UTC)
    window_end = datetime.combine(cohort.ends_on + timedelta(days=1), time(0), zone).astimezone(UTC)
    in_window = _scheduled_between(window_start, window_end)

    modules = list(
        db.session.scalars(
            select(CourseModule)
            .where(CourseModule.version_id == cohort.course_version_id)
            .order_by(CourseModule.position)
        )
    )
    module_index = {m.id: n for n, m in enumerate(modules)}
    labs = []
    for unit in to_place:
        siblings = unit.module.units
        before = sum(1 for s in siblings if s.position < unit.position)
        labs.append(
            planner.LabUnit(
                key=unit.key,
                minutes=unit.minutes or DEFAULT_LAB_MINUTES,
                module_index=module_index[unit.module_id],
                title=unit_title(unit),
                progress_in_module=before / len(siblings) if siblings else 0.0,
            )
        )

    trainers = list(cohort.trainers)
    trainee_ids = {
        e.user_id
        for e in db.session.scalars(
            select(Enrollment).where(
                Enrollment.cohort_id == cohort.id, Enrollment.status == EnrollmentStatus.ACTIVE
            )
        )
    }
    away: dict[int, set[date]] = {t.id: set() for t in trainers}
    blackouts: Counter[date] = Counter()
    if options.unavailable:
        usernames = {name for name, _day in options.unavailable}
        users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(usernames)))}
        per_trainee: dict[int, set[date]] = {}
        for username, day in options.unavailable:
            user = users.get(username)
            if user is not None and user.id in away:
                away[user.id].add(day)
            elif user is not None and user.id in trainee_ids:
                per_trainee.setdefault(user.id, set()).add(day)
            else:
                raise PlanningError(
                    _(
                        "%(username)s is neither a trainee nor a trainer of cohort %(cohort)s.",
                        username=username,
                        cohort=cohort.code,
                    )
                )
        for days in per_trainee.values():
            blackouts.update(days)

    trainer_specs = []
    for trainer in trainers:
        theirs = db.session.scalars(
            in_window.where(
                LabSession.cohort_id != cohort.id,
                LabSession.id.in_(
                    select(session_trainer.c.session_id).where(session_trainer.c.user_id == trainer.id)
                ),
            )
        ).unique()
        trainer_specs.append(
            planner.TrainerSpec(
                id=trainer.id,
                name=trainer.real_name,
                busy=_busy(theirs, zone),
                unavailable=frozenset(away[trainer.id]),
            )
        )
    room_specs = []
    for room in rooms:
        taken = db.session.scalars(
            in_window.where(LabOccurrence.room_id == room.id, LabSession.cohort_id != cohort.id)
        ).unique()
        room_specs.append(
            planner.RoomSpec(
                id=room.id,
                code=room.code,
                seats=room.seats,
                open_from=room.open_from,
                open_until=room.open_until,
                open_weekdays=frozenset(room.open_weekdays),
                busy=_busy(taken, zone),
            )
        )
    own = db.session.scalars(in_window.where(LabSession.cohort_id == cohort.id)).unique()
    spec = planner.CohortSpec(
        code=cohort.code,
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
        trainees=active_trainee_count(cohort),
        modules=max(len(modules), 1),
        labs=tuple(labs),
        trainer_ids=tuple(t.id for t in trainers),
        blackouts=dict(blackouts),
        busy=_busy(own, zone),
        not_before=not_before,
    )
    rules = planner.Rules(
        start_times=options.start_times,
        max_hours_per_day=options.max_hours_per_day,
        weekends_only=options.weekends_only,
        hard_blackouts=options.hard_blackouts,
    )
    problem = planner.Problem(
        cohorts=(spec,), rooms=tuple(room_specs), trainers=tuple(trainer_specs), rules=rules
    )
    return problem, rooms, timezone, sorted(scheduled & {u.key for u in units})


def propose_plan(cohort: Cohort, options: PlanOptions) -> PlanResult:
    """Ask the planner for a schedule of the cohort's unscheduled lab units; saves nothing."""
    problem, rooms, timezone, skipped = build_problem(cohort, options)
    try:
        proposal = planner.plan(
            problem, planner.SolverSettings(time_limit_seconds=options.time_limit_seconds)
        )
    except planner.PlannerUnavailable as exc:
        raise PlanningError(str(exc)) from exc
    except planner.PlannerInputError as exc:
        raise PlanningError(str(exc)) from exc
    return PlanResult(cohort, timezone, rooms, proposal, skipped)


def accept_plan(cohort: Cohort, chosen: list[ChosenPlacement], actor: User | None) -> list[LabSession]:
    """Create one lab session per accepted placement, taught by the cohort's trainers. Every clash is
    checked again by create_lab_session (SessionConflict); the caller commits all or nothing."""
    if not chosen:
        raise PlanningError(_("The proposal is empty: there is nothing to accept."))
    units = {u.key: u for u in lab_units(cohort)}
    scheduled = scheduled_unit_keys(cohort)
    rooms = {r.id: r for r in planning_rooms(cohort)}
    seen: set[str] = set()
    sessions = []
    for placement in chosen:
        unit = units.get(placement.unit_key)
        if unit is None:
            raise PlanningError(
                _(
                    "%(unit)s is not a lab unit of cohort %(cohort)s.",
                    unit=placement.unit_key,
                    cohort=cohort.code,
                )
            )
        if unit.key in scheduled or unit.key in seen:
            raise PlanningError(_("Lab %(unit)s is already scheduled.", unit=unit.key))
        seen.add(unit.key)
        room = rooms.get(placement.room_id)
        if room is None:
            raise PlanningError(
                _(
                    "Room %(room)s is not at the training base of cohort %(cohort)s.",
                    room=placement.room_id,
                    cohort=cohort.code,
                )
            )
        start = placement.starts_at
        if start.tzinfo is not None:
            start = _local(start, ZoneInfo(room.site.timezone))
        sessions.append(
            create_lab_session(
                cohort=cohort,
                unit_key=unit.key,
                room=room,
                trainers=list(cohort.trainers),
                first_start_local=start,
                duration_minutes=unit.minutes or DEFAULT_LAB_MINUTES,
                title=unit_title(unit),
                actor=actor,
            )
        )
    audit.record("labs.plan_accepted", actor, cohort, units=[s.unit_key for s in sessions])
    return sessions
