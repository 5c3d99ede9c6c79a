"""The hours ledger: append-only credits with evidence, and per-cohort totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError

from lms import signals
from lms.extensions import db
from lms.models import Cohort, Delivery, HoursEntry, HoursSource, User
from lms.services import DomainError


@dataclass(frozen=True)
class HoursSummary:
    online_minutes: int
    offline_minutes: int
    required_minutes: int

    @property
    def total_minutes(self) -> int:
        return self.online_minutes + self.offline_minutes

    @property
    def share(self) -> float:
        """Credited share of the required hours, 0..1."""
        if self.required_minutes <= 0:
            return 1.0
        return max(0.0, min(1.0, self.total_minutes / self.required_minutes))


def credit_hours(
    user: User,
    cohort: Cohort | None,
    *,
    source: HoursSource,
    source_ref: str,
    delivery: Delivery,
    minutes: int,
    evidence: dict[str, Any],
    recorded_by: User | None = None,
) -> HoursEntry:
    """Append a credit; crediting the same (user, source, source_ref) again returns the first entry."""
    if source is not HoursSource.ADJUSTMENT and minutes <= 0:
        raise DomainError("credited minutes must be positive")
    existing = db.session.scalar(
        select(HoursEntry).where(
            HoursEntry.user_id == user.id, HoursEntry.source == source, HoursEntry.source_ref == source_ref
        )
    )
    if existing is not None:
        return existing
    entry = HoursEntry(
        user_id=user.id,
        cohort_id=cohort.id if cohort else None,
        source=source,
        source_ref=source_ref,
        delivery=delivery,
        minutes=minutes,
        evidence=evidence,
        recorded_by_id=recorded_by.id if recorded_by else None,
    )
    try:
        with db.session.begin_nested():
            db.session.add(entry)
    except IntegrityError:
        # A concurrent request credited the same thing first; the ledger keeps that one.
        found = db.session.scalar(
            select(HoursEntry).where(
                HoursEntry.user_id == user.id,
                HoursEntry.source == source,
                HoursEntry.source_ref == source_ref,
            )
        )
        assert found is not None
        return found
    signals.hours_credited.send(None, entry=entry)
    return entry


def hours_summary(user: User, cohort: Cohort) -> HoursSummary:
    """Minutes credited to the user in the cohort, online and offline, against the requirement."""
    online, offline = db.session.execute(
        select(
            func.coalesce(func.sum(case((HoursEntry.delivery == Delivery.ONLINE, HoursEntry.minutes))), 0),
            func.coalesce(func.sum(case((HoursEntry.delivery == Delivery.OFFLINE, HoursEntry.minutes))), 0),
        ).where(HoursEntry.user_id == user.id, HoursEntry.cohort_id == cohort.id)
    ).one()
    return HoursSummary(int(online), int(offline), cohort.required_hours * 60)


def cohort_hours(cohort: Cohort) -> dict[int, int]:
    """Total credited minutes per user id in the cohort."""
    rows = db.session.execute(
        select(HoursEntry.user_id, func.sum(HoursEntry.minutes))
        .where(HoursEntry.cohort_id == cohort.id)
        .group_by(HoursEntry.user_id)
    )
    return {user_id: int(total or 0) for user_id, total in rows}


def on_lesson_completed(
    sender: Any, *, user: User, cohort: Cohort, unit_id: str, minutes: int, evidence: dict[str, Any]
) -> None:
    """Credit an online unit's minutes (signal receiver)."""
    credit_hours(
        user,
        cohort,
        source=HoursSource.ONLINE_UNIT,
        source_ref=f"{cohort.id}:{unit_id}",
        delivery=Delivery.ONLINE,
        minutes=minutes,
        evidence=evidence,
    )


def on_lab_attendance_recorded(
    sender: Any, *, user: User, cohort: Cohort, occurrence_id: int, minutes: int, evidence: dict[str, Any]
) -> None:
    """Credit attended lab minutes (signal receiver)."""
    credit_hours(
        user,
        cohort,
        source=HoursSource.LAB_ATTENDANCE,
        source_ref=f"occurrence:{occurrence_id}",
        delivery=Delivery.OFFLINE,
        minutes=minutes,
        evidence=evidence,
    )


def connect_receivers() -> None:
    """Listen to the plugins' signals that carry hours."""
    signals.lesson_completed.connect(on_lesson_completed)
    signals.lab_attendance_recorded.connect(on_lab_attendance_recorded)
