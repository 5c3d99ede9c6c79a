"""Bulk import of trainees from CSV: every row is checked first, then all are created, or none.

The file needs a header row naming the columns ``username, real_name, email, phone, employer, cohort``
(in any order). It may be UTF-8 (with or without the BOM Excel writes for "CSV UTF-8") or GBK/GB18030,
which is what Excel writes on Chinese Windows. Imported accounts have no password: they cannot sign in
until an administrator sets one, so nothing secret is ever printed or shown.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, func, select

from lms.extensions import db
from lms.models import Cohort, Institution, InstitutionKind, Role, User
from lms.services import DomainError, accounts, audit
from lms.services import cohorts as cohort_service

COLUMNS: tuple[str, ...] = ("username", "real_name", "email", "phone", "employer", "cohort")
EXAMPLE_ROW: tuple[str, ...] = (
    "zhangsan",
    "张三",
    "zhangsan@example.com",
    "13800138000",
    "示例科技有限公司",
    "AIET-P-2025-01",
)
# The widths of the columns in the database (lms_user); longer values would fail on PostgreSQL.
MAX_REAL_NAME = 100
MAX_PHONE = 32
MAX_EMPLOYER = 200
_QUERY_CHUNK = 500  # stay below SQLite's limit on bound parameters


@dataclass(frozen=True)
class Problem:
    """Why the file cannot be imported: ``row`` is the 1-based line in the file (None: the whole file)."""

    row: int | None
    message: str


class ImportRejected(DomainError):
    """The file has problems; nothing was imported."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(_("Nothing was imported: %(n)d problem(s).", n=len(problems)))
        self.problems = problems


@dataclass(frozen=True)
class PlannedUser:
    """One valid row: the account it creates and where the trainee role and enrollment go."""

    row: int
    username: str
    real_name: str
    email: str
    phone: str
    employer: str
    cohort_code: str
    institution_code: str


@dataclass
class ImportResult:
    """What was (or, in a dry run, would be) done."""

    created: int
    enrolled: int
    usernames: list[str] = field(default_factory=list)
    users: list[PlannedUser] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]


def import_users_csv(
    data: bytes,
    *,
    actor: User | None,
    dry_run: bool,
    institution_code: str | None,
    max_bytes: int,
    max_rows: int,
) -> ImportResult:
    """Check every row of a CSV file of trainees, then create, grant and enroll them all.

    Raises ImportRejected with every problem found; the check runs before any write, so nothing is
    written then. (Should a write still fail, e.g. a username taken meanwhile, ImportRejected names that
    row and the caller's rollback undoes the rows already flushed.) A dry run writes nothing and says
    what would happen. Flushes, never commits.
    """
    rows = _read_rows(data, max_bytes=max_bytes, max_rows=max_rows)
    institution = _institution(institution_code, actor)
    plan, cohorts_by_code = _check_rows(rows, institution, actor)
    enrollments = sum(1 for planned in plan if planned.cohort_code)
    result = ImportResult(
        created=len(plan),
        enrolled=enrollments,
        usernames=[planned.username for planned in plan],
        users=plan,
        dry_run=dry_run,
    )
    if dry_run:
        return result
    institutions_by_code = {c.training_base.code: c.training_base for c in cohorts_by_code.values()}
    if institution is not None:
        institutions_by_code[institution.code] = institution
    for planned in plan:
        try:
            user = accounts.create_user(
                username=planned.username,
                real_name=planned.real_name,
                password=None,
                email=planned.email,
                phone=planned.phone,
                employer=planned.employer,
                grants=[(Role.TRAINEE, institutions_by_code[planned.institution_code])],
                actor=actor,
            )
            if planned.cohort_code:
                cohort_service.enroll(user, cohorts_by_code[planned.cohort_code], actor)
        except DomainError as exc:  # e.g. someone took the username since the check
            raise ImportRejected([Problem(planned.row, str(exc))]) from exc
    audit.record(
        "users.imported",
        actor,
        None,
        created=result.created,
        enrolled=result.enrolled,
        usernames=result.usernames,
        institution=institution_code,
    )
    return result


def decode(data: bytes) -> str:
    """The text of an uploaded file: UTF-8 (BOM or not), else GB18030 (a superset of GBK)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportRejected(
            [
                Problem(
                    None,
                    _(
                        "The file is UTF-16 text. "
                        'Save it from Excel as "CSV UTF-8" or "CSV (comma delimited)".'
                    ),
                )
            ]
        )
    if data.startswith(b"PK\x03\x04"):
        raise ImportRejected(
            [
                Problem(
                    None,
                    _('The file is an Excel workbook, not CSV. Save it from Excel as "CSV UTF-8" first.'),
                )
            ]
        )
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError:
            continue
    raise ImportRejected(
        [
            Problem(
                None,
                _('The file is neither UTF-8 nor GBK text. Save it from Excel as "CSV UTF-8" and try again.'),
            )
        ]
    )


def _read_rows(data: bytes, *, max_bytes: int, max_rows: int) -> list[_Row]:
    """Decode and parse the file, check its header, and return the non-blank data rows."""
    if len(data) > max_bytes:
        raise ImportRejected(
            [
                Problem(
                    None,
                    _(
                        "The file is %(size)s; at most %(limit)s is allowed.",
                        size=_size(len(data)),
                        limit=_size(max_bytes),
                    ),
                )
            ]
        )
    text = decode(data)
    if not text.strip():
        raise ImportRejected([Problem(None, _("The file is empty."))])
    lines = _lines(text)
    first = next(lines, None)
    if first is None:  # only blank lines or empty cells
        raise ImportRejected([Problem(None, _("The file is empty."))])
    header_line, header = first[0], [name.strip().lower() for name in first[1]]
    while header and not header[-1]:
        header.pop()  # Excel sometimes writes empty trailing columns
    _check_header(header_line, header)
    rows: list[_Row] = []
    problems: list[Problem] = []
    for line, cells in lines:
        if len(cells) > len(header) and not any(c.strip() for c in cells[len(header) :]):
            cells = cells[: len(header)]
        if len(cells) != len(header):
            problems.append(
                Problem(
                    line,
                    _(
                        "The row has %(found)d column(s); the header has %(expected)d.",
                        found=len(cells),
                        expected=len(header),
                    ),
                )
            )
            continue
        rows.append(_Row(line, {name: value.strip() for name, value in zip(header, cells, strict=True)}))
    if not rows and not problems:
        raise ImportRejected([Problem(None, _("The file has a header row but no users."))])
    if len(rows) + len(problems) > max_rows:
        raise ImportRejected(
            [
                Problem(
                    None,
                    _(
                        "The file has %(n)d rows; at most %(limit)d can be imported at once. "
                        "Split it into smaller files.",
                        n=len(rows) + len(problems),
                        limit=max_rows,
                    ),
                )
            ]
        )
    if problems:
        raise ImportRejected(problems)
    return rows


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the file line each starts on (quoted fields may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportRejected(
                [Problem(reader.line_num, _("The line is not valid CSV (%(reason)s).", reason=str(exc)))]
            ) from exc
        if any(cell.strip() for cell in cells):
            yield start, cells
        start = reader.line_num + 1


def _check_header(line: int, header: list[str]) -> None:
    missing = [name for name in COLUMNS if name not in header]
    unexpected = [name or _("(empty)") for name in header if name not in COLUMNS]
    repeated = sorted({name for name in header if name in COLUMNS and header.count(name) > 1})
    if not (missing or unexpected or repeated):
        return
    details = []
    if missing:
        details.append(_("missing: %(columns)s", columns=", ".join(missing)))
    if unexpected:
        details.append(_("unexpected: %(columns)s", columns=", ".join(unexpected)))
    if repeated:
        details.append(_("repeated: %(columns)s", columns=", ".join(repeated)))
    raise ImportRejected(
        [
            Problem(
                line,
                _(
                    "The header row must name the columns %(expected)s (%(details)s).",
                    expected=", ".join(COLUMNS),
                    details="; ".join(details),
                ),
            )
        ]
    )


def _institution(code: str | None, actor: User | None) -> Institution | None:
    """The training base given for every row's trainee role, or None when none was given."""
    if not code:
        return None
    institution = db.session.scalar(select(Institution).where(Institution.code == code.strip()))
    if institution is None:
        raise ImportRejected([Problem(None, _("There is no institution with code '%(code)s'.", code=code))])
    if institution.kind != InstitutionKind.TRAINING_BASE:
        raise ImportRejected(
            [
                Problem(
                    None,
                    _(
                        "Institution '%(code)s' is not a training base; trainees belong to a training base.",
                        code=code,
                    ),
                )
            ]
        )
    if actor is not None and not _administers(actor, institution.id):
        raise ImportRejected([Problem(None, _("You do not administer institution '%(code)s'.", code=code))])
    return institution


def _administers(actor: User, institution_id: int) -> bool:
    return actor.is_platform_admin or any(
        g.role == Role.ADMIN and g.institution_id == institution_id for g in actor.grants
    )


def _check_rows(
    rows: list[_Row], institution: Institution | None, actor: User | None
) -> tuple[list[PlannedUser], dict[str, Cohort]]:
    """Every problem of every row, or the plan: one PlannedUser per row."""
    usernames = {row.values["username"].lower() for row in rows}
    emails = {row.values["email"].lower() for row in rows if row.values["email"]}
    taken_usernames = set(
        _chunked_scalars(lambda chunk: select(User.username).where(User.username.in_(chunk)), usernames)
    )
    taken_emails = {
        e.lower()
        for e in _chunked_scalars(
            lambda chunk: select(User.email).where(func.lower(User.email).in_(chunk)), emails
        )
        if e
    }
    cohorts_by_code = {
        c.code: c
        for c in _chunked_scalars(
            lambda chunk: select(Cohort).where(Cohort.code.in_(chunk)),
            {row.values["cohort"] for row in rows if row.values["cohort"]},
        )
    }
    first_line_of_username: dict[str, int] = {}
    first_line_of_email: dict[str, int] = {}
    problems: list[Problem] = []
    plan: list[PlannedUser] = []
    for row in rows:
        v = row.values
        username, email, cohort_code = v["username"].lower(), v["email"], v["cohort"]
        row_problems: list[str] = []

        problem = accounts.username_problem(username)
        if problem:
            row_problems.append(problem)
        elif username in first_line_of_username:
            row_problems.append(
                _(
                    "Username '%(username)s' also appears on line %(line)d.",
                    username=username,
                    line=first_line_of_username[username],
                )
            )
        elif username in taken_usernames:
            row_problems.append(_("Username '%(username)s' is already taken.", username=username))
        first_line_of_username.setdefault(username, row.line)

        if not v["real_name"]:
            row_problems.append(_("Real name is required."))
        elif len(v["real_name"]) > MAX_REAL_NAME:
            row_problems.append(_("Real name is longer than %(n)d characters.", n=MAX_REAL_NAME))

        problem = accounts.email_problem(email)
        if problem:
            row_problems.append(problem)
        elif email and email.lower() in first_line_of_email:
            row_problems.append(
                _(
                    "E-mail address '%(email)s' also appears on line %(line)d.",
                    email=email,
                    line=first_line_of_email[email.lower()],
                )
            )
        elif email and email.lower() in taken_emails:
            row_problems.append(_("E-mail address '%(email)s' is already in use.", email=email))
        if email:
            first_line_of_email.setdefault(email.lower(), row.line)

        problem = accounts.phone_problem(v["phone"])
        if problem:
            row_problems.append(problem)
        elif len(v["phone"]) > MAX_PHONE:
            row_problems.append(_("Phone number is longer than %(n)d characters.", n=MAX_PHONE))
        if len(v["employer"]) > MAX_EMPLOYER:
            row_problems.append(_("Employer is longer than %(n)d characters.", n=MAX_EMPLOYER))

        cohort = cohorts_by_code.get(cohort_code) if cohort_code else None
        if cohort_code and cohort is None:
            row_problems.append(_("There is no cohort with code '%(code)s'.", code=cohort_code))
        elif cohort is not None and actor is not None and not _administers(actor, cohort.training_base_id):
            row_problems.append(_("You do not administer cohort '%(code)s'.", code=cohort_code))
        elif not cohort_code and institution is None:
            row_problems.append(
                _(
                    "The cohort is empty and no institution was given, so there is nowhere to grant the "
                    "trainee role."
                )
            )

        if row_problems:
            problems.extend(Problem(row.line, message) for message in row_problems)
            continue
        base = institution if institution is not None else cohort.training_base if cohort else None
        assert base is not None  # a row with neither was reported above
        plan.append(
            PlannedUser(
                row=row.line,
                username=username,
                real_name=v["real_name"],
                email=email,
                phone=v["phone"],
                employer=v["employer"],
                cohort_code=cohort_code,
                institution_code=base.code,
            )
        )
    if problems:
        raise ImportRejected(problems)
    return plan, cohorts_by_code


def _chunked_scalars(query: Callable[[list[str]], Select[Any]], values: Iterable[str]) -> list[Any]:
    """The results of ``query`` for every chunk of ``values`` (one IN list per chunk)."""
    ordered = sorted(values)
    found: list[Any] = []
    for start in range(0, len(ordered), _QUERY_CHUNK):
        found.extend(db.session.scalars(query(ordered[start : start + _QUERY_CHUNK])))
    return found


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"
