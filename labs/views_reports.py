"""Lab reports: attendance per cohort (grid, totals, no-shows) and seat use per room, with CSV exports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from labs import reports
from labs.models import Room
from lms import access
from lms.extensions import db
from lms.i18n import current_locale
from lms.models import Cohort, Role
from lms.services import cohorts as cohort_service
from lms.timeutil import utcnow

bp = Blueprint("labs_reports", __name__, url_prefix="/labs/reports", template_folder="templates")

WEEKS_BEFORE, WEEKS_AFTER = 8, 4


def mark_labels() -> dict[str, str]:
    """How a grid cell reads (page and CSV)."""
    return {
        reports.Mark.ATTENDED: _("Attended"),
        reports.Mark.LATE: _("Late"),
        reports.Mark.ABSENT: _("Absent"),
        reports.Mark.EXCUSED: _("Excused"),
        reports.Mark.NO_SHOW: _("No-show"),
        reports.Mark.BOOKED: _("Booked"),
        reports.Mark.WAITLISTED: _("Waiting list"),
        reports.Mark.NONE: "—",
    }


def status_labels() -> dict[str, str]:
    return {"active": _("Active"), "withdrawn": _("Withdrawn"), "completed": _("Completed")}


def get_cohort_or_404(cohort_id: int) -> Cohort:
    """The cohort, for its trainers and the admins of its training base; 404 for everyone else."""
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    return cohort


def get_room_or_404(room_id: int) -> Room:
    room = db.session.get(Room, room_id)
    if room is None or not reports.can_administer_room(current_user, room):
        abort(404)
    return room


def csv_response(text: str, filename: str) -> Response:
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    response = Response(text.encode("utf-8"), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def bad_request(message: str) -> Any:
    return render_template("lms/error.html", status=400, message=message), 400


@bp.route("/")
@access.roles(Role.ADMIN, Role.TRAINER)
def list_reports():
    cohorts = [
        c
        for c in cohort_service.visible_cohorts(current_user)
        if cohort_service.can_manage_cohort(current_user, c)
    ]
    rooms = reports.administered_rooms(current_user) if current_user.has_role(Role.ADMIN) else []
    return render_template("labs/reports/index.html", cohorts=cohorts, rooms=rooms)


# --- attendance ----------------------------------------------------------------------------------------


@bp.route("/cohorts/<int:cohort_id>")
@access.roles(Role.ADMIN, Role.TRAINER)
def show_cohort_attendance(cohort_id: int):
    cohort = get_cohort_or_404(cohort_id)
    report = reports.cohort_attendance(cohort)
    titles = reports.lab_titles({c.occurrence.session for c in report.columns}, current_locale())
    return render_template(
        "labs/reports/cohort.html",
        cohort=cohort,
        report=report,
        titles=titles,
        marks=mark_labels(),
        statuses=status_labels(),
    )


@bp.route("/cohorts/<int:cohort_id>/attendance.csv")
@access.roles(Role.ADMIN, Role.TRAINER)
def export_cohort_attendance(cohort_id: int):
    cohort = get_cohort_or_404(cohort_id)
    report = reports.cohort_attendance(cohort)
    titles = reports.lab_titles({c.occurrence.session for c in report.columns}, current_locale())
    marks, statuses = mark_labels(), status_labels()
    totals_header = [_("Booked"), _("Attended"), _("Late"), _("Absent"), _("Excused"), _("No-shows")]
    header = [
        _("Username"),
        _("Real name"),
        _("Employer"),
        _("Status"),
        *(f"{c.local_start:%Y-%m-%d %H:%M} {titles[c.occurrence.session_id]}" for c in report.columns),
        *totals_header,
    ]

    def counts(t: reports.Totals) -> list[int]:
        return [t.booked, t.attended, t.late, t.absent, t.excused, t.no_show]

    rows: list[list[Any]] = [
        [
            row.user.username,
            row.user.real_name,
            row.user.employer,
            statuses[row.status.value],
            *(marks[cell.mark] for cell in row.cells),
            *counts(row.totals),
        ]
        for row in report.rows
    ]
    rows.append(
        [
            "",
            _("Present (all trainees)"),
            "",
            "",
            *(t.present for t in report.column_totals),
            *counts(report.totals),
        ]
    )
    return csv_response(reports.to_csv(header, rows), f"attendance-{cohort.code}.csv")


# --- seat use ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    label: str
    text: str  # what the bar says, for its tooltip / accessible name
    show_label: bool


CHART_HEIGHT = 150  # the plot area; 100 % reaches the top
CHART_TOP, BAR_WIDTH, BAR_GAP, AXIS = 12, 26, 14, 44


def chart(weeks: list[reports.WeekUse]) -> dict[str, Any]:
    """Geometry of the weekly seat-use bar chart (an SVG the template draws)."""
    step = BAR_WIDTH + BAR_GAP
    label_every = max(1, -(-len(weeks) // 14))  # at most ~14 labels under the bars
    bars = []
    for index, week in enumerate(weeks):
        share = min(week.share or 0.0, 1.0)
        height = share * CHART_HEIGHT
        if week.share is None:
            text = _("Week of %(day)s: no lab meetings", day=week.monday.isoformat())
        else:
            text = _(
                "Week of %(day)s: %(share).0f%% of seats booked (%(booked)d of %(seats)d)",
                day=week.monday.isoformat(),
                share=100 * week.share,
                booked=week.booked,
                seats=week.seats,
            )
        bars.append(
            Bar(
                x=AXIS + BAR_GAP / 2 + index * step,
                y=CHART_TOP + CHART_HEIGHT - height,
                height=height,
                label=f"{week.monday:%m-%d}",
                text=text,
                show_label=index % label_every == 0,
            )
        )
    width = AXIS + step * max(len(weeks), 1) + BAR_GAP
    return {
        "bars": bars,
        "width": width,
        "height": CHART_TOP + CHART_HEIGHT + 34,
        "top": CHART_TOP,
        "plot": CHART_HEIGHT,
        "axis": AXIS,
        "bar_width": BAR_WIDTH,
        "gridlines": [(p, CHART_TOP + CHART_HEIGHT * (1 - p / 100)) for p in (0, 25, 50, 75, 100)],
    }


def _seat_use(room: Room) -> reports.SeatUseReport | str:
    """The room's report for the period in ?from=&to= (ISO dates; by default the last eight weeks and
    the next four), or a message saying what is wrong with the period."""
    today = utcnow().astimezone(ZoneInfo(room.site.timezone)).date()
    monday = today - timedelta(days=today.weekday())
    days = []
    for name, default in (
        ("from", monday - timedelta(weeks=WEEKS_BEFORE)),
        ("to", monday + timedelta(weeks=WEEKS_AFTER, days=6)),
    ):
        raw = request.args.get(name, "").strip()
        try:
            days.append(date.fromisoformat(raw) if raw else default)
        except ValueError:
            return _("'%(value)s' is not a date; use the form YYYY-MM-DD.", value=raw[:40])
    try:
        return reports.room_seat_use(room, days[0], days[1])
    except reports.InvalidPeriod as exc:
        return str(exc)


@bp.route("/rooms/<int:room_id>")
@access.roles(Role.ADMIN)
def show_room_seat_use(room_id: int):
    room = get_room_or_404(room_id)
    report = _seat_use(room)
    if isinstance(report, str):
        return bad_request(report)
    titles = reports.lab_titles({m.occurrence.session for m in report.meetings}, current_locale())
    return render_template(
        "labs/reports/room.html", room=room, report=report, titles=titles, chart=chart(report.weeks)
    )


@bp.route("/rooms/<int:room_id>/seat-use.csv")
@access.roles(Role.ADMIN)
def export_room_seat_use(room_id: int):
    room = get_room_or_404(room_id)
    report = _seat_use(room)
    if isinstance(report, str):
        return bad_request(report)
    titles = reports.lab_titles({m.occurrence.session for m in report.meetings}, current_locale())
    header = [
        _("Week of"),
        _("Date"),
        _("Start"),
        _("End"),
        _("Cohort"),
        _("Lab"),
        _("Seats"),
        _("Booked"),
        _("Seat use (%)"),
        _("Present"),
    ]

    def week_of(moment: datetime) -> str:
        day = moment.date()
        return (day - timedelta(days=day.weekday())).isoformat()

    rows = [
        [
            week_of(m.local_start),
            m.local_start.date().isoformat(),
            f"{m.local_start:%H:%M}",
            f"{m.local_end:%H:%M}",
            m.occurrence.session.cohort.code,
            titles[m.occurrence.session_id],
            m.seats,
            m.booked,
            f"{100 * m.share:.1f}",
            m.present,
        ]
        for m in report.meetings
    ]
    filename = f"seat-use-{room.code}-{report.first_day}-{report.last_day}.csv"
    return csv_response(reports.to_csv(header, rows), filename)
