"""On-site check-in codes and attendance arithmetic: pure functions, no Flask, no database.

A check-in code is six digits derived like a TOTP (RFC 6238, with RFC 4226 dynamic truncation) from the
occurrence's ``checkin_secret`` and the number of 30-second steps since the Unix epoch, using
HMAC-SHA-256. Codes are never stored: the server recomputes them. A code is accepted during its own step
and, as a grace for someone typing it as the screen changes, during the next one (``GRACE_STEPS``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

STEP_SECONDS = 30
"""A new code is shown every STEP_SECONDS."""

GRACE_STEPS = 1
"""How many previous codes are still accepted (1: the one shown just before the current one)."""

RECENT_STEPS = 20
"""A code from up to this many steps ago (10 minutes) is refused as *expired* rather than *wrong*."""

DIGITS = 6

OPENS_BEFORE_START = timedelta(minutes=30)
"""Check-in opens this long before the start and closes at the end of the meeting."""

LATE_MINUTES = 10
"""Checking in more than LATE_MINUTES after the start counts as late (the trainer can override)."""


class CodeStatus:
    VALID = "valid"
    EXPIRED = "expired"
    WRONG = "wrong"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class CheckinCode:
    """The code to show now: ``refresh_at`` is when the next one appears, ``expires_at`` when this one
    stops being accepted."""

    code: str
    step: int
    refresh_at: datetime
    expires_at: datetime


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("check-in times must be timezone-aware")
    return at


def time_step(at: datetime) -> int:
    """The number of whole STEP_SECONDS periods between the Unix epoch and ``at``."""
    return int(_aware(at).timestamp()) // STEP_SECONDS


def step_start(step: int) -> datetime:
    return datetime.fromtimestamp(step * STEP_SECONDS, UTC)


def code_for_step(secret: str, step: int) -> str:
    """HMAC-SHA-256 of the step as an 8-byte big-endian counter, truncated as in RFC 4226 §5.3."""
    if not secret:
        raise ValueError("the occurrence has no check-in secret")
    digest = hmac.new(secret.encode(), step.to_bytes(8, "big", signed=True), hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    number = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def current_code(secret: str, at: datetime) -> CheckinCode:
    """The code to display at ``at``."""
    step = time_step(at)
    return CheckinCode(
        code=code_for_step(secret, step),
        step=step,
        refresh_at=step_start(step + 1),
        expires_at=step_start(step + 1 + GRACE_STEPS),
    )


def normalise_code(raw: object) -> str | None:
    """The six digits of what a person typed (spaces and dashes ignored), or None if it is not a code."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw).zfill(DIGITS) if raw >= 0 else ""
    if not isinstance(raw, str):
        return None
    digits = "".join(ch for ch in raw if ch not in " -\t")
    if len(digits) != DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def verify_code(secret: str, raw: object, at: datetime) -> tuple[str, int | None]:
    """(status, step): VALID with the matching step, EXPIRED for a recent old code, else WRONG or
    MALFORMED. Comparisons take constant time."""
    code = normalise_code(raw)
    if code is None:
        return CodeStatus.MALFORMED, None
    now_step = time_step(at)
    found: int | None = None
    for step in range(now_step, now_step - GRACE_STEPS - 1, -1):
        if hmac.compare_digest(code_for_step(secret, step), code) and found is None:
            found = step
    if found is not None:
        return CodeStatus.VALID, found
    for step in range(now_step - GRACE_STEPS - 1, now_step - RECENT_STEPS - 1, -1):
        if hmac.compare_digest(code_for_step(secret, step), code):
            return CodeStatus.EXPIRED, None
    return CodeStatus.WRONG, None


def checkin_window(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """When check-in opens and closes (inclusive start, exclusive end)."""
    return starts_at - OPENS_BEFORE_START, ends_at


def is_late(checked_in_at: datetime, starts_at: datetime, late_minutes: int = LATE_MINUTES) -> bool:
    """True when the check-in came more than ``late_minutes`` after the start."""
    return checked_in_at > starts_at + timedelta(minutes=late_minutes)


def attended_minutes(starts_at: datetime, ends_at: datetime, arrived_at: datetime | None = None) -> int:
    """Whole minutes from the arrival (or the start, whichever is later) to the end, never more than the
    meeting's length and never negative. No arrival time means present from the start."""
    length = ends_at - starts_at
    begin = starts_at if arrived_at is None else max(arrived_at, starts_at)
    attended = min(max(ends_at - begin, timedelta(0)), length)
    return int(attended.total_seconds() // 60)
