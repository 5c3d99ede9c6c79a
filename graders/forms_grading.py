"""Flask-WTF forms of the trainers' pages: an assignment's rules and rubric, and grading a submission.

Dates and times are entered in the trainer's own time zone; ``local_to_utc`` and ``utc_to_local`` turn
them into the UTC the database keeps and back. The rubric is written as plain lines, "points | text",
which ``parse_rubric`` reads (pure, so it is tested with a table).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    FloatField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

#: When only a date is given, the deadline is the end of that day.
END_OF_DAY = time(23, 59)
RUBRIC_SEPARATOR = "|"
MAX_RUBRIC_MARKS = 30


# --- Local times -----------------------------------------------------------------------------------------


def local_to_utc(day: date | None, at: time | None, zone: str) -> datetime | None:
    """The UTC instant of ``day`` at ``at`` (end of day when None) on the wall clock of ``zone``."""
    if day is None:
        return None
    return datetime.combine(day, at or END_OF_DAY, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def utc_to_local(moment: datetime | None, zone: str) -> tuple[date | None, time | None]:
    """The date and the time (to the minute) of ``moment`` on the wall clock of ``zone``."""
    if moment is None:
        return None, None
    local = moment.astimezone(ZoneInfo(zone))
    return local.date(), local.time().replace(second=0, microsecond=0)


# --- Rubric ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RubricMark:
    points: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"points": self.points, "text": self.text}


class RubricError(ValueError):
    """A rubric line that cannot be read; the message names the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_rubric(text: str, max_points: float | None = None) -> list[RubricMark]:
    """Quick marks from lines "points | description"; blank lines are skipped.

    Raises RubricError for the first line without a number of points (0 up to ``max_points``) before
    the bar, or without a description after it.
    """
    marks = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        head, bar, description = line.partition(RUBRIC_SEPARATOR)
        description = description.strip()
        if not bar or not description:
            raise RubricError(
                number,
                _(
                    'Line %(line)d: write "points | description", for example "2 | Complete answer".',
                    line=number,
                ),
            )
        try:
            points = float(head.strip().replace(",", "."))
        except ValueError:
            points = math.nan
        if not math.isfinite(points) or points < 0 or (max_points is not None and points > max_points):
            limit = _number(max_points) if max_points is not None else "∞"
            raise RubricError(
                number,
                _(
                    "Line %(line)d: the points must be a number from 0 to %(max)s.",
                    line=number,
                    max=limit,
                ),
            )
        marks.append(RubricMark(points, description[:500]))
    if len(marks) > MAX_RUBRIC_MARKS:
        raise RubricError(
            len(text.splitlines()), _("A cell may have at most %(count)d marks.", count=MAX_RUBRIC_MARKS)
        )
    return marks


def format_rubric(marks: Sequence[dict[str, Any]]) -> str:
    """Stored marks as the lines the editor shows (the inverse of ``parse_rubric``)."""
    return "\n".join(f"{_number(float(m['points']))} {RUBRIC_SEPARATOR} {m['text']}" for m in marks)


def _number(value: float) -> str:
    return f"{value:g}"


# --- Forms -----------------------------------------------------------------------------------------------


class SettingsForm(FlaskForm):
    """An assignment's rules. The rubric textareas are not fields of this form: their number depends on
    the notebook, so the view reads them by name (``rubric-<n>``) next to it."""

    due_date = DateField(_l("Due date"), validators=[Optional()])
    due_time = TimeField(_l("Due time"), validators=[Optional()])
    cutoff_date = DateField(_l("Cut-off date"), validators=[Optional()])
    cutoff_time = TimeField(_l("Cut-off time"), validators=[Optional()])
    late_penalty_percent = FloatField(
        _l("Late penalty (percentage of the points per started day late)"),
        validators=[InputRequired(), NumberRange(min=0, max=100)],
    )
    max_submissions = IntegerField(
        _l("Submissions allowed per trainee"), validators=[InputRequired(), NumberRange(min=1, max=100)]
    )
    cell_timeout = IntegerField(
        _l("Time limit per cell (seconds)"), validators=[InputRequired(), NumberRange(min=5, max=3600)]
    )
    total_timeout = IntegerField(
        _l("Time limit for the whole notebook (seconds)"),
        validators=[InputRequired(), NumberRange(min=30, max=4 * 3600)],
    )
    anonymous_grading = BooleanField(_l("Grade anonymously (hide trainees' names while grading)"))

    def validate(self, extra_validators: Any = None) -> bool:
        if not super().validate(extra_validators):
            return False
        ok = True
        for day, at in ((self.due_date, self.due_time), (self.cutoff_date, self.cutoff_time)):
            if at.data is not None and day.data is None:
                day.errors = [*day.errors, _("Give the date as well as the time.")]
                ok = False
        return ok


class CellGradeForm(Form):
    """Points, comment and extra credit for one graded cell (part of GradeForm, which carries the CSRF
    token). Points are checked against the cell's maximum by the service, which knows it."""

    grade_id = HiddenField()
    points = StringField(_l("Points"), validators=[Optional(), Length(max=20)])
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=5000)])
    extra_credit = StringField(_l("Extra credit"), validators=[Optional(), Length(max=20)])


class GradeForm(FlaskForm):
    cells = FieldList(FormField(CellGradeForm))


def parse_points(text: str | None) -> float | None:
    """A number of points as typed ("1.5", "1,5"); None when empty. Raises ValueError otherwise."""
    cleaned = (text or "").strip().replace(",", ".")
    if not cleaned:
        return None
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError(cleaned)
    return value
