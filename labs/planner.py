"""Proposes a schedule for cohorts' lab units with OR-Tools CP-SAT. Pure: no Flask, no database.

Dataclasses describe the problem (cohorts with their lab units in course order, rooms with their
opening hours and existing bookings, trainers with their existing sessions and days away, trainees'
blackout dates as a count per day, and the rules asked for); :func:`plan` returns a :class:`Proposal`.
All times are local, naive, in the site's zone.

The model: a candidate is one lab unit in one room at one allowed start time on one day of the
cohort's dates, inside the room's opening hours; one boolean per candidate. Each lab unit is placed
exactly once and a cohort attends one lab at a time. The rules come in families that can be dropped
one at a time to explain an impossible problem:

``rooms``          a room seats the whole cohort, is not booked by anyone else, holds one lab at a time
``trainers``       the cohort's trainers are free (existing sessions, days away), one lab at a time
``order``          a lab waits for its theory (its module's share of the cohort's dates) and the labs
                   keep the course's order
``hours_per_day``  at most H hours of labs a day per cohort
``weekends_only``  Saturdays and Sundays only (when asked)
``blackouts``      no lab on a day a trainee cannot come (when asked as a hard rule; otherwise the
                   number of trainee conflicts is minimised)

The objective: few trainee conflicts first, then labs spread out (one a day where possible) and each
as early as its theory allows.

ortools is an optional dependency (``pip install '.[planner]'``) and is imported only by :func:`plan`.
"""

from __future__ import annotations

import math
import os
import time as clock
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import combinations
from typing import Any

ROOMS = "rooms"
TRAINERS = "trainers"
ORDER = "order"
HOURS_PER_DAY = "hours_per_day"
WEEKENDS_ONLY = "weekends_only"
BLACKOUTS = "blackouts"
FAMILIES: tuple[str, ...] = (ROOMS, TRAINERS, ORDER, HOURS_PER_DAY, WEEKENDS_ONLY, BLACKOUTS)
ALL = frozenset(FAMILIES)

DEFAULT_START_TIMES: tuple[time, ...] = (time(9, 0), time(14, 0), time(19, 0))

# Objective weights: one trainee conflict outweighs everything else; a second lab on a day costs as
# much as five days of delay. (Preferring mornings as a tie-break was tried: it made proving the
# optimum of a shared site take minutes instead of seconds, so the time of day is left free.)
W_CONFLICT = 1000
W_CROWDED_DAY = 50
W_DAY_LATE = 10


class PlannerInputError(ValueError):
    """The problem cannot be modelled (no labs, a lab of no length, dates the wrong way round...)."""


class PlannerUnavailable(RuntimeError):
    """OR-Tools is not installed."""


@dataclass(frozen=True)
class Interval:
    """A busy stretch of local time, ``starts`` inclusive, ``ends`` exclusive."""

    starts: datetime
    ends: datetime


@dataclass(frozen=True)
class RoomSpec:
    id: int
    code: str
    seats: int
    open_from: time = time(8, 0)
    open_until: time = time(21, 0)
    open_weekdays: frozenset[int] = frozenset(range(1, 8))  # ISO weekdays, 1 = Monday
    busy: tuple[Interval, ...] = ()  # meetings of other cohorts already in the room


@dataclass(frozen=True)
class TrainerSpec:
    id: int
    name: str
    busy: tuple[Interval, ...] = ()  # the trainer's existing sessions, anywhere
    unavailable: frozenset[date] = frozenset()  # whole days away


@dataclass(frozen=True)
class LabUnit:
    key: str
    minutes: int
    module_index: int  # 0 for the course's first module
    title: str = ""
    # Share of the module's units that come before the lab (0 when the lab opens the module).
    progress_in_module: float = 0.0


@dataclass(frozen=True)
class CohortSpec:
    code: str
    starts_on: date
    ends_on: date
    trainees: int
    modules: int
    labs: tuple[LabUnit, ...]  # in course order
    trainer_ids: tuple[int, ...] = ()  # every lab is taught by all of them
    blackouts: Mapping[date, int] = field(default_factory=dict)  # day -> trainees who cannot come
    busy: tuple[Interval, ...] = ()  # the cohort's own labs already scheduled
    not_before: date | None = None  # first day to plan (e.g. tomorrow, for a cohort under way)


@dataclass(frozen=True)
class Rules:
    start_times: tuple[time, ...] = DEFAULT_START_TIMES
    max_hours_per_day: float | None = None
    weekends_only: bool = False
    hard_blackouts: bool = False


@dataclass(frozen=True)
class Problem:
    cohorts: tuple[CohortSpec, ...]
    rooms: tuple[RoomSpec, ...]
    trainers: tuple[TrainerSpec, ...] = ()
    rules: Rules = Rules()


@dataclass(frozen=True)
class SolverSettings:
    time_limit_seconds: float = 20.0
    workers: int = 0  # 0: one per core, at most 8
    seed: int = 0
    explain: bool = True  # when no plan exists, solve again without each family to say why


@dataclass(frozen=True)
class Placement:
    cohort: str
    unit_key: str
    title: str
    room_id: int
    room_code: str
    starts_at: datetime  # local
    minutes: int
    trainee_conflicts: int

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class Diagnosis:
    """Why no plan exists: ``family`` (one of FAMILIES, ``dates`` or ``combination``), which of its
    messages fits (``variant``) and the numbers behind it (``facts``). Render with :func:`describe`."""

    family: str
    variant: str
    facts: dict[str, Any]


@dataclass
class Proposal:
    status: str  # optimal | feasible | infeasible | unknown
    placements: list[Placement]
    trainee_conflicts: int = 0
    seconds: float = 0.0
    variables: int = 0
    diagnoses: list[Diagnosis] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.status in ("optimal", "feasible")


# --- helpers on the problem -------------------------------------------------------------------


def earliest_day(cohort: CohortSpec, lab: LabUnit) -> date:
    """The first day a lab may take place: its position in the course mapped onto the cohort's dates
    (module k of n starts k/n of the way through; a lab after half its module's units, half a module
    later), so that the theory it practises comes first."""
    span = (cohort.ends_on - cohort.starts_on).days
    share = (lab.module_index + min(max(lab.progress_in_module, 0.0), 1.0)) / max(cohort.modules, 1)
    return cohort.starts_on + timedelta(days=min(span, math.floor(share * span + 1e-9)))  # 2/3*27 is 18


def cohort_days(cohort: CohortSpec) -> list[date]:
    """The days labs may be placed on: the cohort's dates, from ``not_before`` when that is later."""
    first = max(cohort.starts_on, cohort.not_before or cohort.starts_on)
    return [first + timedelta(days=n) for n in range((cohort.ends_on - first).days + 1)]


def _by_day(intervals: Iterable[Interval]) -> dict[date, list[Interval]]:
    days: dict[date, list[Interval]] = defaultdict(list)
    for interval in intervals:
        day = interval.starts.date()
        while datetime.combine(day, time(0)) < interval.ends:
            days[day].append(interval)
            day += timedelta(days=1)
    return days


def _overlaps(busy: dict[date, list[Interval]], day: date, start: datetime, end: datetime) -> bool:
    return any(b.starts < end and b.ends > start for b in busy.get(day, ()))


def _minutes_on(busy: dict[date, list[Interval]], day: date) -> int:
    day_start = datetime.combine(day, time(0))
    day_end = day_start + timedelta(days=1)
    return sum(
        int((min(b.ends, day_end) - max(b.starts, day_start)).total_seconds() // 60)
        for b in busy.get(day, ())
    )


def _validate(problem: Problem) -> None:
    if not problem.cohorts:
        raise PlannerInputError("no cohort to plan")
    if not problem.rules.start_times:
        raise PlannerInputError("no start times allowed")
    hours = problem.rules.max_hours_per_day
    if hours is not None and hours <= 0:
        raise PlannerInputError("the hours per day must be positive")
    for cohort in problem.cohorts:
        if cohort.ends_on < cohort.starts_on:
            raise PlannerInputError(f"cohort {cohort.code} ends before it starts")
        if not cohort_days(cohort):
            raise PlannerInputError(f"cohort {cohort.code} has no days left to plan")
        if not cohort.labs:
            raise PlannerInputError(f"cohort {cohort.code} has no lab units to place")
        keys = [lab.key for lab in cohort.labs]
        if len(set(keys)) != len(keys):
            raise PlannerInputError(f"cohort {cohort.code} lists a lab unit twice")
        for lab in cohort.labs:
            if lab.minutes <= 0:
                raise PlannerInputError(f"lab {lab.key} has no duration")
            if not 0 <= lab.module_index < max(cohort.modules, 1):
                raise PlannerInputError(
                    f"lab {lab.key} is in module {lab.module_index + 1} of {cohort.modules}"
                )
    known = {t.id for t in problem.trainers}
    for cohort in problem.cohorts:
        missing = set(cohort.trainer_ids) - known
        if missing:
            raise PlannerInputError(f"cohort {cohort.code} names unknown trainers {sorted(missing)}")


@dataclass(slots=True)
class _Candidate:
    cohort: int
    lab: int
    room: int
    day: date
    start: datetime
    end: datetime
    blocked: frozenset[str]  # the families that forbid it
    conflicts: int  # trainees who cannot come that day


def _candidates(problem: Problem) -> list[_Candidate]:
    rules = problem.rules
    trainers = {t.id: t for t in problem.trainers}
    trainer_busy = {t.id: _by_day(t.busy) for t in problem.trainers}
    room_busy = [_by_day(r.busy) for r in problem.rooms]
    cap = None if rules.max_hours_per_day is None else round(rules.max_hours_per_day * 60)
    interned: dict[frozenset[str], frozenset[str]] = {}
    found: list[_Candidate] = []
    for ci, cohort in enumerate(problem.cohorts):
        own = _by_day(cohort.busy)
        earliest = [earliest_day(cohort, lab) for lab in cohort.labs]
        lengths = sorted({lab.minutes for lab in cohort.labs})
        for day in cohort_days(cohort):
            day_blocked: set[str] = set()
            if rules.weekends_only and day.isoweekday() < 6:
                day_blocked.add(WEEKENDS_ONLY)
            conflicts = cohort.blackouts.get(day, 0)
            if rules.hard_blackouts and conflicts > 0:
                day_blocked.add(BLACKOUTS)
            if any(day in trainers[t].unavailable for t in cohort.trainer_ids):
                day_blocked.add(TRAINERS)
            used = _minutes_on(own, day)
            for start_time in rules.start_times:
                start = datetime.combine(day, start_time)
                for minutes in lengths:
                    end = start + timedelta(minutes=minutes)
                    if end > datetime.combine(day + timedelta(days=1), time(0)) or _overlaps(
                        own, day, start, end
                    ):
                        continue
                    slot_blocked = set(day_blocked)
                    if cap is not None and minutes + used > cap:
                        slot_blocked.add(HOURS_PER_DAY)
                    if any(_overlaps(trainer_busy[t], day, start, end) for t in cohort.trainer_ids):
                        slot_blocked.add(TRAINERS)
                    per_room = []
                    for ri, room in enumerate(problem.rooms):
                        if day.isoweekday() not in room.open_weekdays or start_time < room.open_from:
                            continue
                        if end > datetime.combine(day, room.open_until):
                            continue
                        blocked = set(slot_blocked)
                        if cohort.trainees > room.seats or _overlaps(room_busy[ri], day, start, end):
                            blocked.add(ROOMS)
                        per_room.append((ri, blocked))
                    for li, lab in enumerate(cohort.labs):
                        if lab.minutes != minutes:
                            continue
                        for ri, blocked in per_room:
                            key = frozenset(blocked | {ORDER}) if day < earliest[li] else frozenset(blocked)
                            key = interned.setdefault(key, key)
                            found.append(_Candidate(ci, li, ri, day, start, end, key, conflicts))
    found.sort(key=lambda c: (c.cohort, c.lab, c.day, c.start, c.room))
    return found


def _cliques(members: list[tuple[datetime, datetime, int]]) -> list[list[int]]:
    """Sets of candidates (start, end, index) that overlap at some instant: for intervals it is enough
    to look at every start."""
    groups = []
    for point in sorted({start for start, _end, _i in members}):
        clique = [i for start, end, i in members if start <= point < end]
        if len(clique) > 1:
            groups.append(clique)
    return groups


# --- solving -----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    status: str
    chosen: list[int]
    variables: int
    seconds: float


def _solve(
    problem: Problem,
    candidates: list[_Candidate],
    active: frozenset[str],
    settings: SolverSettings,
    optimise: bool,
    time_limit: float,
) -> _Outcome:
    try:
        from ortools.sat.python import cp_model
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise PlannerUnavailable("the planner needs OR-Tools: pip install 'blended-lms[planner]'") from exc

    started = clock.perf_counter()
    usable = [i for i, c in enumerate(candidates) if not (c.blocked & active)]
    per_lab: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in usable:
        per_lab[candidates[i].cohort, candidates[i].lab].append(i)
    every_lab = [(ci, li) for ci, cohort in enumerate(problem.cohorts) for li in range(len(cohort.labs))]
    if any(not per_lab[key] for key in every_lab):
        return _Outcome("infeasible", [], 0, clock.perf_counter() - started)

    model = cp_model.CpModel()
    x = {i: model.new_bool_var(f"x{i}") for i in usable}
    for key in every_lab:
        model.add_exactly_one(x[i] for i in per_lab[key])

    def no_overlap(groups: dict[Any, list[int]]) -> None:
        for members in groups.values():
            for clique in _cliques([(candidates[i].start, candidates[i].end, i) for i in members]):
                model.add_at_most_one(x[i] for i in clique)

    by_cohort_day: dict[tuple[int, date], list[int]] = defaultdict(list)
    for i in usable:
        by_cohort_day[candidates[i].cohort, candidates[i].day].append(i)
    no_overlap(by_cohort_day)  # a cohort attends one lab at a time

    if ROOMS in active:
        by_room_day: dict[tuple[int, date], list[int]] = defaultdict(list)
        for i in usable:
            by_room_day[candidates[i].room, candidates[i].day].append(i)
        no_overlap(by_room_day)

    if TRAINERS in active:
        teaching: dict[int, list[int]] = defaultdict(list)
        for ci, cohort in enumerate(problem.cohorts):
            for t in cohort.trainer_ids:
                teaching[t].append(ci)
        by_trainer_day: dict[tuple[int, date], list[int]] = defaultdict(list)
        for trainer_id, cohort_indexes in teaching.items():
            if len(cohort_indexes) < 2:
                continue  # within one cohort the cohort's own rule already holds
            wanted = set(cohort_indexes)
            for i in usable:
                if candidates[i].cohort in wanted:
                    by_trainer_day[trainer_id, candidates[i].day].append(i)
        no_overlap(by_trainer_day)

    epoch = datetime.combine(min(c.starts_on for c in problem.cohorts), time(0))

    def minute(moment: datetime) -> int:
        return int((moment - epoch).total_seconds() // 60)

    if ORDER in active:
        for ci, cohort in enumerate(problem.cohorts):
            for li in range(1, len(cohort.labs)):
                before, after = per_lab[ci, li - 1], per_lab[ci, li]
                model.add(
                    sum(minute(candidates[i].start) * x[i] for i in after)
                    >= sum(minute(candidates[i].end) * x[i] for i in before)
                )

    cap = problem.rules.max_hours_per_day
    if HOURS_PER_DAY in active and cap is not None:
        own_busy = [_by_day(cohort.busy) for cohort in problem.cohorts]
        for (ci, day), members in by_cohort_day.items():
            cohort = problem.cohorts[ci]
            limit = round(cap * 60) - _minutes_on(own_busy[ci], day)
            if sum(cohort.labs[candidates[i].lab].minutes for i in members) > limit:
                model.add(sum(cohort.labs[candidates[i].lab].minutes * x[i] for i in members) <= limit)

    if optimise:
        terms = []
        for i in usable:
            c = candidates[i]
            cohort = problem.cohorts[c.cohort]
            late = max(0, (c.day - earliest_day(cohort, cohort.labs[c.lab])).days)
            weight = W_DAY_LATE * late
            if not problem.rules.hard_blackouts:
                weight += W_CONFLICT * c.conflicts
            if weight:
                terms.append(weight * x[i])
        for members in by_cohort_day.values():
            labs_that_day = {candidates[i].lab for i in members}
            if len(labs_that_day) > 1:
                crowd = model.new_int_var(0, len(labs_that_day) - 1, "")
                model.add(crowd >= sum(x[i] for i in members) - 1)
                terms.append(W_CROWDED_DAY * crowd)
        model.minimize(sum(terms))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.1, time_limit)
    solver.parameters.num_workers = settings.workers or min(8, os.cpu_count() or 1)
    solver.parameters.random_seed = settings.seed
    # Measured on 20 cohorts sharing 4 rooms (bench/planner.py): probing and repeated presolve rounds
    # cost about 30 s and did not shorten the search.
    solver.parameters.cp_model_probing_level = 0
    solver.parameters.max_presolve_iterations = 1
    status = solver.solve(model)
    names = {
        cp_model.OPTIMAL: "optimal",
        cp_model.FEASIBLE: "feasible",
        cp_model.INFEASIBLE: "infeasible",
        cp_model.UNKNOWN: "unknown",
    }
    if status == cp_model.MODEL_INVALID:  # pragma: no cover - a bug in this module
        raise RuntimeError(f"the planner built an invalid model: {model.validate()}")
    name = names[status]
    if name in ("optimal", "feasible") and not optimise:
        name = "feasible"
    chosen = [i for i in usable if solver.value(x[i])] if name in ("optimal", "feasible") else []
    return _Outcome(name, chosen, len(x), clock.perf_counter() - started)


def plan(problem: Problem, settings: SolverSettings | None = None) -> Proposal:
    """Place every lab unit of every cohort, or say which family of rules makes it impossible."""
    settings = settings or SolverSettings()
    _validate(problem)
    started = clock.perf_counter()
    candidates = _candidates(problem)
    outcome = _solve(
        problem, candidates, ALL, settings, optimise=True, time_limit=settings.time_limit_seconds
    )
    placements = []
    for i in sorted(outcome.chosen, key=lambda i: (candidates[i].start, candidates[i].cohort)):
        c = candidates[i]
        cohort, room = problem.cohorts[c.cohort], problem.rooms[c.room]
        lab = cohort.labs[c.lab]
        placements.append(
            Placement(cohort.code, lab.key, lab.title, room.id, room.code, c.start, lab.minutes, c.conflicts)
        )
    proposal = Proposal(
        status=outcome.status,
        placements=placements,
        trainee_conflicts=sum(p.trainee_conflicts for p in placements),
        variables=outcome.variables,
    )
    if outcome.status == "infeasible" and settings.explain:
        proposal.diagnoses = _explain(problem, candidates, settings)
    proposal.seconds = clock.perf_counter() - started
    return proposal


# --- explaining an impossible problem ---------------------------------------------------------


def _relevant_families(problem: Problem, candidates: list[_Candidate]) -> list[str]:
    blocking = set().union(*(c.blocked for c in candidates)) if candidates else set()
    relevant = []
    for family in FAMILIES:
        if family == ROOMS:
            if family in blocking or len(problem.cohorts) > 1:  # also one lab at a time in a room
                relevant.append(family)
        elif family == TRAINERS:
            if family in blocking or len({t for c in problem.cohorts for t in c.trainer_ids}) < sum(
                len(c.trainer_ids) for c in problem.cohorts
            ):
                relevant.append(family)
        elif family == ORDER:
            if family in blocking or any(len(c.labs) > 1 for c in problem.cohorts):
                relevant.append(family)
        elif family == HOURS_PER_DAY:
            if problem.rules.max_hours_per_day is not None:
                relevant.append(family)
        elif family in blocking:
            relevant.append(family)
    return relevant


def _explain(problem: Problem, candidates: list[_Candidate], settings: SolverSettings) -> list[Diagnosis]:
    relevant = _relevant_families(problem, candidates)
    limit = max(1.0, min(settings.time_limit_seconds, 10.0))

    def feasible_without(dropped: Iterable[str]) -> bool:
        outcome = _solve(
            problem, candidates, ALL - frozenset(dropped), settings, optimise=False, time_limit=limit
        )
        return outcome.status == "feasible"

    if not feasible_without(relevant):
        return [_dates_diagnosis(problem, candidates)]
    found = [_family_diagnosis(problem, candidates, f) for f in relevant if feasible_without([f])]
    if found:
        return found
    for size in range(2, len(relevant)):
        groups = [list(g) for g in combinations(relevant, size) if feasible_without(g)]
        if groups:
            return [Diagnosis("combination", "together", {"families": g}) for g in groups[:3]]
    return [Diagnosis("combination", "together", {"families": relevant})]


def _capacity(
    problem: Problem,
    candidates: list[_Candidate],
    ci: int,
    active: frozenset[str],
    from_day: date | None = None,
) -> tuple[int, int, int]:
    """(labs that fit, usable days, usable start times) for cohort ``ci`` under the active families:
    per day, as many labs as there are usable start times, capped by the hours per day."""
    cohort = problem.cohorts[ci]
    starts: dict[date, set[datetime]] = defaultdict(set)
    for c in candidates:
        if c.cohort == ci and not (c.blocked & active) and (from_day is None or c.day >= from_day):
            starts[c.day].add(c.start)
    per_day = _labs_per_day(problem, cohort) if HOURS_PER_DAY in active else None
    fit = sum(len(s) if per_day is None else min(len(s), per_day) for s in starts.values())
    return fit, len(starts), sum(len(s) for s in starts.values())


def _labs_per_day(problem: Problem, cohort: CohortSpec) -> int | None:
    hours = problem.rules.max_hours_per_day
    if hours is None:
        return None
    return int(hours * 60 // min(lab.minutes for lab in cohort.labs))


def _shortfall(
    problem: Problem, candidates: list[_Candidate], ci: int, active: frozenset[str]
) -> dict[str, Any]:
    """The tightest point for cohort ``ci``: from the earliest day of lab i on (course order), the
    labs i..n against the room there is for them."""
    cohort = problem.cohorts[ci]
    worst: dict[str, Any] | None = None
    indexes = range(len(cohort.labs)) if ORDER in active else range(1)
    for li in indexes:
        lab = cohort.labs[li]
        from_day = earliest_day(cohort, lab) if ORDER in active else cohort.starts_on
        fit, days, _starts = _capacity(problem, candidates, ci, active, from_day)
        remaining = len(cohort.labs) - li
        entry = {
            "from_date": from_day,
            "unit": lab.key,
            "module": lab.module_index + 1,
            "capacity": fit,
            "days": days,
            "remaining": remaining,
        }
        if worst is None or fit - remaining < worst["capacity"] - worst["remaining"]:
            worst = entry
    assert worst is not None
    return worst


def _worst_cohort(problem: Problem, candidates: list[_Candidate], active: frozenset[str]) -> int:
    if len(problem.cohorts) == 1:
        return 0
    gaps = []
    for ci in range(len(problem.cohorts)):
        short = _shortfall(problem, candidates, ci, active)
        gaps.append((short["capacity"] - short["remaining"], ci))
    return min(gaps)[1]


def _base_facts(problem: Problem, ci: int) -> dict[str, Any]:
    cohort = problem.cohorts[ci]
    return {
        "cohort": cohort.code,
        "cohorts": len(problem.cohorts),
        "labs": len(cohort.labs),
        "all_labs": sum(len(c.labs) for c in problem.cohorts),
        "start": cohort_days(cohort)[0],
        "end": cohort.ends_on,
        "trainees": cohort.trainees,
    }


def _family_diagnosis(problem: Problem, candidates: list[_Candidate], family: str) -> Diagnosis:
    ci = _worst_cohort(problem, candidates, ALL)
    cohort = problem.cohorts[ci]
    facts = _base_facts(problem, ci)
    short = _shortfall(problem, candidates, ci, ALL)
    facts.update(short)
    tight = short["capacity"] < short["remaining"]
    hours = problem.rules.max_hours_per_day

    if family == WEEKENDS_ONLY:
        days = cohort_days(cohort)
        facts["saturdays"] = sum(1 for d in days if d.isoweekday() == 6)
        facts["sundays"] = sum(1 for d in days if d.isoweekday() == 7)
        facts["weekend_days"] = facts["saturdays"] + facts["sundays"]
        whole, _d, _s = _capacity(problem, candidates, ci, ALL)
        facts["capacity_all"] = whole
        if whole < len(cohort.labs):
            return Diagnosis(family, "too_few_days", facts)
        return Diagnosis(family, "too_few_after" if tight else "general", facts)

    if family == HOURS_PER_DAY:
        assert hours is not None
        facts["max_hours"] = hours
        longest = max(cohort.labs, key=lambda lab: lab.minutes)
        if longest.minutes > hours * 60:
            facts.update(unit=longest.key, hours=longest.minutes / 60)
            return Diagnosis(family, "lab_too_long", facts)
        facts["per_day"] = _labs_per_day(problem, cohort)
        return Diagnosis(family, "too_few_days" if tight else "general", facts)

    if family == ROOMS:
        seats = [r.seats for r in problem.rooms]
        facts["largest"] = max(seats) if seats else 0
        facts["rooms"] = len(seats)
        facts["fitting"] = sum(1 for s in seats if s >= cohort.trainees)
        if facts["fitting"] == 0:
            return Diagnosis(family, "no_room_big_enough", facts)
        if len(problem.cohorts) > 1 and not tight:
            return Diagnosis(family, "shared", facts)
        return Diagnosis(family, "booked" if tight else "general", facts)

    if family == TRAINERS:
        names = {t.id: t.name for t in problem.trainers}
        facts["names"] = ", ".join(names[t] for t in cohort.trainer_ids)
        _fit, _days, free = _capacity(problem, candidates, ci, ALL)
        _fit, _days, without = _capacity(problem, candidates, ci, ALL - {TRAINERS})
        facts["blocked"] = without - free
        facts["slots"] = without
        return Diagnosis(family, "busy" if tight else "general", facts)

    if family == ORDER:
        return Diagnosis(family, "late_start" if tight else "general", facts)

    if family == BLACKOUTS:
        days = cohort_days(cohort)
        facts["blocked_days"] = sum(1 for d in days if cohort.blackouts.get(d, 0) > 0)
        facts["days_total"] = len(days)
        return Diagnosis(family, "too_few_days" if tight else "general", facts)

    raise ValueError(family)  # pragma: no cover


def _dates_diagnosis(problem: Problem, candidates: list[_Candidate]) -> Diagnosis:
    ci = _worst_cohort(problem, candidates, frozenset())
    cohort = problem.cohorts[ci]
    facts = _base_facts(problem, ci)
    placeable = {c.lab for c in candidates if c.cohort == ci}
    for li, lab in enumerate(cohort.labs):
        if li not in placeable:
            facts.update(unit=lab.key, hours=lab.minutes / 60)
            return Diagnosis("dates", "lab_too_long", facts)
    _fit, days, starts = _capacity(problem, candidates, ci, frozenset())
    facts.update(days=days, slots=starts)
    return Diagnosis("dates", "too_few_slots", facts)


# --- words ----------------------------------------------------------------------------------


def _identity(text: str) -> str:
    return text


def family_label(family: str, gettext: Callable[[str], str] = _identity) -> str:
    _ = gettext
    labels = {
        ROOMS: _("rooms and seats"),
        TRAINERS: _("trainers' availability"),
        ORDER: _("course order"),
        HOURS_PER_DAY: _("hours per day"),
        WEEKENDS_ONLY: _("weekends only"),
        BLACKOUTS: _("trainees' blackout dates"),
    }
    return labels.get(family, family)


def _number(value: float) -> str:
    return f"{value:g}"


def describe(diagnosis: Diagnosis, gettext: Callable[[str], str] = _identity) -> str:
    """One sentence with the numbers; ``gettext`` translates the templates (identity: English)."""
    _ = gettext
    f = dict(diagnosis.facts)
    for key in ("start", "end", "from_date"):
        if isinstance(f.get(key), date):
            f[key] = f[key].isoformat()
    for key in ("hours", "max_hours"):
        if key in f:
            f[key] = _number(f[key])
    templates = {
        (WEEKENDS_ONLY, "too_few_days"): _(
            "weekends only leaves %(weekend_days)d weekend days (%(saturdays)d Saturdays, %(sundays)d "
            "Sundays) from %(start)s to %(end)s, room for %(capacity_all)d labs, but cohort %(cohort)s "
            "has %(labs)d labs."
        ),
        (WEEKENDS_ONLY, "too_few_after"): _(
            "weekends only leaves %(weekend_days)d weekend days from %(start)s to %(end)s; after "
            "%(from_date)s, the earliest day for lab %(unit)s, they hold %(capacity)d labs, "
            "%(remaining)d needed."
        ),
        (WEEKENDS_ONLY, "general"): _(
            "weekends only: the %(weekend_days)d weekend days from %(start)s to %(end)s cannot hold the "
            "%(labs)d labs of cohort %(cohort)s together with the other rules."
        ),
        (HOURS_PER_DAY, "lab_too_long"): _(
            "lab %(unit)s lasts %(hours)s hours, more than the %(max_hours)s hours allowed per day."
        ),
        (HOURS_PER_DAY, "too_few_days"): _(
            "at most %(max_hours)s hours a day fits %(per_day)d of these labs a day: from %(from_date)s "
            "to %(end)s there is room for %(capacity)d labs, %(remaining)d needed."
        ),
        (HOURS_PER_DAY, "general"): _(
            "at most %(max_hours)s hours a day (%(per_day)d of these labs) is too little for the %(labs)d "
            "labs of cohort %(cohort)s between %(start)s and %(end)s."
        ),
        (ROOMS, "no_room_big_enough"): _(
            "no room seats the %(trainees)d trainees of cohort %(cohort)s: the largest room has "
            "%(largest)d seats."
        ),
        (ROOMS, "booked"): _(
            "%(fitting)d of %(rooms)d rooms seat the %(trainees)d trainees, and their bookings leave "
            "room for %(capacity)d labs from %(from_date)s to %(end)s, %(remaining)d needed."
        ),
        (ROOMS, "shared"): _(
            "the rooms (%(rooms)d in all) cannot hold the %(all_labs)d labs of the %(cohorts)d cohorts "
            "one at a time at the allowed start times."
        ),
        (ROOMS, "general"): _(
            "the free times of the %(fitting)d rooms that seat %(trainees)d trainees cannot hold the "
            "%(labs)d labs of cohort %(cohort)s."
        ),
        (TRAINERS, "busy"): _(
            "the cohort's trainers (%(names)s) are busy or away at %(blocked)d of %(slots)d start "
            "times; the rest hold %(capacity)d labs from %(from_date)s to %(end)s, %(remaining)d needed."
        ),
        (TRAINERS, "general"): _(
            "the cohort's trainers (%(names)s) cannot teach all %(labs)d labs of cohort %(cohort)s in "
            "the times left (a trainer teaches one lab at a time; busy or away at %(blocked)d of "
            "%(slots)d start times)."
        ),
        (ORDER, "late_start"): _(
            "course order: lab %(unit)s (module %(module)d) may not start before %(from_date)s; from "
            "then to %(end)s there is room for %(capacity)d labs, %(remaining)d needed."
        ),
        (ORDER, "general"): _(
            "course order: the %(labs)d labs of cohort %(cohort)s cannot follow the course's order, "
            "each after its theory, between %(start)s and %(end)s."
        ),
        (BLACKOUTS, "too_few_days"): _(
            "trainees' blackout dates rule out %(blocked_days)d of %(days_total)d days; the rest hold "
            "%(capacity)d labs from %(from_date)s to %(end)s, %(remaining)d needed."
        ),
        (BLACKOUTS, "general"): _(
            "trainees' blackout dates rule out %(blocked_days)d of %(days_total)d days, too many for "
            "the %(labs)d labs of cohort %(cohort)s."
        ),
        ("dates", "lab_too_long"): _(
            "lab %(unit)s lasts %(hours)s hours: no room is open that long from any allowed start time."
        ),
        ("dates", "too_few_slots"): _(
            "from %(start)s to %(end)s the rooms' opening hours leave %(slots)d start times on %(days)d "
            "days for the %(labs)d labs of cohort %(cohort)s."
        ),
        ("combination", "together"): _(
            "no single rule is to blame: a plan exists only when %(families)s are relaxed together."
        ),
    }
    if diagnosis.family == "combination":
        f["families"] = ", ".join(family_label(x, gettext) for x in f["families"])
    return templates[diagnosis.family, diagnosis.variant] % f
