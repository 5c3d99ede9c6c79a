"""Flask-WTF forms of the labs pages: sites, rooms, scheduling a lab, cancelling a meeting.

The scheduling form is the friendly one ("every Saturday 09:00–12:00 for 4 weeks"); ``weekly_rrule``
turns its answers into the RFC 5545 rule the service stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from babel.dates import get_day_names
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # ISO weekday 1 (Monday) .. 7 (Sunday)
MAX_WEEKS = 52


def weekly_rrule(
    first: date, weekdays: Iterable[int], *, weeks: int | None = None, until: date | None = None
) -> str:
    """The rule of meetings on ``weekdays`` (ISO, 1 = Monday) from ``first`` on, for ``weeks`` weeks or
    up to and including ``until``: ``FREQ=WEEKLY;BYDAY=SA;COUNT=4``.

    The meetings are counted here, so the rule needs no UNTIL (whose form in iCalendar depends on how
    the start is zoned). Raises ValueError when no meeting falls in the range.
    """
    days = sorted(set(weekdays))
    if not days or any(day not in range(1, 8) for day in days):
        raise ValueError("weekdays are ISO numbers 1 to 7")
    if (weeks is None) == (until is None):
        raise ValueError("give either weeks or until")
    last = first + timedelta(weeks=weeks) - timedelta(days=1) if weeks is not None else until
    assert last is not None
    count = sum(1 for n in range((last - first).days + 1) if (first + timedelta(days=n)).isoweekday() in days)
    if count == 0:
        raise ValueError("no meeting falls in the range")
    return f"FREQ=WEEKLY;BYDAY={','.join(WEEKDAY_CODES[day - 1] for day in days)};COUNT={count}"


def first_meeting_date(start: date, weekdays: Iterable[int]) -> date:
    """The first date on or after ``start`` that falls on one of ``weekdays``."""
    days = set(weekdays)
    for n in range(7):
        if (start + timedelta(days=n)).isoweekday() in days:
            return start + timedelta(days=n)
    raise ValueError("weekdays are ISO numbers 1 to 7")


def weekday_choices() -> list[SelectChoice]:
    """Monday to Sunday in the current language, valued by ISO number."""
    names = get_day_names("wide", locale=get_locale())
    return [SelectChoice(day, names[day - 1]) for day in range(1, 8)]


class CheckboxesField(SelectMultipleField):
    """A multiple choice shown as checkboxes (easier on a phone than a multi-select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SiteForm(FlaskForm):
    institution_id = SelectField(_l("Training base"), coerce=int)
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=200)])
    name_en = StringField(_l("Name (English)"), validators=[Optional(), Length(max=200)])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=300)])
    timezone = StringField(
        _l("Time zone"), default="Asia/Shanghai", validators=[DataRequired(), Length(max=64)]
    )


class RoomForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    seats = IntegerField(_l("Seats"), validators=[InputRequired(), NumberRange(min=1, max=1000)])
    workstations = IntegerField(
        _l("Workstations"), default=0, validators=[Optional(), NumberRange(min=0, max=1000)]
    )
    gpu_seats = IntegerField(
        _l("Seats with a GPU workstation"), default=0, validators=[Optional(), NumberRange(min=0, max=1000)]
    )
    open_from = TimeField(_l("Opens at"), default=time(8, 0), validators=[InputRequired()])
    open_until = TimeField(_l("Closes at"), default=time(21, 0), validators=[InputRequired()])
    open_weekdays = CheckboxesField(_l("Open on"), coerce=int, default=list(range(1, 8)))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.open_weekdays.choices = weekday_choices()


class SessionForm(FlaskForm):
    """One-off or weekly lab meetings; an advanced field takes a raw RRULE instead."""

    unit_key = SelectField(_l("Lab unit"), validators=[InputRequired()])
    title = StringField(_l("Title (optional)"), validators=[Optional(), Length(max=200)])
    room_id = SelectField(_l("Room"), coerce=int)
    trainer_ids = CheckboxesField(_l("Trainers"), coerce=int)
    start_date = DateField(_l("Date"), validators=[InputRequired()])
    start_time = TimeField(_l("Start time"), default=time(9, 0), validators=[InputRequired()])
    duration_minutes = IntegerField(
        _l("Duration (minutes)"), default=180, validators=[InputRequired(), NumberRange(min=15, max=720)]
    )
    repeat = RadioField(
        _l("Repeat"),
        default="once",
        choices=[SelectChoice("once", _l("Only once")), SelectChoice("weekly", _l("Weekly"))],
    )
    weekdays = CheckboxesField(_l("On"), coerce=int)
    end_mode = RadioField(
        _l("Ends"),
        default="weeks",
        choices=[
            SelectChoice("weeks", _l("After a number of weeks")),
            SelectChoice("until", _l("On a date")),
        ],
    )
    weeks = IntegerField(
        _l("Number of weeks"), default=4, validators=[Optional(), NumberRange(min=1, max=MAX_WEEKS)]
    )
    until = DateField(_l("Last date"), validators=[Optional()])
    rrule = StringField(_l("Recurrence rule (RRULE, advanced)"), validators=[Optional(), Length(max=300)])
    booking_cutoff_minutes = IntegerField(
        _l("Booking closes (minutes before the start)"),
        default=60,
        validators=[InputRequired(), NumberRange(min=0, max=7 * 24 * 60)],
    )
    override_reason = TextAreaField(_l("Schedule anyway, because"), validators=[Optional(), Length(max=500)])

    #: set by validate(): the local start of the first meeting and the rule ("" = once)
    first_start_local: datetime | None = None
    rule: str = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weekdays.choices = weekday_choices()

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        start = self.start_date.data
        raw = " ".join((self.rrule.data or "").split())
        if raw:
            self.first_start_local = datetime.combine(start, self.start_time.data)
            self.rule = raw
            return True
        if self.repeat.data != "weekly":
            self.first_start_local = datetime.combine(start, self.start_time.data)
            self.rule = ""
            return True
        days = self.weekdays.data or [start.isoweekday()]
        first = first_meeting_date(start, days)
        weeks = until = None
        if self.end_mode.data == "until":
            until = self.until.data
            if until is None:
                self.until.errors.append(_l("Give the date of the last meeting."))
                return False
            if until < start:
                self.until.errors.append(_l("The last date cannot be before the first."))
                return False
        else:
            weeks = self.weeks.data
            if weeks is None:
                self.weeks.errors.append(_l("Give the number of weeks."))
                return False
        try:
            self.rule = weekly_rrule(first, days, weeks=weeks, until=until)
        except ValueError:
            self.until.errors.append(_l("No meeting falls on the chosen weekdays before that date."))
            return False
        self.first_start_local = datetime.combine(first, self.start_time.data)
        return True


class CancelOccurrenceForm(FlaskForm):
    reason = StringField(
        _l("Reason (the trainees who booked see it)"), validators=[DataRequired(), Length(max=300)]
    )
