"""Lab reports: attendance per trainee and cohort, no-shows, and seat use per room.

Queries only: no request, no commit. A *no-show* is a trainee who held a seat (booking state
``booked``) in a meeting that has ended and was neither marked present (attended or late) nor excused;
a trainee marked absent is therefore a no-show as well. Places on the waiting list are never no-shows.
"""

from __future__ import annotations

import csv
import enum
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import case, func, select

from labs.models import (
    Attendance,
    Booking,
    BookingState,
    LabOccurrence,
    LabSession,
    OccurrenceStatus,
    Room,
    Site,
)
from lms.extensions import db
from lms.models import Cohort, CourseUnit, Enrollment, EnrollmentStatus, Role, User
from lms.services import DomainError
from lms.services.progress import localized
from lms.timeutil import utcnow


def lab_titles(sessions: Iterable[LabSession], locale: str) -> dict[int, str]:
    """Session id -> what people call the lab: the session's own title, else the title of its course
    unit in the locale (from the cohort's course version), else the unit key."""
    sessions = list(sessions)
    keys: dict[int, tuple[int, str]] = {
        s.id: (s.cohort.course_version_id, s.unit_key) for s in sessions if s.cohort.course_version_id
    }
    found: dict[tuple[int, str], str] = {}
    if keys:
        rows = db.session.execute(
            select(CourseUnit.version_id, CourseUnit.key, CourseUnit.title).where(
                CourseUnit.version_id.in_({v for v, _k in keys.values()}),
                CourseUnit.key.in_({k for _v, k in keys.values()}),
            )
        ).all()
        found = {(v, k): localized(t, locale) for v, k, t in rows}
    return {s.id: s.title or found.get(keys.get(s.id, (0, "")), "") or s.unit_key for s in sessions}


class Mark(enum.StrEnum):
    """What one cell of the attendance grid says."""

    ATTENDED = "attended"
    LATE = "late"
    ABSENT = "absent"
    EXCUSED = "excused"
    NO_SHOW = "no_show"  # held a seat, the meeting ended, nothing recorded
    BOOKED = "booked"  # holds a seat; the meeting has not ended (or attendance is not taken yet)
    WAITLISTED = "waitlisted"
    NONE = "none"  # no place (never booked, or cancelled)


@dataclass
class Totals:
    booked: int = 0  # seats held
    attended: int = 0
    late: int = 0
    absent: int = 0
    excused: int = 0
    no_show: int = 0

    @property
    def present(self) -> int:
        return self.attended + self.late

    def add(self, cell: Cell) -> None:
        self.booked += cell.held_seat
        self.no_show += cell.no_show
        if cell.attendance is not None:
            setattr(self, cell.attendance.value, getattr(self, cell.attendance.value) + 1)


@dataclass(frozen=True)
class Cell:
    mark: Mark
    attendance: Attendance | None = None
    held_seat: bool = False
    no_show: bool = False


EMPTY = Cell(Mark.NONE)


@dataclass(frozen=True)
class Column:
    occurrence: LabOccurrence
    local_start: datetime  # in the site's zone
    local_end: datetime
    ended: bool


@dataclass
class TraineeRow:
    user: User
    status: EnrollmentStatus
    cells: list[Cell]
    totals: Totals = field(default_factory=Totals)


@dataclass
class AttendanceReport:
    cohort: Cohort
    columns: list[Column]
    rows: list[TraineeRow]
    column_totals: list[Totals]
    totals: Totals


def classify(booking: Booking | None, ended: bool) -> Cell:
    """The grid cell of one trainee in one meeting."""
    if booking is None:
        return EMPTY
    held = booking.state == BookingState.BOOKED
    attendance = booking.attendance
    no_show = held and ended and attendance in (None, Attendance.ABSENT)
    if attendance is not None:
        return Cell(Mark(attendance.value), attendance, held, no_show)
    if no_show:
        return Cell(Mark.NO_SHOW, None, held, True)
    if held:
        return Cell(Mark.BOOKED, None, True)
    if booking.state == BookingState.WAITLISTED:
        return Cell(Mark.WAITLISTED)
    return EMPTY


def cohort_occurrences(cohort: Cohort) -> list[LabOccurrence]:
    """The cohort's lab meetings that were not cancelled, in time order."""
    return list(
        db.session.scalars(
            select(LabOccurrence)
            .join(LabSession, LabSession.id == LabOccurrence.session_id)
            .where(LabSession.cohort_id == cohort.id, LabOccurrence.status == OccurrenceStatus.SCHEDULED)
            .order_by(LabOccurrence.starts_at, LabOccurrence.id)
        )
    )


def cohort_attendance(cohort: Cohort, now: datetime | None = None) -> AttendanceReport:
    """The trainee × meeting grid of a cohort with totals per trainee, per meeting and overall.

    Rows: every trainee enrolled and not withdrawn, plus withdrawn trainees who hold any record in the
    cohort's meetings (their history stays visible).
    """
    now = now or utcnow()
    occurrences = cohort_occurrences(cohort)
    columns = []
    for occurrence in occurrences:
        zone = ZoneInfo(occurrence.room.site.timezone)
        columns.append(
            Column(
                occurrence,
                occurrence.starts_at.astimezone(zone),
                occurrence.ends_at.astimezone(zone),
                occurrence.ends_at <= now,
            )
        )
    bookings: dict[tuple[int, int], Booking] = {}
    if occurrences:
        for booking in db.session.scalars(
            select(Booking).where(Booking.occurrence_id.in_([o.id for o in occurrences]))
        ):
            bookings[(booking.user_id, booking.occurrence_id)] = booking
    with_records = {
        user_id
        for (user_id, _o), b in bookings.items()
        if b.state != BookingState.CANCELLED or b.attendance is not None
    }
    enrollments = db.session.scalars(select(Enrollment).where(Enrollment.cohort_id == cohort.id)).all()
    rows = []
    for enrollment in sorted(enrollments, key=lambda e: (e.user.real_name, e.user.username)):
        if enrollment.status == EnrollmentStatus.WITHDRAWN and enrollment.user_id not in with_records:
            continue
        cells = [classify(bookings.get((enrollment.user_id, c.occurrence.id)), c.ended) for c in columns]
        row = TraineeRow(enrollment.user, enrollment.status, cells)
        for cell in cells:
            row.totals.add(cell)
        rows.append(row)
    column_totals = [Totals() for _c in columns]
    overall = Totals()
    for row in rows:
        for index, cell in enumerate(row.cells):
            column_totals[index].add(cell)
            overall.add(cell)
    return AttendanceReport(cohort, columns, rows, column_totals, overall)


# --- seat use per room ---------------------------------------------------------------------------------


def administered_rooms(user: User) -> list[Room]:
    """Rooms at sites of the institutions the user administers (every room for a platform admin)."""
    query = select(Room).join(Site).order_by(Site.code, Room.code)
    if not user.is_platform_admin:
        scope = {g.institution_id for g in user.grants if g.role == Role.ADMIN and g.institution_id}
        query = query.where(Site.institution_id.in_(scope))
    return list(db.session.scalars(query))


def can_administer_room(user: User, room: Room) -> bool:
    """Admins of the room's training base, and platform admins."""
    return user.is_platform_admin or any(
        g.role == Role.ADMIN and g.institution_id == room.site.institution_id for g in user.grants
    )


MAX_REPORT_DAYS = 366


class InvalidPeriod(DomainError):
    """A report period that cannot be shown (end before start, too long)."""


@dataclass(frozen=True)
class MeetingUse:
    occurrence: LabOccurrence
    local_start: datetime
    local_end: datetime
    seats: int
    booked: int
    present: int

    @property
    def share(self) -> float:
        return self.booked / self.seats if self.seats else 0.0


@dataclass(frozen=True)
class WeekUse:
    monday: date
    meetings: int
    seats: int  # seats offered over the week's meetings
    booked: int

    @property
    def share(self) -> float | None:
        """Booked seats over seats offered in the week (None: no meetings that week)."""
        return self.booked / self.seats if self.seats else None


@dataclass(frozen=True)
class SeatUseReport:
    room: Room
    first_day: date
    last_day: date
    meetings: list[MeetingUse]
    weeks: list[WeekUse]

    @property
    def seats(self) -> int:
        return sum(m.seats for m in self.meetings)

    @property
    def booked(self) -> int:
        return sum(m.booked for m in self.meetings)

    @property
    def share(self) -> float | None:
        return self.booked / self.seats if self.seats else None


def check_period(first_day: date, last_day: date) -> None:
    """Raise InvalidPeriod saying what is wrong with the period."""
    if last_day < first_day:
        raise InvalidPeriod(_("The period ends before it starts."))
    if (last_day - first_day).days + 1 > MAX_REPORT_DAYS:
        raise InvalidPeriod(_("Choose a period of at most %(days)d days.", days=MAX_REPORT_DAYS))


def room_seat_use(room: Room, first_day: date, last_day: date) -> SeatUseReport:
    """Booked seats per meeting (cancelled meetings left out) and per week, days in the site's zone."""
    check_period(first_day, last_day)
    zone = ZoneInfo(room.site.timezone)
    start = datetime.combine(first_day, time(0), zone)
    end = datetime.combine(last_day + timedelta(days=1), time(0), zone)
    counts = (
        select(
            Booking.occurrence_id,
            func.sum(case((Booking.state == BookingState.BOOKED, 1), else_=0)).label("booked"),
            func.sum(
                case((Booking.attendance.in_([Attendance.ATTENDED, Attendance.LATE]), 1), else_=0)
            ).label("present"),
        )
        .group_by(Booking.occurrence_id)
        .subquery()
    )
    rows = db.session.execute(
        select(LabOccurrence, func.coalesce(counts.c.booked, 0), func.coalesce(counts.c.present, 0))
        .outerjoin(counts, counts.c.occurrence_id == LabOccurrence.id)
        .where(
            LabOccurrence.room_id == room.id,
            LabOccurrence.status == OccurrenceStatus.SCHEDULED,
            LabOccurrence.starts_at >= start,
            LabOccurrence.starts_at < end,
        )
        .order_by(LabOccurrence.starts_at, LabOccurrence.id)
    ).all()
    meetings = [
        MeetingUse(o, o.starts_at.astimezone(zone), o.ends_at.astimezone(zone), o.seats, int(b), int(p))
        for o, b, p in rows
    ]
    return SeatUseReport(room, first_day, last_day, meetings, weekly(meetings, first_day, last_day))


def weekly(meetings: Iterable[MeetingUse], first_day: date, last_day: date) -> list[WeekUse]:
    """One entry per ISO week (Monday first) of the period, weeks without meetings included."""
    by_week: dict[date, list[MeetingUse]] = defaultdict(list)
    for meeting in meetings:
        day = meeting.local_start.date()
        by_week[day - timedelta(days=day.weekday())].append(meeting)
    monday = first_day - timedelta(days=first_day.weekday())
    weeks = []
    while monday <= last_day:
        these = by_week.get(monday, [])
        weeks.append(WeekUse(monday, len(these), sum(m.seats for m in these), sum(m.booked for m in these)))
        monday += timedelta(days=7)
    return weeks


# --- CSV -----------------------------------------------------------------------------------------------


def _safe(value: object) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """CSV text for spreadsheets: UTF-8 byte order mark first (Excel reads Chinese right), CRLF rows."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_safe(v) for v in header])
    for row in rows:
        writer.writerow([_safe(v) for v in row])
    return out.getvalue()
