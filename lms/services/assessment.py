"""Separate assessment: handing eligible trainees over to an assessment site, exam rooms and sessions with
seat allocation, admission slips, and importing the national exam's results (all or nothing)."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import render_template
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from lms.extensions import db
from lms.models import (
    Candidate,
    CandidateStatus,
    Certificate,
    Cohort,
    Enrollment,
    ExamRoom,
    ExamSession,
    Handover,
    Institution,
    InstitutionKind,
    Role,
    User,
)
from lms.services import DomainError, audit
from lms.services.certificates import get_certificate
from lms.timeutil import utcnow

MAX_RESULTS_BYTES = 2 * 1024 * 1024
MAX_ROOM_SEATS = 1000
# Header names the national exam's export uses, in Chinese or English, for each column we read.
RESULT_COLUMNS = {
    "number": ("准考证号", "candidate_number", "candidate number"),
    "name": ("姓名", "name"),
    "result": ("结果", "考试结果", "result"),
    "score": ("成绩", "分数", "score"),
    "certificate": ("证书编号", "certificate_number", "certificate number"),
}
RESULT_WORDS = {
    "合格": CandidateStatus.PASSED,
    "通过": CandidateStatus.PASSED,
    "pass": CandidateStatus.PASSED,
    "passed": CandidateStatus.PASSED,
    "不合格": CandidateStatus.FAILED,
    "未通过": CandidateStatus.FAILED,
    "fail": CandidateStatus.FAILED,
    "failed": CandidateStatus.FAILED,
    "缺考": CandidateStatus.ABSENT,
    "absent": CandidateStatus.ABSENT,
}


class AssessmentError(DomainError):
    """An assessment step cannot be done as asked; the message says why."""


class NotEligible(AssessmentError):
    """Some trainees of a handover have not completed the training; nothing was handed over."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            _("Not eligible (no valid training-completion certificate): %(names)s. Nothing was handed over.")
            % {"names": ", ".join(names)}
        )
        self.names = names


@dataclass(frozen=True)
class ResultProblem:
    line: int
    message: str


class ResultsInvalid(AssessmentError):
    """The results file has problems; every one is listed and nothing was recorded."""

    def __init__(self, problems: list[ResultProblem]) -> None:
        super().__init__(
            _("The results file has %(n)d problem(s); nothing was recorded.") % {"n": len(problems)}
        )
        self.problems = problems


@dataclass(frozen=True)
class ResultsReport:
    passed: int
    failed: int
    absent: int
    retakes: int


# --- who may do what -------------------------------------------------------------------------------------


def assessment_sites() -> list[Institution]:
    """Every assessment site, by code."""
    return list(
        db.session.scalars(
            select(Institution)
            .where(Institution.kind == InstitutionKind.ASSESSMENT_SITE)
            .order_by(Institution.code)
        )
    )


def sites_of(user: User) -> list[Institution]:
    """The assessment sites the user works for: as assessor or admin there, or all for a platform admin."""
    sites = assessment_sites()
    if user.is_platform_admin:
        return sites
    ids = {g.institution_id for g in user.grants if g.role in (Role.ASSESSOR, Role.ADMIN)}
    return [site for site in sites if site.id in ids]


def can_assess(user: User, site: Institution) -> bool:
    """Assessors and admins of the site, and platform admins."""
    return site.kind == InstitutionKind.ASSESSMENT_SITE and any(s.id == site.id for s in sites_of(user))


# --- handover ---------------------------------------------------------------------------------------------


def handed_over_user_ids(cohort: Cohort) -> set[int]:
    """Trainees of the cohort already on a roster."""
    return set(db.session.scalars(select(Candidate.user_id).where(Candidate.cohort_id == cohort.id)))


def candidates_to_hand_over(cohort: Cohort) -> list[tuple[User, Certificate]]:
    """Trainees holding a valid certificate of the cohort and not yet handed over, by username."""
    done = handed_over_user_ids(cohort)
    rows = db.session.execute(
        select(User, Certificate)
        .join(Certificate, Certificate.user_id == User.id)
        .where(Certificate.cohort_id == cohort.id, Certificate.revoked_at.is_(None))
        .order_by(User.username)
    ).all()
    return [(user, certificate) for user, certificate in rows if user.id not in done]


def hand_over(cohort: Cohort, site: Institution, trainees: Iterable[User], actor: User) -> Handover:
    """Hand the trainees over to the assessment site as one roster; every one must hold a valid certificate
    and not be on a roster already, or nothing is handed over."""
    trainees = list({user.id: user for user in trainees}.values())
    if site.kind != InstitutionKind.ASSESSMENT_SITE:
        raise AssessmentError(_("%(name)s is not an assessment site.") % {"name": site.name})
    if not trainees:
        raise AssessmentError(_("Choose at least one trainee to hand over."))
    enrolled = set(db.session.scalars(select(Enrollment.user_id).where(Enrollment.cohort_id == cohort.id)))
    certificates = {user.id: get_certificate(user, cohort) for user in trainees}
    not_eligible = [
        user.real_name
        for user in trainees
        if user.id not in enrolled or certificates[user.id] is None or certificates[user.id].revoked  # type: ignore[union-attr]
    ]
    if not_eligible:
        raise NotEligible(not_eligible)
    already = handed_over_user_ids(cohort)
    twice = [user.real_name for user in trainees if user.id in already]
    if twice:
        raise AssessmentError(
            _("Already handed over: %(names)s. Nothing was handed over.") % {"names": ", ".join(twice)}
        )
    handover = Handover(
        cohort_id=cohort.id, site_id=site.id, handed_over_by_id=actor.id, handed_over_at=utcnow()
    )
    try:
        with db.session.begin_nested():
            db.session.add(handover)
            db.session.flush()
            for user in sorted(trainees, key=lambda u: u.username):
                certificate = certificates[user.id]
                assert certificate is not None
                db.session.add(
                    Candidate(
                        handover_id=handover.id,
                        site_id=site.id,
                        cohort_id=cohort.id,
                        user_id=user.id,
                        certificate_id=certificate.id,
                    )
                )
            db.session.flush()
    except IntegrityError:
        # the same trainee handed over at the same moment by someone else (the database said so)
        raise AssessmentError(_("Some of these trainees were just handed over by someone else.")) from None
    for candidate in db.session.scalars(select(Candidate).where(Candidate.handover_id == handover.id)):
        candidate.number = candidate_number(site, handover.handed_over_at, candidate.id)
    audit.record(
        "assessment.handed_over",
        actor,
        handover,
        cohort=cohort.code,
        site=site.code,
        trainees=sorted(user.username for user in trainees),
    )
    return handover


def candidate_number(site: Institution, at: datetime, candidate_id: int) -> str:
    """The admission number printed on the slip: site, year, and a running number."""
    return f"{site.code}-{at.year}-{candidate_id:06d}"


def rosters_for(site: Institution) -> list[Handover]:
    """The rosters handed to the site, newest first."""
    return list(
        db.session.scalars(
            select(Handover).where(Handover.site_id == site.id).order_by(Handover.handed_over_at.desc())
        )
    )


def candidates_of(site: Institution, status: CandidateStatus | None = None) -> list[Candidate]:
    """The site's candidates (of one status, if given), by number."""
    query = select(Candidate).where(Candidate.site_id == site.id)
    if status is not None:
        query = query.where(Candidate.status == status)
    return list(db.session.scalars(query.order_by(Candidate.id)))


def cohort_candidates(cohort: Cohort) -> list[Candidate]:
    """Every exam attempt of the cohort's trainees, oldest first."""
    return list(
        db.session.scalars(select(Candidate).where(Candidate.cohort_id == cohort.id).order_by(Candidate.id))
    )


def candidates_of_user(user: User) -> list[Candidate]:
    """The user's exam attempts, newest first."""
    return list(
        db.session.scalars(
            select(Candidate).where(Candidate.user_id == user.id).order_by(Candidate.id.desc())
        )
    )


# --- rooms and exam sessions ------------------------------------------------------------------------------


def create_room(site: Institution, code: str, name: str, seats: int, actor: User) -> ExamRoom:
    """Add an exam room to the site."""
    code, name = code.strip(), name.strip()
    if not 1 <= seats <= MAX_ROOM_SEATS:
        raise AssessmentError(_("A room has 1 to %(max)d seats.") % {"max": MAX_ROOM_SEATS})
    taken = db.session.scalar(select(ExamRoom.id).where(ExamRoom.site_id == site.id, ExamRoom.code == code))
    if taken is not None:
        raise AssessmentError(_("This site already has a room %(code)s.") % {"code": code})
    room = ExamRoom(site_id=site.id, code=code, name=name, seats=seats)
    db.session.add(room)
    db.session.flush()
    audit.record("assessment.room_created", actor, room, site=site.code, code=code, seats=seats)
    return room


def rooms_of(site: Institution) -> list[ExamRoom]:
    return list(
        db.session.scalars(select(ExamRoom).where(ExamRoom.site_id == site.id).order_by(ExamRoom.code))
    )


def exam_sessions_of(site: Institution) -> list[ExamSession]:
    """The site's exam sessions, latest first."""
    return list(
        db.session.scalars(
            select(ExamSession).where(ExamSession.site_id == site.id).order_by(ExamSession.starts_at.desc())
        )
    )


def local_to_utc(site: Institution, local: datetime) -> datetime:
    """A wall-clock time at the site as UTC."""
    return local.replace(tzinfo=ZoneInfo(site.timezone)).astimezone(ZoneInfo("UTC"))


def schedule_exam(
    site: Institution,
    room: ExamRoom,
    starts_at: datetime,
    minutes: int,
    candidates: list[Candidate],
    actor: User,
) -> ExamSession:
    """Seat waiting candidates in a new exam session in one of the site's rooms (seats drawn at random, as
    exam rules ask); the room must be free then and have a seat for each."""
    if room.site_id != site.id:
        raise AssessmentError(_("That room is not at this site."))
    if not 15 <= minutes <= 600:
        raise AssessmentError(_("An exam lasts 15 to 600 minutes."))
    if not candidates:
        raise AssessmentError(_("Choose the candidates to seat."))
    if len(candidates) > room.seats:
        raise AssessmentError(
            _("Room %(room)s has %(seats)d seats for %(n)d candidates.")
            % {"room": room.code, "seats": room.seats, "n": len(candidates)}
        )
    wrong = [
        c.number or str(c.id)
        for c in candidates
        if c.site_id != site.id or c.status != CandidateStatus.WAITING
    ]
    if wrong:
        raise AssessmentError(
            _("Not waiting for an exam at this site: %(numbers)s.") % {"numbers": ", ".join(wrong)}
        )
    ends_at = starts_at + timedelta(minutes=minutes)
    clash = db.session.scalar(
        select(ExamSession.id).where(
            ExamSession.room_id == room.id, ExamSession.starts_at < ends_at, ExamSession.ends_at > starts_at
        )
    )
    if clash is not None:
        raise AssessmentError(_("Room %(room)s is taken by another exam at that time.") % {"room": room.code})
    session = ExamSession(
        site_id=site.id, room_id=room.id, starts_at=starts_at, ends_at=ends_at, created_by_id=actor.id
    )
    db.session.add(session)
    db.session.flush()
    seats = random.Random(session.id).sample(range(1, room.seats + 1), len(candidates))
    try:
        with db.session.begin_nested():
            for candidate, seat in zip(sorted(candidates, key=lambda c: c.id), seats, strict=True):
                candidate.exam_session_id, candidate.seat = session.id, seat
                candidate.status = CandidateStatus.SCHEDULED
            db.session.flush()
    except IntegrityError:
        raise AssessmentError(_("Two candidates were given one seat; try again.")) from None
    audit.record(
        "assessment.exam_scheduled",
        actor,
        session,
        room=room.code,
        starts_at=starts_at.isoformat(),
        candidates=[c.number for c in candidates],
    )
    return session


def seated(session: ExamSession) -> list[Candidate]:
    """The session's candidates by seat."""
    return list(
        db.session.scalars(
            select(Candidate).where(Candidate.exam_session_id == session.id).order_by(Candidate.seat)
        )
    )


def admission_slip_pdf(candidate: Candidate) -> bytes:
    """The candidate's admission slip (准考证) as an A5 PDF."""
    from weasyprint import HTML

    session = candidate.exam_session
    if session is None:
        raise AssessmentError(_("This candidate has no exam session yet."))
    zone = ZoneInfo(session.site.timezone)
    html = render_template(
        "lms/assessment/admission_slip_pdf.html",
        candidate=candidate,
        session=session,
        starts=session.starts_at.astimezone(zone),
        ends=session.ends_at.astimezone(zone),
    )
    return HTML(string=html).write_pdf()


# --- results ---------------------------------------------------------------------------------------------


def decode_results(data: bytes) -> str:
    """The text of a results CSV saved as UTF-8 (with or without BOM) or GBK (Excel on Chinese Windows)."""
    for encoding in ("utf-8-sig", "gbk"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ResultsInvalid([ResultProblem(1, _("The file is neither UTF-8 nor GBK text; save it as CSV."))])


def _columns(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    found: dict[str, int] = {}
    for key, accepted in RESULT_COLUMNS.items():
        for index, name in enumerate(names):
            if name in accepted:
                found[key] = index
                break
    return found


def import_results(site: Institution, data: bytes, actor: User) -> ResultsReport:
    """Record the exam results of the site's seated candidates from the national exam's CSV: every row is
    checked first and any problem (listed with its line) records nothing. A fail or an absence opens a
    retake."""
    if len(data) > MAX_RESULTS_BYTES:
        raise ResultsInvalid([ResultProblem(1, _("The file is larger than 2 MB."))])
    rows = list(csv.reader(io.StringIO(decode_results(data))))
    if not rows:
        raise ResultsInvalid([ResultProblem(1, _("The file is empty."))])
    columns = _columns(rows[0])
    missing = [RESULT_COLUMNS[key][0] for key in ("number", "name", "result") if key not in columns]
    if missing:
        raise ResultsInvalid(
            [ResultProblem(1, _("Missing column(s): %(names)s.") % {"names": ", ".join(missing)})]
        )
    by_number = {c.number: c for c in candidates_of(site) if c.number}
    problems: list[ResultProblem] = []
    seen: dict[str, int] = {}
    updates: list[tuple[Candidate, CandidateStatus, float | None, str]] = []

    def cell(row: list[str], key: str) -> str:
        index = columns.get(key)
        return row[index].strip() if index is not None and index < len(row) else ""

    for line, row in enumerate(rows[1:], start=2):
        if not any(value.strip() for value in row):
            continue
        number, name = cell(row, "number"), cell(row, "name")
        if number in seen:
            problems.append(
                ResultProblem(
                    line,
                    _("Candidate %(number)s is also on line %(first)d.")
                    % {"number": number, "first": seen[number]},
                )
            )
            continue
        seen[number] = line
        candidate = by_number.get(number)
        if candidate is None:
            problems.append(
                ResultProblem(line, _("No candidate %(number)s at this site.") % {"number": number or "—"})
            )
            continue
        if name != candidate.user.real_name:
            problems.append(
                ResultProblem(
                    line,
                    _("Candidate %(number)s is %(name)s, not %(given)s.")
                    % {"number": number, "name": candidate.user.real_name, "given": name},
                )
            )
        if candidate.status != CandidateStatus.SCHEDULED:
            problems.append(
                ResultProblem(
                    line,
                    _("Candidate %(number)s was not seated in an exam, or has a result already.")
                    % {"number": number},
                )
            )
        status = RESULT_WORDS.get(cell(row, "result").lower())
        if status is None:
            problems.append(
                ResultProblem(
                    line,
                    _("Result %(value)s is not one of 合格 / 不合格 / 缺考 (pass / fail / absent).")
                    % {"value": cell(row, "result") or "—"},
                )
            )
            continue
        raw_score = cell(row, "score")
        score: float | None = None
        if raw_score:
            try:
                score = float(raw_score)
            except ValueError:
                score = -1
            if not 0 <= score <= 100:
                problems.append(
                    ResultProblem(
                        line, _("Score %(value)s is not a number from 0 to 100.") % {"value": raw_score}
                    )
                )
        certificate_no = cell(row, "certificate")
        if status == CandidateStatus.PASSED and not certificate_no:
            problems.append(ResultProblem(line, _("A pass needs the level certificate's number.")))
        updates.append((candidate, status, score, certificate_no))
    if not updates and not problems:
        problems.append(ResultProblem(1, _("The file has no result rows.")))
    if problems:
        raise ResultsInvalid(problems)
    now = utcnow()
    counts = {CandidateStatus.PASSED: 0, CandidateStatus.FAILED: 0, CandidateStatus.ABSENT: 0}
    retakes = 0
    for candidate, status, score, certificate_no in updates:
        candidate.status, candidate.score, candidate.result_recorded_at = status, score, now
        candidate.level_certificate_no = certificate_no if status == CandidateStatus.PASSED else ""
        counts[status] += 1
        if status != CandidateStatus.PASSED:
            retakes += 1
            db.session.add(
                Candidate(
                    handover_id=candidate.handover_id,
                    site_id=candidate.site_id,
                    cohort_id=candidate.cohort_id,
                    user_id=candidate.user_id,
                    certificate_id=candidate.certificate_id,
                    attempt=candidate.attempt + 1,
                    retake_of_id=candidate.id,
                )
            )
    db.session.flush()
    for retake in db.session.scalars(
        select(Candidate).where(Candidate.site_id == site.id, Candidate.number.is_(None))
    ):
        retake.number = candidate_number(site, now, retake.id)
    audit.record(
        "assessment.results_imported",
        actor,
        site,
        passed=counts[CandidateStatus.PASSED],
        failed=counts[CandidateStatus.FAILED],
        absent=counts[CandidateStatus.ABSENT],
        candidates=[candidate.number for candidate, *_ in updates],
    )
    return ResultsReport(
        counts[CandidateStatus.PASSED],
        counts[CandidateStatus.FAILED],
        counts[CandidateStatus.ABSENT],
        retakes,
    )


def waiting_count(site: Institution) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                Candidate.site_id == site.id, Candidate.status == CandidateStatus.WAITING
            )
        )
        or 0
    )
