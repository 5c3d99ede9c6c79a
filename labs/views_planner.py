"""The lab planner page: propose a schedule for a cohort's lab units, review it, accept it.

Proposing is a GET (it saves nothing); accepting posts the reviewed placements, and
create_lab_session checks every one again, so a room taken in the meantime is refused, not doubled.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import Length, NumberRange, Optional

from labs import planning
from labs.services import SessionConflict
from lms import access
from lms.extensions import db
from lms.forms import ConfirmForm, choices
from lms.models import Cohort, Role
from lms.services import DomainError
from lms.services import cohorts as cohort_service

bp = Blueprint("labs_planner", __name__, url_prefix="/labs/planner", template_folder="templates")

MAX_PLACEMENTS = 200


class PlanForm(FlaskForm):
    """The planner's options, sent by GET: proposing saves nothing, so it needs no CSRF token."""

    class Meta:
        csrf = False

    weekends_only = BooleanField(_l("Weekends only"))
    max_hours_per_day = FloatField(
        _l("At most this many hours of labs a day"),
        default=planning.DEFAULT_MAX_HOURS_PER_DAY,
        validators=[Optional(), NumberRange(min=0.5, max=24)],
    )
    room_ids = SelectMultipleField(_l("Rooms (none chosen: all)"), coerce=int, validators=[Optional()])
    start_times = StringField(_l("Start times"), validators=[Length(max=200)])
    unavailable = TextAreaField(
        _l("Dates people cannot come"), validators=[Optional(), Length(max=20_000)], render_kw={"rows": 4}
    )
    hard_blackouts = BooleanField(_l("Never place a lab on a trainee's blackout date"))


def get_cohort_or_404(cohort_id: int) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_manage_cohort(current_user, cohort):
        abort(404)
    return cohort


def _time_limit() -> float:
    return float(current_app.config.get("LABS_PLANNER_TIME_LIMIT", planning.DEFAULT_TIME_LIMIT_SECONDS))


def _room_choices(cohort: Cohort):
    try:
        rooms = planning.planning_rooms(cohort)
    except planning.PlanningError:
        return []
    return choices((r.id, f"{r.code} · {r.name} · {_('%(n)d seats', n=r.seats)}") for r in rooms)


def _options(form: PlanForm) -> planning.PlanOptions | None:
    """The form as planner options; None (with the errors on the fields) when something is wrong."""
    ok = form.validate()
    try:
        start_times = planning.parse_start_times((form.start_times.data or "").replace(",", " ").split())
    except planning.PlanningError as exc:
        form.start_times.errors = [*form.start_times.errors, str(exc)]
        ok = False
    try:
        unavailable = planning.parse_unavailability(form.unavailable.data or "")
    except planning.PlanningError as exc:
        form.unavailable.errors = [*form.unavailable.errors, str(exc)]
        ok = False
    if not ok:
        return None
    return planning.PlanOptions(
        weekends_only=form.weekends_only.data,
        max_hours_per_day=form.max_hours_per_day.data,
        room_ids=tuple(form.room_ids.data or ()),
        start_times=start_times,
        hard_blackouts=form.hard_blackouts.data,
        unavailable=unavailable,
        time_limit_seconds=_time_limit(),
    )


def _render(
    cohort: Cohort,
    form: PlanForm,
    result=None,
    error: str | None = None,
    status: int = 200,
    options_query: str | None = None,
):
    return (
        render_template(
            "labs/planner/plan.html",
            cohort=cohort,
            form=form,
            result=result,
            error=error,
            accept_form=ConfirmForm(),
            units=planning.lab_units(cohort),
            scheduled=planning.scheduled_unit_keys(cohort),
            options_query=urlencode(list(request.args.items(multi=True)))
            if options_query is None
            else options_query,
        ),
        status,
    )


@bp.route("/cohorts/<int:cohort_id>")
@access.roles(Role.ADMIN, Role.TRAINER)
def plan_cohort(cohort_id: int):
    cohort = get_cohort_or_404(cohort_id)
    proposing = "propose" in request.args
    form = PlanForm(formdata=request.args if proposing else None)
    form.room_ids.choices = _room_choices(cohort)
    if not proposing:
        form.start_times.data = ", ".join(
            t.strftime("%H:%M") for t in planning.configured_start_times(current_app.config)
        )
        return _render(cohort, form)
    options = _options(form)
    if options is None:
        return _render(cohort, form, error=_("Check the options below."), status=400)
    try:
        result = planning.propose_plan(cohort, options)
    except planning.PlanningError as exc:
        return _render(cohort, form, error=str(exc), status=422)
    return _render(cohort, form, result=result)


def _chosen_placements(values: list[str]) -> list[planning.ChosenPlacement]:
    """The posted "unit|room id|YYYY-MM-DDTHH:MM" values; PlanningError names the first bad one."""
    if len(values) > MAX_PLACEMENTS:
        raise planning.PlanningError(_("A plan has at most %(n)d lab sessions.", n=MAX_PLACEMENTS))
    chosen = []
    for value in values:
        parts = value.split("|")
        try:
            unit_key, room_id, starts = parts
            chosen.append(
                planning.ChosenPlacement(unit_key, int(room_id), datetime.strptime(starts, "%Y-%m-%dT%H:%M"))
            )
        except ValueError:
            raise planning.PlanningError(
                _("'%(value)s' is not a placement of this plan.", value=value[:100])
            ) from None
    return chosen


@bp.route("/cohorts/<int:cohort_id>/accept", methods=["POST"])
@access.roles(Role.ADMIN, Role.TRAINER)
def accept_plan(cohort_id: int):
    cohort = get_cohort_or_404(cohort_id)
    confirm = ConfirmForm()
    if not confirm.validate_on_submit():
        abort(400)
    form = PlanForm(formdata=None)
    form.room_ids.choices = _room_choices(cohort)
    options_query = request.form.get("options", "")[:5000]
    try:
        chosen = _chosen_placements(request.form.getlist("placement"))
        sessions = planning.accept_plan(cohort, chosen, current_user)
    except SessionConflict as exc:
        db.session.rollback()
        return _render(
            cohort,
            form,
            error=_("Nothing was saved: %(reason)s Propose a new plan.", reason=str(exc)),
            status=409,
            options_query=options_query,
        )
    except DomainError as exc:
        db.session.rollback()
        return _render(
            cohort,
            form,
            error=_("Nothing was saved: %(reason)s", reason=str(exc)),
            status=400,
            options_query=options_query,
        )
    db.session.commit()
    flash(
        _("%(n)d lab sessions created for cohort %(cohort)s.", n=len(sessions), cohort=cohort.code), "success"
    )
    return redirect(url_for("labs_planner.plan_cohort", cohort_id=cohort.id))
