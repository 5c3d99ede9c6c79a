"""Completion rules of a course and the checklist they make for one trainee: pure data and logic (no Flask,
no database), shared by the curriculum validator, the completion service and the cohort form.

The rules come from ``completion:`` in course.yaml, with a cohort's overrides on top:

    completion:
      hours: {total: 64, online: 32, offline: 32}   # credited hours needed (default: the course's hours)
      lab_attendance: 0.8                           # share of the course's lab units attended
      exercise_pass_mark: 60                        # percent of an exercise's points, for every exercise
      quizzes: true                                 # every quiz passed at its own pass mark
      pass_marks: {m03-ex-iris: 70}                 # percent, per exercise or quiz (overrides the above)
      final_project: m08-ex-capstone                # an exercise that must be graded and passed
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LAB_ATTENDANCE = 0.8
DEFAULT_EXERCISE_PASS_MARK = 60.0
RULE_KEYS = ("hours", "lab_attendance", "exercise_pass_mark", "quizzes", "pass_marks", "final_project")
HOURS_KEYS = ("total", "online", "offline")


@dataclass(frozen=True)
class CompletionRules:
    """What a trainee must have done to complete a course run."""

    total_hours: float
    online_hours: float
    offline_hours: float
    lab_attendance: float = DEFAULT_LAB_ATTENDANCE
    exercise_pass_mark: float = DEFAULT_EXERCISE_PASS_MARK
    quizzes: bool = True
    pass_marks: Mapping[str, float] = field(default_factory=dict)
    final_project: str | None = None

    def pass_mark(self, unit_key: str, default: float | None) -> float | None:
        """The unit's pass mark in percent (None: the quiz's own)."""
        return self.pass_marks.get(unit_key, default)

    def as_dict(self) -> dict[str, Any]:
        """The rules as course.yaml writes them."""
        return {
            "hours": {"total": self.total_hours, "online": self.online_hours, "offline": self.offline_hours},
            "lab_attendance": self.lab_attendance,
            "exercise_pass_mark": self.exercise_pass_mark,
            "quizzes": self.quizzes,
            "pass_marks": dict(self.pass_marks),
            "final_project": self.final_project,
        }


def rules_from(course_hours: Mapping[str, float], *layers: Mapping[str, Any] | None) -> CompletionRules:
    """The rules of the course's hours with each layer (course.yaml's block, then a cohort's overrides)
    applied on top; the layers must have passed ``problems_in``."""
    hours = {key: float(course_hours.get(key, 0)) for key in HOURS_KEYS}
    values: dict[str, Any] = {}
    pass_marks: dict[str, float] = {}
    for layer in layers:
        if not layer:
            continue
        hours.update({key: float(value) for key, value in (layer.get("hours") or {}).items()})
        pass_marks.update({key: float(value) for key, value in (layer.get("pass_marks") or {}).items()})
        values.update({key: layer[key] for key in RULE_KEYS[1:4] if key in layer})
        if "final_project" in layer:
            values["final_project"] = layer["final_project"] or None
    return CompletionRules(
        total_hours=hours["total"],
        online_hours=hours["online"],
        offline_hours=hours["offline"],
        lab_attendance=float(values.get("lab_attendance", DEFAULT_LAB_ATTENDANCE)),
        exercise_pass_mark=float(values.get("exercise_pass_mark", DEFAULT_EXERCISE_PASS_MARK)),
        quizzes=bool(values.get("quizzes", True)),
        pass_marks=pass_marks,
        final_project=values.get("final_project"),
    )


def problems_in(block: Any, unit_kinds: Mapping[str, str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem of a ``completion`` block as (path in the block, message); ``unit_kinds`` maps the
    course's unit ids to their kinds."""
    if not isinstance(block, Mapping):
        return [((), "completion must be a mapping of rules")]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for key in block:
        if key not in RULE_KEYS:
            problems.append(((key,), f"unknown rule '{key}'; the rules are: {', '.join(RULE_KEYS)}"))
    hours = block.get("hours", {})
    if not isinstance(hours, Mapping):
        problems.append((("hours",), "hours must be a mapping with total, online and/or offline"))
    else:
        for key, value in hours.items():
            if key not in HOURS_KEYS:
                problems.append((("hours", key), f"unknown hours '{key}'; use total, online or offline"))
            elif not _is_number(value) or value < 0:
                problems.append((("hours", key), f"hours.{key} must be a number of hours, 0 or more"))
    if "lab_attendance" in block and not (
        _is_number(block["lab_attendance"]) and 0 <= block["lab_attendance"] <= 1
    ):
        problems.append((("lab_attendance",), "lab_attendance must be a share from 0 to 1, e.g. 0.8"))
    if "exercise_pass_mark" in block and not _is_percent(block["exercise_pass_mark"]):
        problems.append((("exercise_pass_mark",), "exercise_pass_mark must be a percentage from 0 to 100"))
    if "quizzes" in block and not isinstance(block["quizzes"], bool):
        problems.append((("quizzes",), "quizzes must be true (every quiz passed) or false"))
    pass_marks = block.get("pass_marks", {})
    if not isinstance(pass_marks, Mapping):
        problems.append((("pass_marks",), "pass_marks must map exercise or quiz ids to percentages"))
    else:
        for key, value in pass_marks.items():
            if unit_kinds.get(key) not in ("exercise", "quiz"):
                problems.append(
                    (("pass_marks", key), f"pass_marks names '{key}', which is not an exercise or quiz")
                )
            elif not _is_percent(value):
                problems.append(
                    (("pass_marks", key), f"the pass mark of '{key}' must be a percentage from 0 to 100")
                )
    final = block.get("final_project")
    if final is not None and unit_kinds.get(final) != "exercise":
        problems.append((("final_project",), f"final_project names '{final}', which is not an exercise unit"))
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_percent(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 100


@dataclass(frozen=True)
class RuleUnit:
    """A unit the rules look at: a lab, exercise or quiz of the cohort's course version."""

    key: str
    kind: str  # lab | exercise | quiz
    title: Mapping[str, str]


@dataclass(frozen=True)
class TraineeRecord:
    """What a trainee has done in a cohort, as the rules read it."""

    online_minutes: int = 0
    offline_minutes: int = 0
    attended_labs: frozenset[str] = frozenset()
    best_percent: Mapping[str, float] = field(default_factory=dict)  # graded exercises and tried quizzes
    quizzes_passed: frozenset[str] = frozenset()  # at the quiz's own pass mark


@dataclass(frozen=True)
class ChecklistItem:
    """One requirement: what it is, whether it holds, and how far the trainee is (have of need)."""

    kind: str  # hours_total | hours_online | hours_offline | lab_attendance | exercise | quiz | final_project
    done: bool
    have: float
    need: float
    unit: RuleUnit | None = None


@dataclass(frozen=True)
class Checklist:
    items: tuple[ChecklistItem, ...]

    @property
    def complete(self) -> bool:
        return all(item.done for item in self.items)

    @property
    def left(self) -> tuple[ChecklistItem, ...]:
        return tuple(item for item in self.items if not item.done)


def checklist(rules: CompletionRules, units: list[RuleUnit], record: TraineeRecord) -> Checklist:
    """The trainee's checklist under the rules: every requirement, done or not."""
    items: list[ChecklistItem] = []
    minutes = record.online_minutes + record.offline_minutes
    for kind, have, need_hours in (
        ("hours_total", minutes, rules.total_hours),
        ("hours_online", record.online_minutes, rules.online_hours),
        ("hours_offline", record.offline_minutes, rules.offline_hours),
    ):
        if need_hours > 0:
            items.append(ChecklistItem(kind, have >= need_hours * 60, have / 60, need_hours))
    labs = [unit for unit in units if unit.kind == "lab"]
    if labs and rules.lab_attendance > 0:
        attended = sum(1 for unit in labs if unit.key in record.attended_labs)
        # the share is of lab units; rounding up, so 0.8 of 5 labs means 4
        need = -(-round(rules.lab_attendance * len(labs) * 1000) // 1000)
        items.append(ChecklistItem("lab_attendance", attended >= need, attended, need))
    for unit in units:
        if unit.kind == "exercise":
            mark = rules.pass_mark(unit.key, rules.exercise_pass_mark)
            assert mark is not None
            best = record.best_percent.get(unit.key)
            kind = "final_project" if unit.key == rules.final_project else "exercise"
            items.append(ChecklistItem(kind, best is not None and best >= mark, best or 0.0, mark, unit))
        elif unit.kind == "quiz" and (rules.quizzes or unit.key in rules.pass_marks):
            own = rules.pass_mark(unit.key, None)
            best = record.best_percent.get(unit.key)
            # without an override the quiz's own pass mark decided when it was marked
            done = unit.key in record.quizzes_passed if own is None else best is not None and best >= own
            items.append(ChecklistItem("quiz", done, best or 0.0, own or 0.0, unit))
    # the final project first among the units, so it is seen
    items.sort(key=lambda item: item.kind != "final_project" if item.unit is not None else False)
    return Checklist(tuple(items))
