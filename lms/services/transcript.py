"""Hours transcripts and the subsidy evidence pack, read from the hours ledger with its evidence.

A transcript lists every ledger line of a trainee (online units with their active time, lab sessions with
their times, check-in and room, exercises, adjustments) plus the graded exercises, and is written out as
data, CSV (Excel-safe) and an A4 PDF. The subsidy pack is the ZIP a training base hands in with a subsidy
claim: roster, lab attendance, completion, certificates (CSV and one PDF) and a README.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import render_template
from sqlalchemy import case, func, select

from lms.extensions import db
from lms.models import (
    Certificate,
    Cohort,
    CourseUnit,
    Delivery,
    Enrollment,
    HoursEntry,
    HoursSource,
    UnitKind,
    UnitProgress,
    User,
)
from lms.services.progress import cohort_version_id, localized
from lms.timeutil import utcnow

#: Characters that make spreadsheet programs read a cell as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class TranscriptLine:
    """One ledger line as a transcript shows it; evidence fields not carried by the line are None."""

    at: datetime  # when it happened (a lab's start, a unit's completion), else when it was recorded
    recorded_at: datetime
    cohort_id: int | None
    source: HoursSource
    unit_key: str
    title: dict[str, str]  # {locale: text}; empty when the unit is not in the cohort's version
    minutes: int
    delivery: Delivery
    active_minutes: int | None = None  # online units: reading time the server accepted
    score: float | None = None  # quizzes: best percentage when credited
    starts_at: datetime | None = None  # lab sessions
    ends_at: datetime | None = None
    checked_in_at: datetime | None = None
    site: str = ""
    room: str = ""
    attendance: str = ""  # lab sessions: the trainer's mark (attended, late)
    note: str = ""  # adjustments: the stated reason

    @property
    def online(self) -> bool:
        return self.delivery == Delivery.ONLINE


@dataclass(frozen=True)
class GradedExercise:
    cohort_id: int
    unit_key: str
    title: dict[str, str]
    best_percent: float
    attempts: int


@dataclass(frozen=True)
class CohortTotal:
    cohort: Cohort
    online_minutes: int
    offline_minutes: int

    @property
    def total_minutes(self) -> int:
        return self.online_minutes + self.offline_minutes


@dataclass(frozen=True)
class Transcript:
    """A trainee's ledger lines (oldest first), graded exercises and totals per cohort; ``cohort`` is
    None for a transcript over all the trainee's cohorts."""

    user: User
    cohort: Cohort | None
    lines: tuple[TranscriptLine, ...]
    exercises: tuple[GradedExercise, ...]
    totals: tuple[CohortTotal, ...]
    timezone: tzinfo  # files show times in it: the training base's zone, else the trainee's
    generated_at: datetime

    @property
    def online_minutes(self) -> int:
        return sum(line.minutes for line in self.lines if line.online)

    @property
    def offline_minutes(self) -> int:
        return sum(line.minutes for line in self.lines if not line.online)

    @property
    def total_minutes(self) -> int:
        return self.online_minutes + self.offline_minutes

    def local(self, value: datetime | None) -> datetime | None:
        """The time in the transcript's zone."""
        return value.astimezone(self.timezone) if value is not None else None


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _parse(value: Any) -> datetime | None:
    """An ISO time from evidence JSON as an aware datetime; naive ones were written in UTC."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _unit_key(entry: HoursEntry) -> str:
    evidence = entry.evidence or {}
    if evidence.get("unit_key"):
        return str(evidence["unit_key"])
    if entry.source == HoursSource.ONLINE_UNIT:
        # online credits carry "<cohort id>:<unit key>" (see lms.services.hours.on_lesson_completed)
        return entry.source_ref.split(":", 1)[1] if ":" in entry.source_ref else entry.source_ref
    return ""


def _line(entry: HoursEntry, titles: dict[tuple[int | None, str], dict[str, str]]) -> TranscriptLine:
    evidence = entry.evidence if isinstance(entry.evidence, dict) else {}
    key = _unit_key(entry)
    starts_at = _parse(evidence.get("starts_at"))
    at = starts_at or _parse(evidence.get("completed_at")) or _parse(evidence.get("at")) or entry.recorded_at
    seconds = _int(evidence.get("active_seconds"))
    return TranscriptLine(
        at=at,
        recorded_at=entry.recorded_at,
        cohort_id=entry.cohort_id,
        source=entry.source,
        unit_key=key,
        title=titles.get((entry.cohort_id, key), {}),
        minutes=entry.minutes,
        delivery=entry.delivery,
        active_minutes=round(seconds / 60) if seconds is not None else None,
        score=_float(evidence.get("best_score")),
        starts_at=starts_at,
        ends_at=_parse(evidence.get("ends_at")),
        checked_in_at=_parse(evidence.get("checked_in_at")),
        site=str(evidence.get("site") or ""),
        room=str(evidence.get("room") or ""),
        attendance=str(evidence.get("attendance") or ""),
        note=str(evidence.get("reason") or evidence.get("note") or ""),
    )


def _user_cohorts(user: User) -> list[Cohort]:
    """Cohorts the user is or was enrolled in, or has ledger lines in; latest start first."""
    enrolled = select(Enrollment.cohort_id).where(Enrollment.user_id == user.id)
    credited = select(HoursEntry.cohort_id).where(HoursEntry.user_id == user.id)
    return list(
        db.session.scalars(
            select(Cohort)
            .where(Cohort.id.in_(enrolled.union(credited).scalar_subquery()))
            .order_by(Cohort.starts_on.desc(), Cohort.id)
        )
    )


def transcript(user: User, cohort: Cohort | None = None) -> Transcript:
    """The trainee's transcript in the cohort, or over all their cohorts when ``cohort`` is None."""
    cohorts = [cohort] if cohort is not None else _user_cohorts(user)
    # unit titles and kinds by (cohort id, key), from the version each cohort follows
    titles: dict[tuple[int | None, str], dict[str, str]] = {}
    kinds: dict[tuple[int, str], UnitKind] = {}
    positions: dict[tuple[int, str], int] = {}
    for each in cohorts:
        version_id = cohort_version_id(each)
        if version_id is None:
            continue
        for position, (key, kind, title) in enumerate(
            db.session.execute(
                select(CourseUnit.key, CourseUnit.kind, CourseUnit.title)
                .where(CourseUnit.version_id == version_id)
                .order_by(CourseUnit.position, CourseUnit.id)
            )
        ):
            titles[(each.id, key)], kinds[(each.id, key)], positions[(each.id, key)] = title, kind, position
    query = select(HoursEntry).where(HoursEntry.user_id == user.id)
    if cohort is not None:
        query = query.where(HoursEntry.cohort_id == cohort.id)
    entries = db.session.scalars(query.order_by(HoursEntry.id)).all()
    lines = sorted((_line(entry, titles) for entry in entries), key=lambda line: line.at)

    cohort_ids = [each.id for each in cohorts]
    exercises = [
        GradedExercise(cohort_id, key, titles.get((cohort_id, key), {}), float(best or 0), attempts or 0)
        for cohort_id, key, best, attempts in db.session.execute(
            select(
                UnitProgress.cohort_id, UnitProgress.unit_key, UnitProgress.best_score, UnitProgress.attempts
            ).where(
                UnitProgress.user_id == user.id,
                UnitProgress.cohort_id.in_(cohort_ids),
                UnitProgress.best_score.is_not(None),
            )
        )
        if kinds.get((cohort_id, key)) == UnitKind.EXERCISE
    ]
    order = {cohort_id: index for index, cohort_id in enumerate(cohort_ids)}
    exercises.sort(key=lambda e: (order[e.cohort_id], positions.get((e.cohort_id, e.unit_key), 0)))

    sums: dict[int | None, dict[Delivery, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        sums[line.cohort_id][line.delivery] += line.minutes
    totals = tuple(
        CohortTotal(each, sums[each.id][Delivery.ONLINE], sums[each.id][Delivery.OFFLINE]) for each in cohorts
    )
    zone = _zone(cohort.training_base.timezone if cohort is not None else user.timezone)
    return Transcript(user, cohort, tuple(lines), tuple(exercises), totals, zone, utcnow())


# --- CSV ----------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A CSV cell that spreadsheet programs will not read as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)  # a number is data, never a formula (and -10 must stay a number)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _csv(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read the file as UTF-8


def _iso(value: datetime | None, zone: tzinfo) -> str:
    """A time to the minute with its UTC offset, e.g. 2026-03-02T09:00+08:00."""
    return value.astimezone(zone).isoformat(timespec="minutes") if value is not None else ""


def _day(value: datetime | None, zone: tzinfo) -> str:
    return value.astimezone(zone).date().isoformat() if value is not None else ""


TRANSCRIPT_COLUMNS = [
    "date",
    "cohort",
    "source",
    "delivery",
    "unit",
    "title",
    "minutes",
    "active_minutes",
    "score_percent",
    "session_starts",
    "session_ends",
    "checked_in",
    "attendance",
    "site",
    "room",
    "note",
]


def transcript_csv(t: Transcript, locale: str) -> bytes:
    """The transcript as CSV (UTF-8 with a BOM): a row per ledger line, then a row per graded exercise.
    Column names are stable identifiers; titles are in ``locale``; times carry their UTC offset."""
    codes = {total.cohort.id: total.cohort.code for total in t.totals}
    zone = t.timezone
    rows: list[list[Any]] = [
        [
            _iso(line.at, zone),
            codes.get(line.cohort_id, "") if line.cohort_id is not None else "",
            line.source.value,
            line.delivery.value,
            line.unit_key,
            localized(line.title, locale),
            line.minutes,
            line.active_minutes,
            line.score,
            _iso(line.starts_at, zone),
            _iso(line.ends_at, zone),
            _iso(line.checked_in_at, zone),
            line.attendance,
            line.site,
            line.room,
            line.note,
        ]
        for line in t.lines
    ]
    rows += [
        ["", codes.get(e.cohort_id, ""), "exercise_graded", "", e.unit_key, localized(e.title, locale)]
        + [0, None, e.best_percent]
        + [""] * 7
        for e in t.exercises
    ]
    return _csv(TRANSCRIPT_COLUMNS, rows)


# --- PDF ----------------------------------------------------------------------------------------------


def transcript_pdf(t: Transcript, locale: str) -> bytes:
    """The transcript as an A4 portrait PDF: bilingual headings (fixed, like the certificate), unit titles
    in ``locale`` first, times in the training base's zone."""
    from weasyprint import HTML

    other = "en" if locale != "en" else "zh_CN"
    html = render_template(
        "lms/records/transcript_pdf.html",
        t=t,
        cohorts={total.cohort.id: total.cohort for total in t.totals},
        zone_name=str(t.timezone),
        title=lambda texts: localized(texts, locale),
        subtitle=lambda texts: (texts or {}).get(other, "") if localized(texts, locale) else "",
        local=t.local,
    )
    return HTML(string=html).write_pdf()


# --- the subsidy evidence pack ------------------------------------------------------------------------


def _minutes_by_user(cohort: Cohort) -> dict[int, tuple[int, int]]:
    rows = db.session.execute(
        select(
            HoursEntry.user_id,
            func.coalesce(func.sum(case((HoursEntry.delivery == Delivery.ONLINE, HoursEntry.minutes))), 0),
            func.coalesce(func.sum(case((HoursEntry.delivery == Delivery.OFFLINE, HoursEntry.minutes))), 0),
        )
        .where(HoursEntry.cohort_id == cohort.id)
        .group_by(HoursEntry.user_id)
    )
    return {user_id: (int(online), int(offline)) for user_id, online, offline in rows}


def _hours(minutes: int) -> str:
    return f"{minutes / 60:.1f}"


def _roster_csv(enrollments: list[Enrollment], zone: tzinfo) -> bytes:
    return _csv(
        ["username", "real_name", "employer", "phone", "status", "enrolled_on", "completed_on"],
        (
            [
                e.user.username,
                e.user.real_name,
                e.user.employer,
                e.user.phone,
                e.status.value,
                _day(e.enrolled_at, zone),
                _day(e.completed_at, zone),
            ]
            for e in enrollments
        ),
    )


def _attendance_csv(cohort: Cohort, users: dict[int, User], zone: tzinfo) -> bytes:
    version_id = cohort_version_id(cohort)
    titles: dict[str, dict[str, str]] = {}
    if version_id is not None:
        titles = {
            key: title
            for key, title in db.session.execute(
                select(CourseUnit.key, CourseUnit.title).where(
                    CourseUnit.version_id == version_id, CourseUnit.kind == UnitKind.LAB
                )
            )
        }
    entries = db.session.scalars(
        select(HoursEntry)
        .where(HoursEntry.cohort_id == cohort.id, HoursEntry.source == HoursSource.LAB_ATTENDANCE)
        .order_by(HoursEntry.id)
    ).all()
    lines = sorted(
        ((entry, _line(entry, {})) for entry in entries),
        key=lambda pair: (pair[1].at, users[pair[0].user_id].username if pair[0].user_id in users else ""),
    )
    return _csv(
        [
            "username",
            "real_name",
            "unit",
            "title",
            "session_starts",
            "session_ends",
            "checked_in",
            "attendance",
            "site",
            "room",
            "minutes",
            "recorded",
        ],
        (
            [
                users[entry.user_id].username if entry.user_id in users else entry.user_id,
                users[entry.user_id].real_name if entry.user_id in users else "",
                line.unit_key,
                localized(titles.get(line.unit_key), "zh_CN"),
                _iso(line.starts_at, zone),
                _iso(line.ends_at, zone),
                _iso(line.checked_in_at, zone),
                line.attendance,
                line.site,
                line.room,
                line.minutes,
                _iso(line.recorded_at, zone),
            ]
            for entry, line in lines
        ),
    )


def _completion_csv(cohort: Cohort) -> bytes:
    from lms.services.completion import cohort_eligibility

    minutes = _minutes_by_user(cohort)
    rows = []
    for row in cohort_eligibility(cohort):
        online, offline = minutes.get(row.trainee.id, (0, 0))
        rows.append(
            [
                row.trainee.username,
                row.trainee.real_name,
                _hours(online),
                _hours(offline),
                _hours(online + offline),
                row.checklist.complete,
                " ".join(item.unit.key if item.unit else item.kind for item in row.checklist.left),
            ]
        )
    return _csv(
        [
            "username",
            "real_name",
            "online_hours",
            "offline_hours",
            "total_hours",
            "eligible",
            "requirements_left",
        ],
        rows,
    )


def _certificates_csv(
    certificates: list[Certificate], zone: tzinfo, verify_url_for: Callable[[str], str]
) -> bytes:
    return _csv(
        [
            "serial",
            "username",
            "real_name",
            "online_hours",
            "offline_hours",
            "issued_on",
            "revoked",
            "revoked_on",
            "verification_url",
        ],
        (
            [
                c.serial,
                c.user.username,
                c.holder_name,
                _hours(c.online_minutes),
                _hours(c.offline_minutes),
                _day(c.issued_at, zone),
                c.revoked,
                _day(c.revoked_at, zone),
                verify_url_for(c.serial),
            ]
            for c in certificates
        ),
    )


def subsidy_pack(cohort: Cohort, verify_url_for: Callable[[str], str], today: date | None = None) -> bytes:
    """The training base's evidence for a subsidy claim as a ZIP: README.txt, roster.csv, attendance.csv,
    completion.csv, certificates.csv and certificates.pdf (every standing certificate, a page each;
    left out when none stands). ``verify_url_for(serial)`` gives a certificate's public address."""
    from lms.services.certificates import render_certificates_pdf

    zone = _zone(cohort.training_base.timezone)  # dates as they were at the training base
    enrollments = sorted(
        db.session.scalars(select(Enrollment).where(Enrollment.cohort_id == cohort.id)),
        key=lambda e: e.user.username,
    )
    users = {e.user_id: e.user for e in enrollments}
    certificates = list(
        db.session.scalars(
            select(Certificate)
            .where(Certificate.cohort_id == cohort.id)
            .order_by(Certificate.issued_at, Certificate.id)
        )
    )
    standing = [c for c in certificates if not c.revoked]
    readme = render_template(
        "lms/records/subsidy_readme.txt",
        cohort=cohort,
        generated_on=(today or utcnow().astimezone(zone).date()).isoformat(),
        trainees=len(enrollments),
        certificates=len(standing),
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as pack:
        pack.writestr("README.txt", readme.encode("utf-8"))
        pack.writestr("roster.csv", _roster_csv(enrollments, zone))
        pack.writestr("attendance.csv", _attendance_csv(cohort, users, zone))
        pack.writestr("completion.csv", _completion_csv(cohort))
        pack.writestr("certificates.csv", _certificates_csv(certificates, zone, verify_url_for))
        if standing:
            pack.writestr("certificates.pdf", render_certificates_pdf(standing, verify_url_for))
    return buffer.getvalue()
