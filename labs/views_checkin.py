"""On-site attendance pages: the trainer's check-in screen (rotating code and QR), the trainee's check-in
page, the roster and the printable sign-in sheet."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import qrcode
import qrcode.constants
from babel.dates import format_datetime as babel_format_datetime
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from qrcode.image.svg import SvgPathImage
from wtforms import StringField
from wtforms.validators import InputRequired, Length

from labs import attendance
from labs.checkin import LATE_MINUTES, OPENS_BEFORE_START, STEP_SECONDS, checkin_window
from labs.models import Attendance, BookingState, LabOccurrence
from lms import access
from lms.api.core import MAX_INT64
from lms.db import commit_with_retry
from lms.extensions import db
from lms.models import Role, User
from lms.timeutil import utcnow

bp = Blueprint("labs_checkin", __name__, url_prefix="/labs", template_folder="templates")

#: Empty lines at the foot of the sign-in sheet for walk-ins who are not on it.
BLANK_SHEET_LINES = 5

MARK_LABELS = {
    Attendance.ATTENDED: _l("Present"),
    Attendance.LATE: _l("Late"),
    Attendance.ABSENT: _l("Absent"),
    Attendance.EXCUSED: _l("Excused"),
}


class CheckinForm(FlaskForm):
    code = StringField(
        _l("Check-in code"),
        validators=[InputRequired(), Length(max=20)],
        render_kw={
            "inputmode": "numeric",
            "autocomplete": "one-time-code",
            "pattern": "[0-9 ]{6,7}",
            "maxlength": "7",
            "class": "checkin-code-input",
            "autofocus": True,
        },
    )


class RosterForm(FlaskForm):
    """CSRF only: the marks are read from ``mark-<booking id>`` fields."""


def _occurrence_or_404(occurrence_id: int) -> LabOccurrence:
    occurrence = db.session.get(LabOccurrence, occurrence_id) if occurrence_id <= MAX_INT64 else None
    if occurrence is None:
        abort(404)
    return occurrence


def _run_or_404(occurrence_id: int) -> LabOccurrence:
    """The occurrence, if the signed-in user runs its check-in; 404 otherwise (as if it did not exist)."""
    occurrence = _occurrence_or_404(occurrence_id)
    if not attendance.can_run_checkin(current_user, occurrence):
        abort(404)
    return occurrence


def at_site(occurrence: LabOccurrence):
    """A formatter of UTC times in the site's zone (everyone at a lab is on site)."""
    zone = ZoneInfo(occurrence.room.site.timezone)

    def format_at_site(value: datetime | None, pattern: str = "HH:mm") -> str:
        if value is None:
            return ""
        return babel_format_datetime(value, pattern, tzinfo=zone, locale=get_locale())

    return format_at_site


def qr_svg(data: str, label: str) -> Markup:
    """An inline SVG QR code (error correction M, 2-module quiet zone) that scales with its box."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=2, image_factory=SvgPathImage
    )
    code.add_data(data)
    code.make(fit=True)
    svg = code.make_image().to_string(encoding="unicode")
    svg = re.sub(r'^<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)
    svg = svg.replace("<svg", f'<svg class="qr" role="img" aria-label="{escape(label)}"', 1)
    return Markup(svg)


def _checkin_url(occurrence: LabOccurrence, code: str | None = None) -> str:
    params: dict[str, Any] = {"occurrence_id": occurrence.id, "_external": True}
    if code:
        params["code"] = code
    return url_for("labs_checkin.check_in", **params)


def screen_state(occurrence: LabOccurrence) -> dict[str, Any]:
    """What the trainer's screen shows now (also its JSON refresh)."""
    now = utcnow()
    current = attendance.checkin_code(occurrence, now)
    checked_in, seated = attendance.checkin_counts(occurrence)
    opens, closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    url = _checkin_url(occurrence, current.code)
    return {
        "occurrence_id": occurrence.id,
        "code": current.code,
        "code_display": f"{current.code[:3]} {current.code[3:]}",
        "refresh_at": current.refresh_at.isoformat(),
        "refresh_in": max(0.0, (current.refresh_at - now).total_seconds()),
        "expires_at": current.expires_at.isoformat(),
        "step_seconds": STEP_SECONDS,
        "open": attendance.checkin_is_open(occurrence, now),
        "opens_at": opens.isoformat(),
        "closes_at": closes.isoformat(),
        "checked_in": checked_in,
        "seated": seated,
        "count_text": _(
            "%(checked)d checked in of %(seated)d seats taken", checked=checked_in, seated=seated
        ),
        "checkin_url": url,
        "qr_svg": str(qr_svg(url, _("QR code: check in to this lab"))),
    }


@bp.route("/occurrences/<int:occurrence_id>/checkin/screen")
@access.roles(Role.TRAINER, Role.ADMIN)
def show_checkin_screen(occurrence_id: int):
    occurrence = _run_or_404(occurrence_id)
    state = screen_state(occurrence)
    if db.session.dirty:  # an old occurrence just got its secret
        db.session.commit()
    opens, closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    return render_template(
        "labs/checkin/screen.html",
        occurrence=occurrence,
        state=state,
        qr=Markup(state["qr_svg"]),
        at_site=at_site(occurrence),
        plain_url=url_for("labs_checkin.list_open_checkins", _external=True),
        opens_at=opens,
        closes_at=closes,
        opens_before=int(OPENS_BEFORE_START.total_seconds() // 60),
    )


@bp.route("/occurrences/<int:occurrence_id>/checkin/code.json")
@access.roles(Role.TRAINER, Role.ADMIN)
def get_checkin_code(occurrence_id: int):
    occurrence = _run_or_404(occurrence_id)
    state = screen_state(occurrence)
    if db.session.dirty:
        db.session.commit()
    response = jsonify(state)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/checkin")
@access.roles(Role.TRAINEE)
def list_open_checkins():
    """The trainee's way in without the QR: the meetings open for check-in now, each with a code field."""
    occurrences = attendance.open_checkins(current_user)
    if len(occurrences) == 1:
        return redirect(url_for("labs_checkin.check_in", occurrence_id=occurrences[0].id))
    return render_template(
        "labs/checkin/choose.html",
        occurrences=occurrences,
        opens_before=int(OPENS_BEFORE_START.total_seconds() // 60),
        at_site=at_site,
    )


@bp.route("/occurrences/<int:occurrence_id>/checkin", methods=["GET", "POST"])
@access.roles(Role.TRAINEE)
def check_in(occurrence_id: int):
    occurrence = _occurrence_or_404(occurrence_id)
    form = CheckinForm(code=request.args.get("code", "")[:20])
    booking = attendance.booking_of(current_user, occurrence)
    refusal: attendance.CheckinRefused | None = None
    status = 200
    if not attendance.is_active_trainee(current_user, occurrence.session.cohort_id):
        refusal = attendance.CheckinRefused(
            "not_in_cohort",
            _(
                "This lab is for cohort %(cohort)s and you are not a trainee of it.",
                cohort=occurrence.session.cohort.code,
            ),
        )
        status = 403
    elif request.method == "POST":
        if form.validate_on_submit():
            user_id, code = current_user.id, form.code.data

            def work() -> attendance.CheckinResult:
                trainee = db.session.get(User, user_id)
                fresh = db.session.get(LabOccurrence, occurrence_id)
                assert trainee is not None and fresh is not None
                return attendance.check_in(trainee, fresh, code, via="web")

            try:
                result = commit_with_retry(work)
            except attendance.CheckinRefused as exc:
                refusal = exc
                status = 409 if exc.reason in ("already_checked_in", "closed", "not_open", "full") else 422
            else:
                if result.late:
                    flash(_("You are checked in (late). Welcome!"), "success")
                else:
                    flash(_("You are checked in. Welcome!"), "success")
                return redirect(url_for("labs_checkin.check_in", occurrence_id=occurrence_id))
        else:
            status = 422
        booking = attendance.booking_of(current_user, occurrence)
    opens, closes = checkin_window(occurrence.starts_at, occurrence.ends_at)
    return (
        render_template(
            "labs/checkin/checkin.html",
            occurrence=occurrence,
            form=form,
            booking=booking,
            refusal=refusal,
            opens_at=opens,
            closes_at=closes,
            is_open=attendance.checkin_is_open(occurrence),
            at_site=at_site(occurrence),
            mark_labels=MARK_LABELS,
        ),
        status,
    )


def _roster_context(occurrence: LabOccurrence) -> dict[str, Any]:
    rows = attendance.roster(occurrence)
    checked_in, seated = attendance.checkin_counts(occurrence)
    return {
        "occurrence": occurrence,
        "rows": rows,
        "checked_in": checked_in,
        "seated": seated,
        "waitlisted": sum(1 for r in rows if r.booking.state == BookingState.WAITLISTED),
        "at_site": at_site(occurrence),
        "mark_labels": MARK_LABELS,
        "late_minutes": LATE_MINUTES,
        "BookingState": BookingState,
    }


@bp.route("/occurrences/<int:occurrence_id>/roster")
@access.roles(Role.TRAINER, Role.ADMIN)
def show_roster(occurrence_id: int):
    occurrence = _run_or_404(occurrence_id)
    return render_template("labs/checkin/roster.html", form=RosterForm(), **_roster_context(occurrence))


@bp.route("/occurrences/<int:occurrence_id>/roster", methods=["POST"])
@access.roles(Role.TRAINER, Role.ADMIN)
def mark_attendance(occurrence_id: int):
    occurrence = _run_or_404(occurrence_id)
    form = RosterForm()
    if not form.validate_on_submit():
        flash(_("The form expired. Reload the page and try again."), "error")
        return redirect(url_for("labs_checkin.show_roster", occurrence_id=occurrence_id))
    wanted: dict[int, Attendance] = {}
    for key, value in request.form.items():
        if not key.startswith("mark-") or not value:
            continue
        booking_id = key.removeprefix("mark-")
        if not booking_id.isdigit() or value not in {mark.value for mark in Attendance}:
            abort(400)
        wanted[int(booking_id)] = Attendance(value)
    actor_id = current_user.id

    def work() -> tuple[int, list[str]]:
        fresh = db.session.get(LabOccurrence, occurrence_id)
        actor = db.session.get(User, actor_id)
        assert fresh is not None and actor is not None
        changed, problems = 0, []
        for row in attendance.roster(fresh):
            mark = wanted.get(row.booking.id)
            if mark is None:
                continue
            try:
                changed += attendance.mark_attendance(row.booking, mark, actor)
            except attendance.AttendanceRefused as exc:
                problems.append(str(exc))
        return changed, problems

    changed, problems = commit_with_retry(work)
    for problem in dict.fromkeys(problems):
        flash(problem, "error")
    flash(_("Saved %(n)d attendance marks.", n=changed), "success")
    return redirect(url_for("labs_checkin.show_roster", occurrence_id=occurrence.id))


@bp.route("/occurrences/<int:occurrence_id>/sign-in-sheet")
@access.roles(Role.TRAINER, Role.ADMIN)
def print_sign_in_sheet(occurrence_id: int):
    occurrence = _run_or_404(occurrence_id)
    context = _roster_context(occurrence)
    context["blank_lines"] = BLANK_SHEET_LINES
    return render_template("labs/checkin/sign_in_sheet.html", **context)
