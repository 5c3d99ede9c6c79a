"""Expands a lab session's recurrence rule into meetings. Pure: no Flask, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

MAX_OCCURRENCES = 200


class RecurrenceError(ValueError):
    """The rule cannot be expanded into meetings (bad syntax, no dates, unbounded, too many)."""


@dataclass(frozen=True)
class Meeting:
    starts_at: datetime  # aware UTC
    ends_at: datetime  # aware UTC


def expand(first_start_local: datetime, duration_minutes: int, rrule: str, timezone: str) -> list[Meeting]:
    """The meetings of a series: the local first start repeated by ``rrule`` ("" = once), in UTC."""
    if first_start_local.tzinfo is not None:
        raise RecurrenceError("the first start must be a local time without a zone")
    if duration_minutes <= 0:
        raise RecurrenceError("a session must last at least one minute")
    zone = ZoneInfo(timezone)
    if rrule.strip():
        text = rrule.strip()
        if text.upper().startswith("RRULE:"):
            text = text[6:]
        if "COUNT=" not in text.upper() and "UNTIL=" not in text.upper():
            raise RecurrenceError("a recurrence needs COUNT or UNTIL, so the series ends")
        try:
            rule = rrulestr(text, dtstart=first_start_local)
            starts = list(islice(iter(rule), MAX_OCCURRENCES + 1))
        except (ValueError, TypeError) as exc:
            raise RecurrenceError(f"the recurrence rule cannot be read: {exc}") from exc
        if len(starts) > MAX_OCCURRENCES:
            raise RecurrenceError(f"a series may have at most {MAX_OCCURRENCES} meetings")
    else:
        starts = [first_start_local]
    if not starts:
        raise RecurrenceError("the recurrence produces no dates")
    meetings = []
    for local in starts:
        start = local.replace(tzinfo=zone).astimezone(UTC)
        meetings.append(Meeting(start, start + timedelta(minutes=duration_minutes)))
    return meetings
