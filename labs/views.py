"""Labs web pages: sites and rooms, scheduling lab sessions, the calendar, and trainees' bookings.

Who may do what:

* sites and rooms: admins of the site's training base (platform admins everywhere);
* scheduling, the calendar, a meeting's page (cancel it, assign the whole cohort): admins of the
  cohort's training base and its trainers; others get 404 for a record they cannot manage;
* booking: trainees, for the cohorts they are enrolled in.

Times are stored in UTC and shown in the site's time zone.
"""

from __future__ import annotations

import calendar as calendar_module
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, get_day_names
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from labs import services
from labs.forms import CancelOccurrenceForm, RoomForm, SessionForm, SiteForm
from labs.models import (
    Booking,
    BookingState,
    LabOccurrence,
    LabSession,
    OccurrenceStatus,
    Room,
    Site,
    session_trainer,
)
from labs.services import AlreadyBooked, BookingRefused, InvalidPlace, InvalidSchedule, SessionConflict
from lms import access
from lms.db import commit_with_retry
from lms.extensions import db
from lms.forms import ConfirmForm, choices
from lms.i18n import current_locale, is_valid_timezone
from lms.models import (
    Cohort,
    CourseModule,
    CourseUnit,
    Enrollment,
    EnrollmentStatus,
    Institution,
    InstitutionKind,
    Role,
    RoleGrant,
    UnitKind,
    User,
    cohort_trainer,
)
from lms.services import cohorts as cohort_service
from lms.services.learning import localised
from lms.timeutil import utcnow

bp = Blueprint("labs", __name__, url_prefix="/labs", template_folder="templates")

STAFF = (Role.ADMIN, Role.TRAINER)
PROMOTION_NOTICE_DAYS = 7
UPCOMING_LIMIT = 200


# --- Helpers -------------------------------------------------------------------------------------------


def _bad_request(message: str) -> NoReturn:
    """Stop with 400 and a message that says exactly what was wrong."""
    abort(make_response(render_template("lms/error.html", status=400, message=message), 400))


def _administered_base_ids(user: User) -> set[int] | None:
    """None for a platform admin (every base); otherwise the institutions the user administers."""
    if user.is_platform_admin:
        return None
    return {g.institution_id for g in user.grants if g.role == Role.ADMIN and g.institution_id}


def _administers(user: User, institution_id: int) -> bool:
    scope = _administered_base_ids(user)
    return scope is None or institution_id in scope


def _administered_bases(user: User) -> list[Institution]:
    query = select(Institution).where(Institution.kind == InstitutionKind.TRAINING_BASE)
    scope = _administered_base_ids(user)
    if scope is not None:
        query = query.where(Institution.id.in_(scope))
    return list(db.session.scalars(query.order_by(Institution.code)))


def _can_manage_session(user: User, session: LabSession) -> bool:
    """Admins of the cohort's base, the cohort's trainers and the session's own trainers."""
    return cohort_service.can_manage_cohort(user, session.cohort) or any(
        t.id == user.id for t in session.trainers
    )


def _managed_occurrence_or_404(occurrence_id: int) -> LabOccurrence:
    occurrence = db.session.get(LabOccurrence, occurrence_id)
    if occurrence is None or not _can_manage_session(current_user, occurrence.session):
        abort(404)
    return occurrence


def _user_zone(user: User) -> str:
    return user.timezone if is_valid_timezone(user.timezone) else current_app.config["BABEL_DEFAULT_TIMEZONE"]


def _safe_next(default: str) -> str:
    """The form's ``next`` when it is a path on this site, else ``default``."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


@bp.app_template_filter("labs_day")
def format_day(value: date) -> str:
    """A short day label in the current language: "Sat, Mar 1" / "3月1日周六"."""
    return format_skeleton("MMMEd", value, locale=get_locale())


@bp.app_template_filter("labs_date")
def format_full_date(value: date) -> str:
    """A day with its year: "Sat, Mar 1, 2025" / "2025年3月1日周六"."""
    return format_skeleton("yMMMEd", value, locale=get_locale())


@bp.app_template_global("labs_has_endpoint")
def has_endpoint(name: str) -> bool:
    """True when a page exists (another labs module may be switched off)."""
    return name in current_app.view_functions


@bp.app_template_filter("labs_hm")
def format_hours_minutes(value: datetime) -> str:
    return value.strftime("%H:%M")


# --- Meetings as the pages show them --------------------------------------------------------------------


@dataclass
class Slot:
    """A meeting with what a page shows about it, its times in one zone."""

    occurrence: LabOccurrence
    starts: datetime
    ends: datetime
    zone: str
    title: str
    waitlisted: int
    booking: Booking | None = None
    position: int | None = None
    can_book: bool = False
    booking_closed: bool = False

    @property
    def free(self) -> int:
        return max(0, self.occurrence.seats - self.occurrence.booked_count)

    @property
    def cancelled(self) -> bool:
        return self.occurrence.status == OccurrenceStatus.CANCELLED

    @property
    def holds_place(self) -> bool:
        return self.booking is not None and self.booking.state != BookingState.CANCELLED


def _unit_titles(sessions: list[LabSession]) -> dict[tuple[int | None, str], str]:
    """Lab unit titles in the current language by (course version id, unit key), in one query."""
    pairs = {(s.cohort.course_version_id, s.unit_key) for s in sessions if s.cohort.course_version_id}
    if not pairs:
        return {}
    rows = db.session.execute(
        select(CourseUnit.version_id, CourseUnit.key, CourseUnit.title).where(
            CourseUnit.version_id.in_({v for v, _k in pairs}), CourseUnit.key.in_({k for _v, k in pairs})
        )
    )
    locale = current_locale()
    return {(version_id, key): localised(title, locale) for version_id, key, title in rows}


def _session_title(session: LabSession, titles: dict[tuple[int | None, str], str]) -> str:
    """The session's own title, else its lab unit's title, else the unit key."""
    return (
        session.title or titles.get((session.cohort.course_version_id, session.unit_key)) or session.unit_key
    )


def _slots(
    occurrences: list[LabOccurrence],
    zone: str | None = None,
    bookings: dict[int, Booking] | None = None,
    now: datetime | None = None,
) -> list[Slot]:
    """Slots of the meetings, in ``zone`` (or each site's zone), with the user's own ``bookings``."""
    now = now or utcnow()
    counts = services.waitlisted_counts([o.id for o in occurrences])
    titles = _unit_titles([o.session for o in occurrences])
    slots = []
    for occurrence in occurrences:
        session = occurrence.session
        tz = zone or occurrence.room.site.timezone
        booking = (bookings or {}).get(occurrence.id)
        closed = now >= occurrence.starts_at - timedelta(minutes=session.booking_cutoff_minutes)
        holds = booking is not None and booking.state != BookingState.CANCELLED
        slots.append(
            Slot(
                occurrence=occurrence,
                starts=occurrence.starts_at.astimezone(ZoneInfo(tz)),
                ends=occurrence.ends_at.astimezone(ZoneInfo(tz)),
                zone=tz,
                title=_session_title(session, titles),
                waitlisted=counts.get(occurrence.id, 0),
                booking=booking,
                position=services.waitlist_position(booking) if booking is not None else None,
                can_book=not holds and not closed and occurrence.status == OccurrenceStatus.SCHEDULED,
                booking_closed=closed,
            )
        )
    return slots


# --- Sites and rooms ------------------------------------------------------------------------------------


@bp.route("/sites", methods=["GET", "POST"])
@access.roles(Role.ADMIN)
def list_sites():
    bases = _administered_bases(current_user)
    form = SiteForm()
    form.institution_id.choices = choices((b.id, b.display_name(current_locale())) for b in bases)
    status = 200
    if form.is_submitted():
        if form.validate():
            institution = next(b for b in bases if b.id == form.institution_id.data)
            try:
                site = services.create_site(
                    institution=institution,
                    code=form.code.data or "",
                    name=form.name.data or "",
                    name_en=form.name_en.data or "",
                    address=form.address.data or "",
                    timezone=(form.timezone.data or "").strip(),
                    actor=current_user,
                )
            except InvalidPlace as exc:
                db.session.rollback()
                getattr(form, exc.field).errors.append(str(exc))
            else:
                db.session.commit()
                flash(_("Site %(code)s created. Now add its rooms.", code=site.code), "success")
                return redirect(url_for("labs.show_site", site_id=site.id), 303)
        status = 400
    sites = db.session.scalars(
        select(Site).where(Site.institution_id.in_([b.id for b in bases])).order_by(Site.code)
    ).all()
    return render_template("labs/sites.html", sites=sites, form=form), status


def _site_or_404(site_id: int) -> Site:
    site = db.session.get(Site, site_id)
    if site is None or not _administers(current_user, site.institution_id):
        abort(404)
    return site


@bp.route("/sites/<int:site_id>")
@access.roles(Role.ADMIN)
def show_site(site_id: int):
    return render_template("labs/site.html", site=_site_or_404(site_id), form=RoomForm())


@bp.route("/sites/<int:site_id>/rooms", methods=["POST"])
@access.roles(Role.ADMIN)
def create_room(site_id: int):
    site = _site_or_404(site_id)
    form = RoomForm()
    if form.validate_on_submit():
        try:
            room = services.create_room(
                site=site,
                code=form.code.data or "",
                name=form.name.data or "",
                seats=form.seats.data,
                workstations=form.workstations.data or 0,
                gpu_seats=form.gpu_seats.data or 0,
                open_from=form.open_from.data,
                open_until=form.open_until.data,
                open_weekdays=list(form.open_weekdays.data or []),
                actor=current_user,
            )
        except InvalidPlace as exc:
            db.session.rollback()
            getattr(form, exc.field).errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Room %(code)s added.", code=room.code), "success")
            return redirect(url_for("labs.show_site", site_id=site.id), 303)
    return render_template("labs/site.html", site=site, form=form), 400


# --- Scheduling -----------------------------------------------------------------------------------------


def _managed_cohorts(user: User) -> list[Cohort]:
    return [c for c in cohort_service.visible_cohorts(user) if cohort_service.can_manage_cohort(user, c)]


@bp.route("/sessions")
@access.roles(*STAFF)
def list_sessions():
    cohorts = _managed_cohorts(current_user)
    sessions = db.session.scalars(
        select(LabSession)
        .where(LabSession.cohort_id.in_([c.id for c in cohorts]))
        .order_by(LabSession.first_start_local, LabSession.id)
    ).all()
    titles = _unit_titles(list(sessions))
    by_cohort: dict[int, list[dict[str, Any]]] = {c.id: [] for c in cohorts}
    now = utcnow()
    for session in sessions:
        scheduled = [o for o in session.occurrences if o.status == OccurrenceStatus.SCHEDULED]
        upcoming = [o for o in scheduled if o.ends_at > now]
        by_cohort[session.cohort_id].append(
            {
                "session": session,
                "title": _session_title(session, titles),
                "meetings": len(scheduled),
                "next": upcoming[0].starts_at.astimezone(ZoneInfo(session.room.site.timezone))
                if upcoming
                else None,
            }
        )
    return render_template("labs/sessions.html", cohorts=cohorts, by_cohort=by_cohort)


def _lab_units(cohort: Cohort) -> list[tuple[CourseUnit, CourseModule]]:
    """The lab units of the cohort's course version, in teaching order."""
    if cohort.course_version_id is None:
        return []
    rows = db.session.execute(
        select(CourseUnit, CourseModule)
        .join(CourseModule, CourseUnit.module_id == CourseModule.id)
        .where(CourseUnit.version_id == cohort.course_version_id, CourseUnit.kind == UnitKind.LAB)
        .order_by(CourseModule.position, CourseUnit.position)
    )
    return [(unit, module) for unit, module in rows]


def _trainer_candidates(cohort: Cohort) -> list[User]:
    """The cohort's trainers and everyone holding a trainer role at its training base."""
    at_base = db.session.scalars(
        select(User).where(
            User.active,
            User.grants.any(
                (RoleGrant.role == Role.TRAINER)
                & (RoleGrant.institution_id.is_(None) | (RoleGrant.institution_id == cohort.training_base_id))
            ),
        )
    ).all()
    people = {u.id: u for u in [*cohort.trainers, *at_base]}
    return sorted(people.values(), key=lambda u: (u.real_name, u.username))


@bp.route("/cohorts/<int:cohort_id>/sessions/new", methods=["GET", "POST"])
@access.roles(*STAFF)
def create_session(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    locale = current_locale()
    units = _lab_units(cohort)
    rooms = db.session.scalars(
        select(Room)
        .join(Site, Room.site_id == Site.id)
        .where(Site.institution_id == cohort.training_base_id)
        .order_by(Site.code, Room.code)
    ).all()
    trainers = _trainer_candidates(cohort)
    form = SessionForm()
    form.unit_key.choices = choices(
        (unit.key, f"{localised(module.title, locale)} · {localised(unit.title, locale)}")
        for unit, module in units
    )
    form.room_id.choices = choices(
        (
            r.id,
            _(
                "%(site)s %(room)s — %(name)s (%(seats)d seats)",
                site=r.site.code,
                room=r.code,
                name=r.name,
                seats=r.seats,
            ),
        )
        for r in rooms
    )
    form.trainer_ids.choices = choices((t.id, t.real_name) for t in trainers)
    if not form.is_submitted():
        form.trainer_ids.data = [t.id for t in cohort.trainers] or (
            [current_user.id] if any(t.id == current_user.id for t in trainers) else []
        )
    can_override = cohort_service.can_administer_cohort(current_user, cohort)
    clashes: list[str] = []
    errors: list[str] = []
    status = 200
    if form.validate_on_submit():
        assert form.first_start_local is not None  # set by validate()
        room = next(r for r in rooms if r.id == form.room_id.data)
        chosen = [t for t in trainers if t.id in (form.trainer_ids.data or [])]
        try:
            session = services.create_lab_session(
                cohort=cohort,
                unit_key=form.unit_key.data or "",
                room=room,
                trainers=chosen,
                first_start_local=form.first_start_local,
                duration_minutes=form.duration_minutes.data,
                rrule=form.rule,
                title=(form.title.data or "").strip(),
                booking_cutoff_minutes=form.booking_cutoff_minutes.data,
                actor=current_user,
                override_reason=(form.override_reason.data or "") if can_override else "",
            )
        except SessionConflict as exc:
            db.session.rollback()
            clashes = [clash.message for clash in exc.clashes]
            status = 409
        except InvalidSchedule as exc:
            db.session.rollback()
            if form.rrule.data:
                form.rrule.errors.append(str(exc))
            else:
                errors.append(str(exc))
            status = 400
        else:
            first = session.occurrences[0].starts_at.astimezone(ZoneInfo(room.site.timezone)).date()
            count = len(session.occurrences)
            db.session.commit()
            flash(_("Lab scheduled: %(n)d meeting(s).", n=count), "success")
            return redirect(url_for("labs.calendar", cohort=cohort.id, date=first.isoformat()), 303)
    elif form.is_submitted():
        status = 400
    return render_template(
        "labs/session_new.html",
        cohort=cohort,
        form=form,
        units=units,
        rooms=rooms,
        clashes=clashes,
        errors=errors,
        can_override=can_override,
    ), status


# --- One meeting: its bookings, cancelling it, assigning the whole cohort -------------------------------


def _render_occurrence(
    occurrence: LabOccurrence, cancel_form: CancelOccurrenceForm | None = None, status=200
):
    bookings = db.session.scalars(
        select(Booking).where(Booking.occurrence_id == occurrence.id).order_by(Booking.created_at, Booking.id)
    ).all()
    booked = [b for b in bookings if b.state == BookingState.BOOKED]
    waiting = sorted(
        (b for b in bookings if b.state == BookingState.WAITLISTED),
        key=lambda b: (b.waitlisted_at or b.created_at, b.id),
    )
    cancelled = [b for b in bookings if b.state == BookingState.CANCELLED]
    (slot,) = _slots([occurrence])
    return render_template(
        "labs/occurrence.html",
        slot=slot,
        occurrence=occurrence,
        booked=booked,
        waiting=waiting,
        cancelled=cancelled,
        trainees=len(
            [e for e in occurrence.session.cohort.enrollments if e.status == EnrollmentStatus.ACTIVE]
        ),
        ended=occurrence.ends_at <= utcnow(),
        cancel_form=cancel_form or CancelOccurrenceForm(),
        confirm_form=ConfirmForm(),
    ), status


@bp.route("/occurrences/<int:occurrence_id>")
@access.roles(*STAFF)
def show_occurrence(occurrence_id: int):
    return _render_occurrence(_managed_occurrence_or_404(occurrence_id))


@bp.route("/occurrences/<int:occurrence_id>/cancel", methods=["POST"])
@access.roles(*STAFF)
def cancel_occurrence(occurrence_id: int):
    occurrence = _managed_occurrence_or_404(occurrence_id)
    form = CancelOccurrenceForm()
    if not form.validate_on_submit():
        return _render_occurrence(occurrence, form, 400)
    try:
        cancelled = services.cancel_occurrence(
            occurrence, current_user._get_current_object(), form.reason.data or ""
        )
    except InvalidSchedule as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        count = len(cancelled)
        db.session.commit()
        flash(_("Meeting cancelled; %(n)d booking(s) cancelled with it.", n=count), "success")
    return redirect(url_for("labs.show_occurrence", occurrence_id=occurrence_id), 303)


@bp.route("/occurrences/<int:occurrence_id>/assign-cohort", methods=["POST"])
@access.roles(*STAFF)
def assign_cohort(occurrence_id: int):
    _managed_occurrence_or_404(occurrence_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    actor_id = current_user.id

    def work():
        occurrence = db.session.get(LabOccurrence, occurrence_id)
        actor = db.session.get(User, actor_id)
        assert occurrence is not None and actor is not None
        result = services.assign_cohort(occurrence, actor)
        return (
            len(result.booked),
            len(result.waitlisted),
            result.already,
            [(user.real_name, reason) for user, reason in result.refused],
        )

    try:
        booked, waitlisted, already, refused = commit_with_retry(work)
    except AlreadyBooked:
        db.session.rollback()
        flash(_("A trainee booked at the same moment, so nothing was changed. Try again."), "error")
    except BookingRefused as exc:
        flash(str(exc), "error")
    else:
        flash(
            _(
                "%(booked)d trainee(s) booked, %(waitlisted)d on the waiting list, %(already)d already "
                "had a place.",
                booked=booked,
                waitlisted=waitlisted,
                already=already,
            ),
            "success",
        )
        for name, reason in refused:
            flash(_("%(name)s was not booked: %(reason)s", name=name, reason=reason), "error")
    return redirect(url_for("labs.show_occurrence", occurrence_id=occurrence_id), 303)


# --- The calendar ---------------------------------------------------------------------------------------


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        _bad_request(_("'%(name)s' must be a number, not '%(value)s'.", name=name, value=value[:40]))
    return int(value)


@dataclass
class CalendarFilters:
    view: str
    day: date
    site: Site | None
    room: Room | None
    trainer: User | None
    cohort: Cohort | None

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query arguments of this calendar, with ``changes``."""
        values: dict[str, Any] = {
            "view": self.view,
            "date": self.day.isoformat(),
            "site": self.site.id if self.site else None,
            "room": self.room.id if self.room else None,
            "trainer": self.trainer.id if self.trainer else None,
            "cohort": self.cohort.id if self.cohort else None,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v is not None}


def _visible_sites(user: User) -> list[Site]:
    """Sites of the bases the user administers, or of the cohorts the user can manage."""
    query = select(Site).order_by(Site.code)
    scope = _administered_base_ids(user)
    if scope is not None:
        bases = set(scope) | {c.training_base_id for c in _managed_cohorts(user)}
        query = query.where(Site.institution_id.in_(bases))
    return list(db.session.scalars(query))


@bp.route("/calendar")
@access.roles(*STAFF)
def calendar():
    view = request.args.get("view", "week")
    if view not in ("week", "month"):
        _bad_request(_("Choose view=week or view=month."))
    sites = _visible_sites(current_user)
    cohorts = _managed_cohorts(current_user)
    visible = services.visible_occurrences_query(current_user)
    trainer_rows = db.session.scalars(
        select(User)
        .join(session_trainer, session_trainer.c.user_id == User.id)
        .where(session_trainer.c.session_id.in_(visible.with_only_columns(LabSession.id).distinct()))
        .distinct()
        .order_by(User.real_name)
    ).all()
    trainers = list(trainer_rows)
    if current_user.has_role(Role.TRAINER) and all(t.id != current_user.id for t in trainers):
        trainers.insert(0, current_user._get_current_object())

    def pick(items: list[Any], name: str) -> Any:
        wanted = _int_arg(name)
        if wanted is None:
            return None
        found = next((item for item in items if item.id == wanted), None)
        if found is None:
            abort(404)
        return found

    site = pick(sites, "site")
    rooms = [r for s in ([site] if site else sites) for r in s.rooms]
    room = pick([r for s in sites for r in s.rooms], "room")
    trainer = pick(trainers, "trainer")
    cohort = pick(cohorts, "cohort")
    if room is not None:
        zone_sites = [room.site]
    elif site is not None:
        zone_sites = [site]
    elif cohort is not None:
        zone_sites = [s for s in sites if s.institution_id == cohort.training_base_id]
    else:
        zone_sites = sites
    zones = {s.timezone for s in zone_sites}
    zone = zones.pop() if len(zones) == 1 else _user_zone(current_user)
    today = utcnow().astimezone(ZoneInfo(zone)).date()
    raw_date = request.args.get("date", "").strip()
    try:
        day = date.fromisoformat(raw_date) if raw_date else today
    except ValueError:
        _bad_request(_("Write the date as YYYY-MM-DD, e.g. 2025-03-01."))
    filters = CalendarFilters(view, day, site, room, trainer, cohort)

    if view == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
        previous, following = first - timedelta(days=7), first + timedelta(days=7)
    else:
        month_start = day.replace(day=1)
        month_end = month_start.replace(day=calendar_module.monthrange(day.year, day.month)[1])
        first = month_start - timedelta(days=month_start.weekday())
        last = month_end + timedelta(days=6 - month_end.weekday())
        previous = (month_start - timedelta(days=1)).replace(day=1)
        following = month_end + timedelta(days=1)
    tz = ZoneInfo(zone)
    start_utc = datetime.combine(first, datetime.min.time(), tz)
    end_utc = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
    query = visible.where(LabOccurrence.starts_at >= start_utc, LabOccurrence.starts_at < end_utc)
    if site is not None:
        query = query.where(LabOccurrence.room_id.in_([r.id for r in site.rooms]))
    if room is not None:
        query = query.where(LabOccurrence.room_id == room.id)
    if cohort is not None:
        query = query.where(LabSession.cohort_id == cohort.id)
    if trainer is not None:
        query = query.where(
            LabSession.id.in_(
                select(session_trainer.c.session_id).where(session_trainer.c.user_id == trainer.id)
            )
        )
    occurrences = list(db.session.scalars(query.order_by(LabOccurrence.starts_at, LabOccurrence.id)))
    by_day: dict[date, list[Slot]] = {}
    for slot in _slots(occurrences, zone=zone):
        by_day.setdefault(slot.starts.date(), []).append(slot)
    days = [
        {
            "date": first + timedelta(days=n),
            "slots": by_day.get(first + timedelta(days=n), []),
            "outside": view == "month" and (first + timedelta(days=n)).month != day.month,
            "today": first + timedelta(days=n) == today,
        }
        for n in range((last - first).days + 1)
    ]
    if view == "week":
        heading = _("Week of %(day)s", day=format_full_date(first))
    else:
        heading = format_skeleton("yMMMM", day, locale=get_locale())
    return render_template(
        "labs/calendar.html",
        filters=filters,
        days=days,
        heading=heading,
        zone=zone,
        count=len(occurrences),
        weekday_names=[get_day_names("abbreviated", locale=get_locale())[n] for n in range(7)],
        sites=sites,
        rooms=rooms,
        trainers=trainers,
        cohorts=cohorts,
        previous_args=filters.args(date=previous.isoformat()),
        next_args=filters.args(date=following.isoformat()),
        today_args=filters.args(date=today.isoformat()),
    )


# --- Trainees: booking ----------------------------------------------------------------------------------


def _own_bookings(user: User, occurrence_ids: list[int]) -> dict[int, Booking]:
    if not occurrence_ids:
        return {}
    rows = db.session.scalars(
        select(Booking).where(Booking.user_id == user.id, Booking.occurrence_id.in_(occurrence_ids))
    )
    return {b.occurrence_id: b for b in rows}


def _active_cohort_ids(user: User):
    return select(Enrollment.cohort_id).where(
        Enrollment.user_id == user.id, Enrollment.status == EnrollmentStatus.ACTIVE
    )


@bp.route("/upcoming")
@access.roles(Role.TRAINEE)
def list_upcoming():
    now = utcnow()
    occurrences = list(
        db.session.scalars(
            select(LabOccurrence)
            .join(LabSession, LabOccurrence.session_id == LabSession.id)
            .where(LabSession.cohort_id.in_(_active_cohort_ids(current_user)), LabOccurrence.ends_at > now)
            .order_by(LabOccurrence.starts_at, LabOccurrence.id)
            .limit(UPCOMING_LIMIT)
        )
    )
    slots = _slots(occurrences, bookings=_own_bookings(current_user, [o.id for o in occurrences]), now=now)
    return render_template("labs/upcoming.html", slots=slots, form=ConfirmForm(), now=now)


@bp.route("/my-bookings")
@access.roles(Role.TRAINEE)
def my_bookings():
    now = utcnow()
    bookings = db.session.scalars(
        select(Booking)
        .join(LabOccurrence, Booking.occurrence_id == LabOccurrence.id)
        .where(Booking.user_id == current_user.id)
        .order_by(LabOccurrence.starts_at.desc())
        .limit(UPCOMING_LIMIT)
    ).all()
    occurrences = [b.occurrence for b in bookings]
    slots = _slots(occurrences, bookings={b.occurrence_id: b for b in bookings}, now=now)
    upcoming = sorted((s for s in slots if s.occurrence.ends_at > now), key=lambda s: s.occurrence.starts_at)
    past = [s for s in slots if s.occurrence.ends_at <= now]
    return render_template("labs/my_bookings.html", upcoming=upcoming, past=past, form=ConfirmForm(), now=now)


@bp.route("/occurrences/<int:occurrence_id>/book", methods=["POST"])
@access.roles(Role.TRAINEE)
def book_seat(occurrence_id: int):
    occurrence = db.session.get(LabOccurrence, occurrence_id)
    if occurrence is None or (
        db.session.scalar(
            select(Enrollment.id).where(
                Enrollment.cohort_id == occurrence.session.cohort_id, Enrollment.user_id == current_user.id
            )
        )
        is None
    ):
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user_id = current_user.id
    back = _safe_next(url_for("labs.list_upcoming"))

    def work() -> Booking:
        trainee, meeting = db.session.get(User, user_id), db.session.get(LabOccurrence, occurrence_id)
        assert trainee is not None and meeting is not None
        return services.book_seat(trainee, meeting)

    try:
        booking = commit_with_retry(work)
    except AlreadyBooked as exc:
        db.session.rollback()
        flash(str(exc), "info")
        return redirect(back, 303)
    except BookingRefused as exc:
        flash(str(exc), "error")
        return redirect(back, 303)
    if booking.state == BookingState.BOOKED:
        flash(_("Your seat is booked."), "success")
    else:
        flash(
            _(
                "All seats are taken: you are number %(n)d on the waiting list. If a seat becomes free you "
                "get it automatically and your dashboard tells you.",
                n=services.waitlist_position(booking) or 0,
            ),
            "success",
        )
    return redirect(back, 303)


@bp.route("/bookings/<int:booking_id>/cancel", methods=["POST"])
@access.roles(Role.TRAINEE)
def cancel_booking(booking_id: int):
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.user_id != current_user.id:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    back = _safe_next(url_for("labs.my_bookings"))
    if booking.state == BookingState.CANCELLED:
        flash(_("This booking was already cancelled."), "info")
        return redirect(back, 303)
    if booking.occurrence.starts_at <= utcnow():
        flash(_("This lab meeting has already started; ask your trainer."), "error")
        return redirect(back, 303)
    user_id = current_user.id

    def work() -> None:
        mine, actor = db.session.get(Booking, booking_id), db.session.get(User, user_id)
        assert mine is not None and actor is not None
        services.cancel_booking(mine, actor=actor)

    commit_with_retry(work)
    flash(_("Your booking is cancelled."), "success")
    return redirect(back, 303)


# --- Dashboard panels (called by LabsPlugin.dashboard_panels) -------------------------------------------


def _detail_time(booking: Booking, key: str) -> datetime | None:
    """A time the services noted in ``booking.details`` (ISO text), or None."""
    value = (booking.details or {}).get(key)
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def trainee_panel(user: User) -> dict[str, Any]:
    """A trainee's coming lab bookings, and notices: seats won from the waiting list and meetings
    cancelled in the last days."""
    now = utcnow()
    recent = now - timedelta(days=PROMOTION_NOTICE_DAYS)
    bookings = db.session.scalars(
        select(Booking)
        .join(LabOccurrence, Booking.occurrence_id == LabOccurrence.id)
        .where(Booking.user_id == user.id, LabOccurrence.ends_at > now)
        .order_by(LabOccurrence.starts_at)
    ).all()
    slots = _slots([b.occurrence for b in bookings], bookings={b.occurrence_id: b for b in bookings}, now=now)
    holding = [s for s in slots if s.holds_place and not s.cancelled]
    promoted = [
        s
        for s in holding
        if s.booking is not None
        and s.booking.state == BookingState.BOOKED
        and (at := _detail_time(s.booking, "promoted_at")) is not None
        and at >= recent
    ]
    cancelled = [
        s
        for s in slots
        if s.cancelled
        and s.booking is not None
        and (at := _detail_time(s.booking, "occurrence_cancelled_at"))
        and at >= recent
    ]
    can_book_more = (
        db.session.scalar(
            select(LabOccurrence.id)
            .join(LabSession, LabOccurrence.session_id == LabSession.id)
            .where(
                LabSession.cohort_id.in_(_active_cohort_ids(user)),
                LabOccurrence.status == OccurrenceStatus.SCHEDULED,
                LabOccurrence.starts_at > now,
                LabOccurrence.id.not_in(
                    select(Booking.occurrence_id).where(
                        Booking.user_id == user.id, Booking.state != BookingState.CANCELLED
                    )
                ),
            )
            .limit(1)
        )
        is not None
    )
    return {
        "upcoming": holding[:5],
        "more": max(0, len(holding) - 5),
        "promoted": promoted,
        "cancelled": cancelled,
        "can_book_more": can_book_more,
    }


def trainer_panel(user: User) -> dict[str, Any]:
    """Today's lab meetings of the sessions and cohorts the user teaches, and the next ones."""
    zone = ZoneInfo(_user_zone(user))
    today = utcnow().astimezone(zone).date()
    start = datetime.combine(today, datetime.min.time(), zone)
    end = start + timedelta(days=1)
    teaches = LabSession.id.in_(
        select(session_trainer.c.session_id).where(session_trainer.c.user_id == user.id)
    ) | LabSession.cohort_id.in_(
        select(cohort_trainer.c.cohort_id).where(cohort_trainer.c.user_id == user.id)
    )
    base = (
        select(LabOccurrence)
        .join(LabSession, LabOccurrence.session_id == LabSession.id)
        .where(teaches)
        .order_by(LabOccurrence.starts_at, LabOccurrence.id)
    )
    today_rows = list(
        db.session.scalars(base.where(LabOccurrence.starts_at >= start, LabOccurrence.starts_at < end))
    )
    next_rows = list(
        db.session.scalars(
            base.where(
                LabOccurrence.starts_at >= end, LabOccurrence.status == OccurrenceStatus.SCHEDULED
            ).limit(5)
        )
    )
    return {"today": _slots(today_rows), "next": _slots(next_rows)}
