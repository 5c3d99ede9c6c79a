from datetime import UTC, datetime

import pytest

from labs.recurrence import MAX_OCCURRENCES, RecurrenceError, expand


@pytest.mark.parametrize(
    ("start", "rule", "zone", "expected_utc_starts"),
    [
        (datetime(2026, 11, 28, 9, 0), "", "Asia/Shanghai", ["2026-11-28T01:00"]),
        (
            datetime(2026, 11, 28, 9, 0),
            "FREQ=WEEKLY;BYDAY=SA;COUNT=4",
            "Asia/Shanghai",
            ["2026-11-28T01:00", "2026-12-05T01:00", "2026-12-12T01:00", "2026-12-19T01:00"],
        ),
        (
            datetime(2026, 11, 28, 9, 0),
            "RRULE:FREQ=WEEKLY;BYDAY=SA,SU;UNTIL=20261206T235959",
            "Asia/Shanghai",
            ["2026-11-28T01:00", "2026-11-29T01:00", "2026-12-05T01:00", "2026-12-06T01:00"],
        ),
        (
            datetime(2026, 11, 30, 19, 0),
            "FREQ=DAILY;COUNT=2",
            "Asia/Urumqi",
            ["2026-11-30T13:00", "2026-12-01T13:00"],
        ),
        # A zone with daylight saving keeps the local wall-clock time across the change.
        (
            datetime(2026, 3, 7, 9, 0),
            "FREQ=DAILY;COUNT=2",
            "America/New_York",
            ["2026-03-07T14:00", "2026-03-08T13:00"],
        ),
    ],
)
def test_series_expand_to_utc_meetings(start, rule, zone, expected_utc_starts):
    meetings = expand(start, 180, rule, zone)
    assert [m.starts_at.strftime("%Y-%m-%dT%H:%M") for m in meetings] == expected_utc_starts
    assert all(m.starts_at.tzinfo is UTC and (m.ends_at - m.starts_at).seconds == 180 * 60 for m in meetings)


@pytest.mark.parametrize(
    ("rule", "duration", "message"),
    [
        ("FREQ=WEEKLY;BYDAY=SA", 180, "COUNT or UNTIL"),
        ("FREQ=WEEKLY;BYDAY=SA;UNTIL=20261101T000000", 180, "no dates"),
        ("FREQ=SOMETIMES;COUNT=3", 180, "cannot be read"),
        ("FREQ=DAILY;COUNT=1000", 180, f"at most {MAX_OCCURRENCES}"),
        ("", 0, "at least one minute"),
    ],
)
def test_bad_series_are_refused_with_a_reason(rule, duration, message):
    with pytest.raises(RecurrenceError, match=message):
        expand(datetime(2026, 11, 28, 9, 0), duration, rule, "Asia/Shanghai")
