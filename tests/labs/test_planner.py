"""The lab planner: the pure CP-SAT model (rules honoured, impossible plans explained by the right
family of rules), the service that reads a cohort from the database, the CLI, and the review/accept
page."""

from __future__ import annotations

import html
import importlib.util
import json
import math
import re
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from fractions import Fraction

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from labs import planner, planning
from labs.cli import labs_group
from labs.models import LabOccurrence, LabSession, Room
from labs.planner import (
    BLACKOUTS,
    HOURS_PER_DAY,
    ORDER,
    ROOMS,
    TRAINERS,
    WEEKENDS_ONLY,
    CohortSpec,
    Interval,
    LabUnit,
    Problem,
    RoomSpec,
    Rules,
    SolverSettings,
    TrainerSpec,
    describe,
    earliest_day,
)
from labs.services import SessionConflict, create_lab_session
from lms.extensions import db
from lms.models import AuditLog, CourseModule, CourseUnit, CourseVersion, Role, UnitKind
from lms.services import cohorts

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ortools") is None, reason="the planner needs the 'planner' extra (OR-Tools)"
)

MON = date(2025, 3, 3)  # a Monday
SETTINGS = SolverSettings(time_limit_seconds=20, workers=2, seed=1)


# --- pure planner ------------------------------------------------------------------------------


def labs(n: int, minutes: int = 240, modules: int = 1, progress: float = 0.0) -> tuple[LabUnit, ...]:
    """n labs spread over the modules in order (module i*modules//n)."""
    return tuple(
        LabUnit(f"lab{i + 1}", minutes, i * modules // n, progress_in_module=progress) for i in range(n)
    )


def cohort(code: str = "C1", days: int = 28, trainees: int = 20, **params) -> CohortSpec:
    params.setdefault("labs", labs(4, modules=4))
    params.setdefault("modules", max((lab.module_index for lab in params["labs"]), default=0) + 1)
    params.setdefault("trainer_ids", (1,))
    params.setdefault("starts_on", MON)
    return CohortSpec(
        code=code, ends_on=params["starts_on"] + timedelta(days=days - 1), trainees=trainees, **params
    )


def room(id_: int = 1, code: str = "A301", seats: int = 30, **params) -> RoomSpec:
    params.setdefault("open_from", time(8))
    params.setdefault("open_until", time(21))
    return RoomSpec(id_, code, seats, **params)


def problem(cohorts_=None, rooms=None, trainers=None, **rules) -> Problem:
    return Problem(
        cohorts=tuple(cohorts_ or (cohort(),)),
        rooms=tuple(rooms or (room(),)),
        trainers=tuple(trainers or (TrainerSpec(1, "王老师"),)),
        rules=Rules(**rules),
    )


def busy_all_day(days: list[date]) -> tuple[Interval, ...]:
    return tuple(Interval(datetime.combine(d, time(7)), datetime.combine(d, time(22))) for d in days)


def violations(p: Problem, proposal: planner.Proposal) -> list[str]:
    """Every broken rule in a proposal, checked independently of the model."""
    found = []
    by_cohort = {c.code: c for c in p.cohorts}
    rooms = {r.id: r for r in p.rooms}
    trainers = {t.id: t for t in p.trainers}
    placed = defaultdict(list)
    for pl in proposal.placements:
        placed[pl.cohort].append(pl)
    for c in p.cohorts:
        keys = [pl.unit_key for pl in placed[c.code]]
        if sorted(keys) != sorted(lab.key for lab in c.labs):
            found.append(f"{c.code}: labs placed {keys}")
    for pl in proposal.placements:
        c, r = by_cohort[pl.cohort], rooms[pl.room_id]
        lab = next(lab for lab in c.labs if lab.key == pl.unit_key)
        day = pl.starts_at.date()
        if not c.starts_on <= day <= c.ends_on:
            found.append(f"{pl.unit_key} outside the cohort's dates")
        if pl.starts_at.time() not in p.rules.start_times:
            found.append(f"{pl.unit_key} starts at {pl.starts_at.time()}")
        if day.isoweekday() not in r.open_weekdays or pl.starts_at.time() < r.open_from:
            found.append(f"{pl.unit_key} before {r.code} opens")
        if pl.ends_at > datetime.combine(day, r.open_until):
            found.append(f"{pl.unit_key} after {r.code} closes")
        if c.trainees > r.seats:
            found.append(f"{pl.unit_key}: {c.trainees} trainees in {r.seats} seats")
        if any(b.starts < pl.ends_at and b.ends > pl.starts_at for b in r.busy):
            found.append(f"{pl.unit_key}: {r.code} already booked")
        for t in c.trainer_ids:
            if day in trainers[t].unavailable or any(
                b.starts < pl.ends_at and b.ends > pl.starts_at for b in trainers[t].busy
            ):
                found.append(f"{pl.unit_key}: trainer {t} busy")
        if p.rules.weekends_only and day.isoweekday() < 6:
            found.append(f"{pl.unit_key} on a weekday")
        if p.rules.hard_blackouts and c.blackouts.get(day):
            found.append(f"{pl.unit_key} on a blackout date")
        if day < earliest_day(c, lab):
            found.append(f"{pl.unit_key} before its theory ({earliest_day(c, lab)})")
    for c in p.cohorts:
        ordered = sorted(placed[c.code], key=lambda pl: [lab.key for lab in c.labs].index(pl.unit_key))
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.starts_at < before.ends_at:
                found.append(f"{after.unit_key} not after {before.unit_key}")
        if p.rules.max_hours_per_day is not None:
            per_day = defaultdict(int)
            for pl in placed[c.code]:
                per_day[pl.starts_at.date()] += pl.minutes
            found += [f"{d}: {m} minutes" for d, m in per_day.items() if m > p.rules.max_hours_per_day * 60]
    everyone = list(proposal.placements)
    for i, a in enumerate(everyone):
        for b in everyone[i + 1 :]:
            overlap = a.starts_at < b.ends_at and b.starts_at < a.ends_at
            shared_trainer = set(by_cohort[a.cohort].trainer_ids) & set(by_cohort[b.cohort].trainer_ids)
            if overlap and (a.room_id == b.room_id or a.cohort == b.cohort or shared_trainer):
                found.append(f"{a.cohort}/{a.unit_key} overlaps {b.cohort}/{b.unit_key}")
    return found


FEASIBLE = {
    "course order over four modules": problem(max_hours_per_day=8),
    "weekends only": problem(weekends_only=True, max_hours_per_day=8),
    "one four-hour lab a day": problem(
        [cohort(days=7, labs=labs(5, modules=1))], rooms=[room(), room(2, "A302")], max_hours_per_day=4
    ),
    "a cohort too big for the small room": problem(
        [cohort(trainees=35, days=7, labs=labs(6))], rooms=[room(1, "S", 30), room(2, "L", 40)]
    ),
    "room booked on weekdays by another cohort": problem(
        rooms=[room(busy=busy_all_day([MON + timedelta(days=d) for d in range(28) if d % 7 < 5]))]
    ),
    "trainer teaching elsewhere and away": problem(
        trainers=[
            TrainerSpec(
                1,
                "王老师",
                busy=busy_all_day([MON + timedelta(days=d) for d in range(0, 28, 2)]),
                unavailable=frozenset({MON + timedelta(days=d) for d in range(1, 28, 4)}),
            )
        ]
    ),
    "two cohorts sharing a room and a trainer": problem(
        [cohort("C1", days=7, labs=labs(4)), cohort("C2", days=7, labs=labs(4))], max_hours_per_day=8
    ),
    "hard blackout dates": problem(
        [cohort(blackouts={MON + timedelta(days=d): 1 for d in range(0, 28, 2)})], hard_blackouts=True
    ),
    "an evening lab": problem(
        [cohort(days=1, labs=labs(3, minutes=120))], rooms=[room(open_until=time(21, 30))]
    ),
}


@pytest.mark.parametrize("name", FEASIBLE)
def test_feasible_plans_honour_every_rule(name):
    p = FEASIBLE[name]
    proposal = planner.plan(p, SETTINGS)
    assert proposal.status == "optimal", proposal.diagnoses
    assert violations(p, proposal) == []


def test_labs_follow_the_course_and_wait_for_their_theory():
    p = problem([cohort(days=40, labs=labs(4, modules=4, progress=0.5))], max_hours_per_day=8)
    proposal = planner.plan(p, SETTINGS)
    days = [pl.starts_at.date() for pl in proposal.placements]
    # module k of 4 starts k*39/4 days in; half a module later its lab may come
    assert [(d - MON).days for d in days] == [4, 14, 24, 34]
    assert [pl.unit_key for pl in proposal.placements] == ["lab1", "lab2", "lab3", "lab4"]


def test_weekends_only_uses_saturdays_and_sundays():
    proposal = planner.plan(problem(weekends_only=True), SETTINGS)
    assert {pl.starts_at.isoweekday() for pl in proposal.placements} <= {6, 7}


def test_labs_are_spread_one_a_day_when_possible():
    proposal = planner.plan(problem([cohort(days=5, labs=labs(5))], max_hours_per_day=8), SETTINGS)
    assert len({pl.starts_at.date() for pl in proposal.placements}) == 5


def test_soft_blackouts_are_avoided_where_possible_and_counted_where_not():
    blackouts = {MON: 3, MON + timedelta(days=1): 1}
    p = problem([cohort(days=2, labs=labs(2), blackouts=blackouts)])
    proposal = planner.plan(p, SETTINGS)
    assert proposal.status == "optimal"
    # Both days hold a lab whatever happens (one lab a day is preferred but the 3-trainee day is not
    # worth it): the two labs go on the day with one conflict.
    assert {pl.starts_at.date() for pl in proposal.placements} == {MON + timedelta(days=1)}
    assert proposal.trainee_conflicts == 2
    hard = planner.plan(problem([cohort(days=2, labs=labs(2), blackouts=blackouts)], hard_blackouts=True))
    assert hard.status == "infeasible" and hard.diagnoses[0].family == BLACKOUTS


def test_existing_meetings_of_the_cohort_are_kept_clear_and_count_towards_hours():
    own = (Interval(datetime.combine(MON, time(9)), datetime.combine(MON, time(13))),)
    p = problem([cohort(days=2, labs=labs(2), busy=own)], max_hours_per_day=8)
    proposal = planner.plan(p, SETTINGS)
    on_monday = [pl for pl in proposal.placements if pl.starts_at.date() == MON]
    assert all(pl.starts_at.time() != time(9) for pl in on_monday)
    assert len(on_monday) <= 1  # 4 hours are taken already


def late_labs(n: int) -> tuple[LabUnit, ...]:
    """n labs at the end of the second of two modules."""
    return tuple(LabUnit(f"lab{i + 1}", 240, 1, progress_in_module=0.9) for i in range(n))


IMPOSSIBLE = [
    # (name, problem, the families that explain it, words in the first message)
    (
        "weekends only: 4 weekend days hold 8 labs, 9 given",
        problem([cohort(days=14, labs=labs(9))], weekends_only=True),
        {WEEKENDS_ONLY},
        "4 weekend days (2 Saturdays, 2 Sundays) from 2025-03-03 to 2025-03-16, room for 8 labs, but "
        "cohort C1 has 9 labs",
    ),
    (
        "a lab longer than the hours per day",
        problem([cohort(labs=labs(2, minutes=240))], max_hours_per_day=3),
        {HOURS_PER_DAY},
        "lab lab1 lasts 4 hours, more than the 3 hours allowed per day",
    ),
    (
        "one lab a day for 9 labs in a week",
        problem([cohort(days=7, labs=labs(9))], max_hours_per_day=4),
        {HOURS_PER_DAY},
        "fits 1 of these labs a day: from 2025-03-03 to 2025-03-09 there is room for 7 labs, 9 needed",
    ),
    (
        "no room seats the cohort",
        problem([cohort(trainees=35)], rooms=[room(seats=30), room(2, "B", seats=24)]),
        {ROOMS},
        "no room seats the 35 trainees of cohort C1: the largest room has 30 seats",
    ),
    (
        "rooms booked by other cohorts",
        problem(
            [cohort(days=7, labs=labs(3))],
            rooms=[room(busy=busy_all_day([MON + timedelta(days=d) for d in range(6)]))],
        ),
        {ROOMS},
        "1 of 1 rooms seat the 20 trainees, and their bookings leave room for 2 labs from 2025-03-03 to "
        "2025-03-09, 3 needed",
    ),
    (
        "two cohorts, one room, one day",
        problem(
            [
                cohort("C1", days=1, labs=labs(2), trainer_ids=(1,)),
                cohort("C2", days=1, labs=labs(2), trainer_ids=(2,)),
            ],
            trainers=[TrainerSpec(1, "王老师"), TrainerSpec(2, "李老师")],
        ),
        {ROOMS},
        "the rooms (1 in all) cannot hold the 4 labs of the 2 cohorts",
    ),
    (
        "the trainer is away all but one day",
        problem(
            [cohort(days=7, labs=labs(3))],
            trainers=[
                TrainerSpec(1, "王老师", unavailable=frozenset(MON + timedelta(days=d) for d in range(6)))
            ],
        ),
        {TRAINERS},
        "the cohort's trainers (王老师) are busy or away at 12 of 14 start times; the rest hold 2 labs",
    ),
    (
        "the second module's labs start too late",
        problem([cohort(days=14, labs=late_labs(5), modules=2)]),
        {ORDER},
        "course order: lab lab1 (module 2) may not start before 2025-03-15; from then to 2025-03-16 "
        "there is room for 4 labs, 5 needed",
    ),
    (
        "trainees' blackout dates on all days but one",
        problem(
            [cohort(days=7, labs=labs(3), blackouts={MON + timedelta(days=d): 2 for d in range(6)})],
            hard_blackouts=True,
        ),
        {BLACKOUTS},
        "trainees' blackout dates rule out 6 of 7 days; the rest hold 2 labs",
    ),
    (
        "more labs than start times",
        problem([cohort(days=2, labs=labs(5))]),
        {"dates"},
        "from 2025-03-03 to 2025-03-04 the rooms' opening hours leave 4 start times on 2 days for the 5 "
        "labs of cohort C1",
    ),
    (
        "a lab longer than the opening hours",
        problem([cohort(labs=labs(1, minutes=15 * 60))]),
        {"dates"},
        "lab lab1 lasts 15 hours: no room is open that long",
    ),
    (
        "weekends only and one lab a day, only together",
        problem([cohort(days=7, labs=labs(8))], weekends_only=True, max_hours_per_day=4),
        {"combination"},
        "a plan exists only when hours per day, weekends only are relaxed together",
    ),
]


@pytest.mark.parametrize(("name", "p", "families", "words"), IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
def test_impossible_plans_name_the_rule_family_with_numbers(name, p, families, words):
    proposal = planner.plan(p, SETTINGS)
    assert proposal.status == "infeasible"
    assert proposal.placements == []
    assert {d.family for d in proposal.diagnoses} == families
    messages = [describe(d) for d in proposal.diagnoses]
    assert any(words in m for m in messages), messages


def test_labs_of_the_late_module_fit_when_there_are_few_enough():
    # The order case above with 4 labs instead of 5: the last weekend holds them all.
    proposal = planner.plan(problem([cohort(days=14, labs=late_labs(4), modules=2)]), SETTINGS)
    assert proposal.status == "optimal"
    assert {pl.starts_at.date() for pl in proposal.placements} == {date(2025, 3, 15), date(2025, 3, 16)}


def test_describe_translates_through_the_given_gettext():
    proposal = planner.plan(problem([cohort(trainees=35)]), SETTINGS)
    assert describe(proposal.diagnoses[0], lambda s: "«" + s + "»") == (
        "«no room seats the 35 trainees of cohort C1: the largest room has 30 seats.»"
    )


@pytest.mark.parametrize(
    ("lab", "modules", "expected"),
    [
        (LabUnit("a", 240, 0), 4, MON),
        (LabUnit("a", 240, 1), 4, MON + timedelta(days=7)),  # span 28 days (29 in the cohort)
        (LabUnit("a", 240, 3, progress_in_module=1.0), 4, MON + timedelta(days=28)),
        (LabUnit("a", 240, 1, progress_in_module=0.5), 2, MON + timedelta(days=21)),
    ],
)
def test_earliest_day_maps_the_course_onto_the_cohorts_dates(lab, modules, expected):
    c = CohortSpec("C", MON, MON + timedelta(days=28), 10, modules, (lab,))
    assert earliest_day(c, lab) == expected


@pytest.mark.parametrize(
    "bad",
    [
        Problem((), (room(),)),
        problem([cohort(labs=())]),
        problem([cohort(labs=(LabUnit("a", 0, 0),))]),
        problem([cohort(trainer_ids=(9,))]),
        problem(start_times=()),
    ],
)
def test_problems_that_cannot_be_modelled_are_refused(bad):
    with pytest.raises(planner.PlannerInputError):
        planner.plan(bad, SETTINGS)


# --- service, CLI and page --------------------------------------------------------------------

START = date.today() + timedelta(days=(7 - date.today().weekday()) % 7 + 7)  # a Monday 1-2 weeks ahead


@pytest.fixture
def lab_cohort(create_cohort, create_user, people, create_room):
    """A four-week cohort of 2 trainees following a course of 4 modules (2 lessons and a lab each);
    a 30-seat and a 1-seat room at its training base."""
    c = create_cohort(
        code="PLAN-1", starts_on=START, ends_on=START + timedelta(days=27), trainers=[people["trainer"]]
    )
    cohorts.enroll(people["trainee"], c)
    cohorts.enroll(create_user(Role.TRAINEE, username="trainee-b"), c)
    version = CourseVersion(
        course=c.course, version="1.0", schema_version=1, slug="plan", content_hash="x", is_current=True
    )
    db.session.add(version)
    for k in range(4):
        module = CourseModule(
            version=version, key=f"m0{k + 1}", position=k + 1, title={"en": f"M{k + 1}"}, summary={}
        )
        db.session.add(module)
        for n, kind in enumerate([UnitKind.LESSON, UnitKind.LESSON, UnitKind.LAB]):
            key = f"m0{k + 1}-lab" if kind == UnitKind.LAB else f"m0{k + 1}-l{n + 1}"
            db.session.add(
                CourseUnit(
                    version=version,
                    module=module,
                    key=key,
                    kind=kind,
                    position=n + 1,
                    title={"zh_CN": f"实训 {k + 1}", "en": f"Lab {k + 1}"},
                    minutes=240 if kind == UnitKind.LAB else 40,
                )
            )
    db.session.flush()
    c.course_version_id = version.id
    create_room(code="A301", seats=30)
    create_room(code="TINY", seats=1)
    db.session.commit()
    return c


def options(**params) -> planning.PlanOptions:
    params.setdefault("not_before", START)
    params.setdefault("time_limit_seconds", 20)
    return planning.PlanOptions(**params)


def test_proposal_for_a_cohort_honours_rooms_seats_and_course_order(lab_cohort):
    result = planning.propose_plan(lab_cohort, options())
    proposal = result.proposal
    assert proposal.status == "optimal"
    assert [p.unit_key for p in proposal.placements] == ["m01-lab", "m02-lab", "m03-lab", "m04-lab"]
    assert {p.room_code for p in proposal.placements} == {"A301"}  # 2 trainees, 1 seat in TINY
    # two of three units come before each lab: module k's lab from (k + 2/3) * 27 / 4 days in
    earliest = [START + timedelta(days=math.floor(Fraction(3 * k + 2, 3) * 27 / 4)) for k in range(4)]
    assert [p.starts_at.date() for p in proposal.placements] == earliest  # as early as allowed
    assert result.timezone == "Asia/Shanghai"
    assert db.session.scalar(select(func.count()).select_from(LabSession)) == 0  # nothing saved


def test_other_cohorts_bookings_and_trainers_other_sessions_are_avoided(
    lab_cohort, create_cohort, create_room, people
):
    first = planning.propose_plan(lab_cohort, options()).proposal.placements[0]
    other = create_cohort(code="OTHER", starts_on=START, ends_on=START + timedelta(days=27))
    room = db.session.scalar(select(Room).where(Room.code == "A301"))
    elsewhere = create_room(code="B101", seats=40, site=room.site)
    # the room is taken at the first proposal's time; the trainer teaches elsewhere the next morning
    create_lab_session(
        cohort=other,
        unit_key="x",
        room=room,
        trainers=[],
        first_start_local=first.starts_at,
        duration_minutes=240,
    )
    create_lab_session(
        cohort=other,
        unit_key="y",
        room=elsewhere,
        trainers=[people["trainer"]],
        first_start_local=first.starts_at + timedelta(days=1),
        duration_minutes=240,
    )
    db.session.commit()
    result = planning.propose_plan(lab_cohort, options(room_codes=("A301",)))
    starts = {p.starts_at for p in result.proposal.placements}
    assert first.starts_at not in starts and first.starts_at + timedelta(days=1) not in starts
    assert result.proposal.status == "optimal"


def test_impossible_cohort_says_which_rule(lab_cohort):
    result = planning.propose_plan(lab_cohort, options(room_codes=("TINY",)))
    assert result.proposal.status == "infeasible"
    assert result.messages == ["no room seats the 2 trainees of cohort PLAN-1: the largest room has 1 seats."]


def test_blackouts_and_days_away_come_from_usernames(lab_cohort, people):
    days = [START + timedelta(days=d) for d in range(28)]
    text = "trainee1 " + " ".join(d.isoformat() for d in days[:-1]) + "\n# a comment\n"
    unavailable = planning.parse_unavailability(text)
    soft = planning.propose_plan(lab_cohort, options(unavailable=unavailable)).proposal
    # the free last day takes two labs (8 hours a day); the other two clash with trainee1's dates
    assert soft.status == "optimal" and soft.trainee_conflicts == 2
    assert sum(1 for p in soft.placements if p.starts_at.date() == days[-1]) == 2
    hard = planning.propose_plan(lab_cohort, options(unavailable=unavailable, hard_blackouts=True))
    assert [d.family for d in hard.proposal.diagnoses] == [BLACKOUTS]
    away = planning.parse_unavailability(f"trainer1 {days[-1].isoformat()}, {days[-2].isoformat()}")
    plan = planning.propose_plan(lab_cohort, options(unavailable=away)).proposal
    assert all(p.starts_at.date() < days[-2] for p in plan.placements)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("trainee1", "Line 1: give a username"),
        ("trainee1 2025-02-30", "not a date"),
        ("\n\nx 03/08/2025", "Line 3"),
    ],
)
def test_bad_unavailability_lines_are_named(text, words):
    with pytest.raises(planning.PlanningError, match=words):
        planning.parse_unavailability(text)


@pytest.mark.parametrize(
    ("opts", "words"),
    [
        ({"room_codes": ("NOPE",)}, "No room NOPE"),
        ({"unavailable": (("stranger", START),)}, "neither a trainee nor a trainer"),
        ({"not_before": START + timedelta(days=40)}, "no days left"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(lab_cohort, opts, words):
    with pytest.raises(planning.PlanningError, match=words):
        planning.propose_plan(lab_cohort, options(**opts))


def test_accepting_creates_the_sessions_and_refuses_a_second_time(lab_cohort, people):
    proposal = planning.propose_plan(lab_cohort, options()).proposal
    chosen = [planning.ChosenPlacement(p.unit_key, p.room_id, p.starts_at) for p in proposal.placements]
    sessions = planning.accept_plan(lab_cohort, chosen, people["trainer"])
    db.session.commit()
    assert [s.unit_key for s in sessions] == ["m01-lab", "m02-lab", "m03-lab", "m04-lab"]
    assert all(s.trainers == [people["trainer"]] and len(s.occurrences) == 1 for s in sessions)
    assert sessions[0].title == "实训 1"
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "labs.plan_accepted")) is not None
    with pytest.raises(planning.PlanningError, match="already scheduled"):
        planning.accept_plan(lab_cohort, chosen[:1], people["trainer"])
    with pytest.raises(planning.PlanningError, match="already scheduled"):
        planning.propose_plan(lab_cohort, options())


def test_partly_scheduled_cohort_plans_the_rest_around_its_own_labs(lab_cohort, people):
    proposal = planning.propose_plan(lab_cohort, options()).proposal
    first = proposal.placements[0]
    planning.accept_plan(
        lab_cohort, [planning.ChosenPlacement(first.unit_key, first.room_id, first.starts_at)], None
    )
    db.session.commit()
    result = planning.propose_plan(lab_cohort, options())
    assert result.skipped_units == ["m01-lab"]
    assert [p.unit_key for p in result.proposal.placements] == ["m02-lab", "m03-lab", "m04-lab"]


def test_accept_rechecks_conflicts(lab_cohort, create_cohort, people):
    proposal = planning.propose_plan(lab_cohort, options()).proposal
    first = proposal.placements[0]
    room = db.session.get(Room, first.room_id)
    other = create_cohort(code="OTHER", starts_on=START, ends_on=START + timedelta(days=27))
    create_lab_session(
        cohort=other,
        unit_key="x",
        room=room,
        trainers=[],
        first_start_local=first.starts_at,
        duration_minutes=60,
    )
    db.session.commit()
    chosen = [planning.ChosenPlacement(p.unit_key, p.room_id, p.starts_at) for p in proposal.placements]
    with pytest.raises(SessionConflict, match="A301"):
        planning.accept_plan(lab_cohort, chosen, people["trainer"])
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(LabSession.cohort_id == lab_cohort.id)) == 0


def test_cli_prints_the_proposal_and_saves_nothing(lab_cohort):
    runner = CliRunner()
    result = runner.invoke(labs_group, ["plan", "PLAN-1", "--start-time", "09:00", "--start-time", "14:00"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["unit", "date", "time", "room", "conflicts"]
    assert [line.split()[0] for line in lines[2:6]] == ["m01-lab", "m02-lab", "m03-lab", "m04-lab"]
    assert "Nothing was saved" in result.output
    as_json = runner.invoke(labs_group, ["plan", "PLAN-1", "--json", "--weekends-only"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["status"] == "optimal" and len(data["placements"]) == 4
    assert all(date.fromisoformat(p["date"]).isoweekday() >= 6 for p in data["placements"])
    assert db.session.scalar(select(func.count()).select_from(LabOccurrence)) == 0


def test_cli_explains_an_impossible_plan(lab_cohort, tmp_path):
    runner = CliRunner()
    result = runner.invoke(labs_group, ["plan", "PLAN-1", "--max-hours-per-day", "3"])
    assert result.exit_code == 1
    assert "no plan: lab m01-lab lasts 4 hours, more than the 3 hours allowed per day." in result.output
    away = tmp_path / "away.txt"
    away.write_text("nobody 2025-01-01\n", encoding="utf-8")
    refused = runner.invoke(labs_group, ["plan", "PLAN-1", "--unavailable", str(away)])
    assert refused.exit_code == 1 and "nobody is neither a trainee nor a trainer" in refused.output
    assert runner.invoke(labs_group, ["plan", "NOPE"]).exit_code == 1


PLACEMENT_RE = re.compile(r'name="placement" value="([^"]+)"')


def _page(client, cohort, **args):
    query = {"propose": "1", "max_hours_per_day": "8", "start_times": "09:00, 14:00", **args}
    return client.get(f"/labs/planner/cohorts/{cohort.id}", query_string=query)


def test_trainer_reviews_and_accepts_a_proposal_in_the_browser(client, auth, lab_cohort):
    auth.login("trainer1")
    form = client.get(f"/labs/planner/cohorts/{lab_cohort.id}")
    assert form.status_code == 200 and "Propose" in form.get_data(as_text=True)
    page = _page(client, lab_cohort)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    placements = PLACEMENT_RE.findall(html)
    assert [p.split("|")[0] for p in placements] == ["m01-lab", "m02-lab", "m03-lab", "m04-lab"]
    path = f"/labs/planner/cohorts/{lab_cohort.id}"
    response = auth.post(f"{path}/accept", {"placement": placements}, form_page=path)
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).where(LabSession.cohort_id == lab_cohort.id)) == 4
    after = client.get(path).get_data(as_text=True)
    assert "4 lab sessions created for cohort PLAN-1" in after
    assert after.count("(scheduled)") == 4


def test_page_explains_impossible_plans_and_refuses_bad_input(client, auth, lab_cohort):
    auth.login("trainer1")
    impossible = _page(client, lab_cohort, max_hours_per_day="3")
    assert impossible.status_code == 200
    assert "lasts 4 hours, more than the 3 hours allowed per day" in impossible.get_data(as_text=True)
    bad = _page(client, lab_cohort, start_times="9 o'clock")
    assert bad.status_code == 400 and "is not a start time like 09:00" in bad.get_data(as_text=True)
    path = f"/labs/planner/cohorts/{lab_cohort.id}"
    tampered = auth.post(f"{path}/accept", {"placement": ["m01-lab|x|tomorrow"]}, form_page=path)
    assert tampered.status_code == 400 and "is not a placement of this plan" in tampered.get_data(
        as_text=True
    )
    empty = auth.post(f"{path}/accept", {}, form_page=path)
    assert empty.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(LabSession)) == 0


def test_accept_in_the_browser_rechecks_conflicts(client, auth, lab_cohort, create_cohort):
    auth.login("trainer1")
    page = _page(client, lab_cohort).get_data(as_text=True)
    placements = PLACEMENT_RE.findall(page)
    options_query = html.unescape(re.search(r'name="options" value="([^"]*)"', page).group(1))
    unit, room_id, starts = placements[0].split("|")
    other = create_cohort(code="OTHER", starts_on=START, ends_on=START + timedelta(days=27))
    create_lab_session(
        cohort=other,
        unit_key="x",
        room=db.session.get(Room, int(room_id)),
        trainers=[],
        first_start_local=datetime.strptime(starts, "%Y-%m-%dT%H:%M"),
        duration_minutes=60,
    )
    db.session.commit()
    path = f"/labs/planner/cohorts/{lab_cohort.id}"
    response = auth.post(
        f"{path}/accept", {"placement": placements, "options": options_query}, form_page=path
    )
    assert response.status_code == 409
    assert "Propose again with the same options" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).where(LabSession.cohort_id == lab_cohort.id)) == 0


def test_planner_page_is_only_for_the_cohorts_trainers_and_admins(client, auth, lab_cohort, create_user):
    create_user(Role.TRAINER, username="trainer-other")
    db.session.commit()
    auth.login("trainer-other")
    assert client.get(f"/labs/planner/cohorts/{lab_cohort.id}").status_code == 404
    auth.logout()
    auth.login("admin1")
    assert client.get(f"/labs/planner/cohorts/{lab_cohort.id}").status_code == 200
