"""Run times of the lab planner (labs/planner.py, CP-SAT), in memory, no database.

    .venv/bin/python bench/planner.py [--runs 3] [--time-limit 60] [--workers 0]

Scenarios:
  one-cohort   a cohort of 30 trainees with 10 lab units over 8 weeks; a site with 2 rooms that other
               cohorts already use, 2 trainers with other teaching, 6 trainees with blackout dates
  one-weekends the same cohort, weekends only
  shared-site  20 cohorts (18-36 trainees, 10 lab units each, 8 weeks, starts staggered over 4 weeks)
               sharing one site with 4 rooms (40/36/30/24 seats) and 10 trainers (2 cohorts each)
  impossible   the one cohort squeezed into 4 weeks, weekends only, at most 4 hours a day: no plan, and
               the explanation (each family dropped in turn)

Each scenario runs --runs times; the median wall time (model building included) and the status are
printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time as clock
from datetime import date, datetime, time, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labs.planner import (  # noqa: E402
    CohortSpec,
    Interval,
    LabUnit,
    Problem,
    RoomSpec,
    Rules,
    SolverSettings,
    TrainerSpec,
    describe,
    plan,
)

START = date(2025, 3, 3)  # a Monday
WEEKS = 8


def _labs(modules: int = 10) -> tuple[LabUnit, ...]:
    # One lab per module, after most of its lessons; every third lab is a 3-hour one.
    return tuple(
        LabUnit(f"m{k + 1:02d}-lab", 180 if k % 3 == 2 else 240, k, progress_in_module=0.7)
        for k in range(modules)
    )


def _busy(rng: random.Random, first: date, days: int, count: int) -> tuple[Interval, ...]:
    slots = []
    for _n in range(count):
        day = first + timedelta(days=rng.randrange(days))
        start = datetime.combine(day, rng.choice([time(9), time(14)]))
        slots.append(Interval(start, start + timedelta(hours=4)))
    return tuple(sorted(set(slots), key=lambda i: i.starts))


def one_cohort(rules: Rules, weeks: int = WEEKS) -> Problem:
    rng = random.Random(30)
    days = weeks * 7
    rooms = (
        RoomSpec(1, "A301", 40, time(8), time(22), busy=_busy(rng, START, days, 40)),
        RoomSpec(2, "A305", 30, time(8), time(22), busy=_busy(rng, START, days, 40)),
    )
    trainers = (
        TrainerSpec(
            1, "王老师", busy=_busy(rng, START, days, 15), unavailable=frozenset({START + timedelta(days=10)})
        ),
        TrainerSpec(2, "李老师", busy=_busy(rng, START, days, 15)),
    )
    blackouts: dict[date, int] = {}
    for _trainee in range(6):
        for _n in range(3):
            day = START + timedelta(days=rng.randrange(days))
            blackouts[day] = blackouts.get(day, 0) + 1
    cohort = CohortSpec(
        "AIET-30", START, START + timedelta(days=days - 1), 30, 10, _labs(), (1, 2), blackouts
    )
    return Problem((cohort,), rooms, trainers, rules)


def shared_site() -> Problem:
    rng = random.Random(20)
    rooms = (
        RoomSpec(1, "A301", 40, time(8), time(22)),
        RoomSpec(2, "A302", 36, time(8), time(22)),
        RoomSpec(3, "A303", 30, time(8), time(22)),
        RoomSpec(4, "A305", 24, time(8), time(22)),
    )
    trainers = tuple(TrainerSpec(t, f"trainer {t}") for t in range(1, 11))
    cohorts = []
    for n in range(20):
        start = START + timedelta(days=7 * (n % 4))
        blackouts = {start + timedelta(days=rng.randrange(WEEKS * 7)): rng.randint(1, 3) for _ in range(5)}
        cohorts.append(
            CohortSpec(
                f"C{n + 1:02d}",
                start,
                start + timedelta(days=WEEKS * 7 - 1),
                rng.randint(18, 36),
                10,
                _labs(),
                (n % 10 + 1,),
                blackouts,
            )
        )
    return Problem(tuple(cohorts), rooms, trainers, Rules(max_hours_per_day=8))


def run(name: str, problem: Problem, settings: SolverSettings, runs: int) -> None:
    times, statuses = [], []
    proposal = None
    for _n in range(runs):
        started = clock.perf_counter()
        proposal = plan(problem, settings)
        times.append(clock.perf_counter() - started)
        statuses.append(proposal.status)
    assert proposal is not None
    labs = sum(len(c.labs) for c in problem.cohorts)
    print(
        f"{name:<13} median {statistics.median(times):7.2f} s  "
        f"(runs: {', '.join(f'{t:.2f}' for t in times)})  "
        f"status {'/'.join(sorted(set(statuses)))}  {len(problem.cohorts)} cohorts, {labs} labs, "
        f"{len(problem.rooms)} rooms, {proposal.variables} placement variables, "
        f"trainee conflicts {proposal.trainee_conflicts}"
    )
    for diagnosis in proposal.diagnoses:
        print(f"{'':<13} no plan: {describe(diagnosis)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0, help="solver seconds per solve")
    parser.add_argument("--workers", type=int, default=0, help="CP-SAT workers (0: one per core, up to 8)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args()
    settings = SolverSettings(time_limit_seconds=args.time_limit, workers=args.workers)
    scenarios = {
        "one-cohort": lambda: one_cohort(Rules(max_hours_per_day=8)),
        "one-weekends": lambda: one_cohort(Rules(max_hours_per_day=8, weekends_only=True)),
        "shared-site": shared_site,
        "impossible": lambda: one_cohort(Rules(max_hours_per_day=4, weekends_only=True), weeks=4),
    }
    wanted = [s for s in args.only.split(",") if s] or list(scenarios)
    import os

    print(
        f"planner bench: {os.cpu_count()} cores, time limit {args.time_limit:g} s per solve, {args.runs} runs"
    )
    plan(one_cohort(Rules()), SolverSettings(time_limit_seconds=5))  # warm-up: imports OR-Tools
    for name in wanted:
        run(name, scenarios[name](), settings, args.runs)


if __name__ == "__main__":
    main()
