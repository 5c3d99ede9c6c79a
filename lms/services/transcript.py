"""Hours transcripts from the ledger with its evidence (lessons with active time, lab sessions with check-in
times, graded exercises), as data, CSV and PDF; and a cohort's subsidy evidence pack (a ZIP)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import render_template
from sqlalchemy import select

from lms.extensions import db
from lms.models import (
    Certificate,
    Cohort,
    CourseUnit,
    Enrollment,
    HoursEntry,
    HoursSource,
    UnitKind,
    UnitProgress,
    User,
)
from lms.services.completion import cohort_eligibility
from lms.services.progress import cohort_version_id, localized
from lms.timeutil import utcnow

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class TranscriptLine:
    """One ledger line as the transcript shows it."""

    at: datetime  # when it happened (the lab's start, the unit's completion), else when it was recorded
    source: HoursSource
    unit_key: str
    title: dict[str, str]
    minutes: int
    online: bool
    evidence: str  # a short, language-neutral summary of the evidence


@dataclass(frozen=True)
class GradedExercise:
    unit_key: str
    title: dict[str, str]
    best_percent: float
    attempts: int


@dataclass(frozen=True)
class Transcript:
    """A trainee's hours in one cohort, line by line, with the graded exercises."""

    user: User
    cohort: Cohort
    lines: tuple[TranscriptLine, ...]
    exercises: tuple[GradedExercise, ...]
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


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _hhmm(value: Any) -> str:
    at = _parse(value)
    return at.strftime("%Y-%m-%d %H:%M") if at else ""


def _unit_key(entry: HoursEntry) -> str:
    if entry.evidence.get("unit_key"):
        return str(entry.evidence["unit_key"])
    # online credits carry "<cohort id>:<unit key>" (see lms.services.hours.on_lesson_completed)
    return entry.source_ref.split(":", 1)[1] if ":" in entry.source_ref else entry.source_ref


def _summary(entry: HoursEntry) -> str:
    evidence = entry.evidence
    if entry.source == HoursSource.LAB_ATTENDANCE:
        parts = [f"{_hhmm(evidence.get('starts_at'))}–{_hhmm(evidence.get('ends_at'))[-5:]}"]
        if evidence.get("checked_in_at"):
            parts.append(f"check-in {_hhmm(evidence['checked_in_at'])}")
        if evidence.get("room"):
            parts.append(f"{evidence.get('site', '')} {evidence['room']}".strip())
        if evidence.get("attendance"):
            parts.append(str(evidence["attendance"]))
        return "; ".join(parts)
    if entry.source == HoursSource.ONLINE_UNIT:
        parts = []
        if evidence.get("active_seconds") is not None:
            parts.append(f"active {round(int(evidence['active_seconds']) / 60)} min")
        if evidence.get("best_score") is not None:
            parts.append(f"best {float(evidence['best_score']):.0f}%")
        return "; ".join(parts)
    return str(evidence.get("reason", ""))


def _when(entry: HoursEntry) -> datetime:
    evidence = entry.evidence
    for key in ("starts_at", "completed_at", "at"):
        at = _parse(evidence.get(key))
        if at is not None:
            return at if at.tzinfo else at.replace(tzinfo=entry.recorded_at.tzinfo)
    return entry.recorded_at


def transcript(user: User, cohort: Cohort) -> Transcript:
    """The trainee's transcript in the cohort, from the ledger (oldest first) and the graded exercises."""
    version_id = cohort_version_id(cohort)
    titles: dict[str, dict[str, str]] = {}
    kinds: dict[str, UnitKind] = {}
    if version_id is not None:
        for key, kind, title in db.session.execute(
            select(CourseUnit.key, CourseUnit.kind, CourseUnit.title).where(
                CourseUnit.version_id == version_id
            )
        ):
            titles[key], kinds[key] = title, kind
    entries = db.session.scalars(
        select(HoursEntry).where(HoursEntry.user_id == user.id, HoursEntry.cohort_id == cohort.id)
    )
    lines = sorted(
        (
            TranscriptLine(
                at=_when(entry),
                source=entry.source,
                unit_key=_unit_key(entry),
                title=titles.get(_unit_key(entry), {}),
                minutes=entry.minutes,
                online=entry.delivery.value == "online",
                evidence=_summary(entry),
            )
            for entry in entries
        ),
        key=lambda line: line.at,
    )
    exercises = [
        GradedExercise(key, titles.get(key, {}), float(best or 0), attempts or 0)
        for key, best, attempts in db.session.execute(
            select(UnitProgress.unit_key, UnitProgress.best_score, UnitProgress.attempts).where(
                UnitProgress.user_id == user.id,
                UnitProgress.cohort_id == cohort.id,
                UnitProgress.best_score.is_not(None),
            )
        )
        if kinds.get(key) == UnitKind.EXERCISE
    ]
    order = list(titles)
    exercises.sort(key=lambda e: order.index(e.unit_key) if e.unit_key in order else len(order))
    return Transcript(user, cohort, tuple(lines), tuple(exercises), utcnow())


def _cell(value: Any) -> str:
    """A CSV cell that spreadsheet programs will not read as a formula."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)  # a number is data, never a formula (and -10 must stay a number)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _csv(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8


def transcript_csv(t: Transcript, locale: str) -> bytes:
    """The transcript as CSV: one row per ledger line, then one per graded exercise."""
    rows: list[list[Any]] = [
        [
            line.at.isoformat(),
            line.source.value,
            "online" if line.online else "offline",
            line.unit_key,
            localized(line.title, locale),
            line.minutes,
            line.evidence,
        ]
        for line in t.lines
    ]
    rows += [
        ["", "exercise_graded", "", e.unit_key, localized(e.title, locale), 0, f"best {e.best_percent:.0f}%"]
        for e in t.exercises
    ]
    header = ["at", "source", "delivery", "unit", "title", "minutes", "evidence"]
    return _csv(header, rows)


def transcript_pdf(t: Transcript) -> bytes:
    """The transcript as an A4 PDF (bilingual headings, Noto CJK)."""
    from weasyprint import HTML

    html = render_template("lms/records/transcript_pdf.html", t=t, localized=localized)
    return HTML(string=html).write_pdf()


def subsidy_pack(cohort: Cohort, verify_url_for: Callable[[str], str]) -> bytes:
    """The training base's evidence for a subsidy claim as a ZIP: roster, lab attendance, completion,
    certificates (CSV and one PDF with every valid certificate) and a README."""
    from lms.services.certificates import render_certificates_pdf

    enrollments = db.session.scalars(select(Enrollment).where(Enrollment.cohort_id == cohort.id)).all()
    enrollments = sorted(enrollments, key=lambda e: e.user.username)
    roster = _csv(
        ["username", "real_name", "employer", "phone", "status", "enrolled_at", "completed_at"],
        (
            [
                e.user.username,
                e.user.real_name,
                e.user.employer,
                e.user.phone,
                e.status.value,
                e.enrolled_at.isoformat(),
                e.completed_at.isoformat() if e.completed_at else "",
            ]
            for e in enrollments
        ),
    )
    users = {e.user_id: e.user for e in enrollments}
    labs = db.session.scalars(
        select(HoursEntry)
        .where(HoursEntry.cohort_id == cohort.id, HoursEntry.source == HoursSource.LAB_ATTENDANCE)
        .order_by(HoursEntry.user_id, HoursEntry.id)
    ).all()
    attendance = _csv(
        ["username", "real_name", "unit", "starts_at", "ends_at", "checked_in_at", "site", "room", "minutes"],
        (
            [
                users[entry.user_id].username if entry.user_id in users else entry.user_id,
                users[entry.user_id].real_name if entry.user_id in users else "",
                entry.evidence.get("unit_key", ""),
                entry.evidence.get("starts_at", ""),
                entry.evidence.get("ends_at", ""),
                entry.evidence.get("checked_in_at", ""),
                entry.evidence.get("site", ""),
                entry.evidence.get("room", ""),
                entry.minutes,
            ]
            for entry in labs
        ),
    )
    rows = cohort_eligibility(cohort)
    completion = _csv(
        ["username", "real_name", "online_hours", "offline_hours", "eligible", "requirements_left"],
        (
            [
                row.trainee.username,
                row.trainee.real_name,
                next((f"{i.have:.1f}" for i in row.checklist.items if i.kind == "hours_online"), ""),
                next((f"{i.have:.1f}" for i in row.checklist.items if i.kind == "hours_offline"), ""),
                "yes" if row.checklist.complete else "no",
                " ".join(i.unit.key if i.unit else i.kind for i in row.checklist.left),
            ]
            for row in rows
        ),
    )
    certificates = db.session.scalars(
        select(Certificate).where(Certificate.cohort_id == cohort.id).order_by(Certificate.issued_at)
    ).all()
    certificate_rows = _csv(
        ["serial", "username", "real_name", "hours", "issued_at", "revoked_at", "verification_url"],
        (
            [
                c.serial,
                c.user.username,
                c.holder_name,
                f"{c.total_minutes / 60:g}",
                c.issued_at.isoformat(),
                c.revoked_at.isoformat() if c.revoked_at else "",
                verify_url_for(c.serial),
            ]
            for c in certificates
        ),
    )
    valid = [c for c in certificates if not c.revoked]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as pack:
        pack.writestr(
            "README.txt", render_template("lms/records/subsidy_readme.txt", cohort=cohort, now=utcnow())
        )
        pack.writestr("roster.csv", roster)
        pack.writestr("attendance.csv", attendance)
        pack.writestr("completion.csv", completion)
        pack.writestr("certificates.csv", certificate_rows)
        if valid:
            pack.writestr("certificates.pdf", render_certificates_pdf(valid, verify_url_for))
    return buffer.getvalue()
