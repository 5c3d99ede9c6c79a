"""Administration: institutions, users (create, import, edit, roles, password reset, deactivation),
cohorts."""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from lms import access
from lms.extensions import db
from lms.forms import (
    CohortForm,
    ConfirmForm,
    EnrollForm,
    GrantForm,
    ImportForm,
    InstitutionForm,
    PasswordResetForm,
    UserEditForm,
    UserForm,
    choices,
    role_choices,
)
from lms.models import Cohort, Course, Enrollment, Institution, InstitutionKind, Role, RoleGrant, User
from lms.services import DomainError, accounts, user_import
from lms.services import cohorts as cohort_service

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE_SIZE = 50


def administered_institution_ids(user: User) -> set[int] | None:
    """None for a platform admin (everything); otherwise the institutions the user administers."""
    if user.is_platform_admin:
        return None
    return {g.institution_id for g in user.grants if g.role == Role.ADMIN and g.institution_id}


def institutions_for_admin(user: User) -> list[Institution]:
    scope = administered_institution_ids(user)
    query = select(Institution).order_by(Institution.code)
    if scope is not None:
        query = query.where(Institution.id.in_(scope))
    return list(db.session.scalars(query))


def can_administer_user(admin: User, user: User) -> bool:
    scope = administered_institution_ids(admin)
    return scope is None or any(g.institution_id in scope for g in user.grants)


def get_user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or not can_administer_user(current_user, user):
        abort(404)
    return user


def institution_choices(kind: InstitutionKind | None = None, allow_platform: bool = False):
    pairs = [(0, _("The whole platform"))] if allow_platform and current_user.is_platform_admin else []
    for institution in institutions_for_admin(current_user):
        if kind is None or institution.kind == kind:
            pairs.append((institution.id, institution.display_name(_locale())))
    return choices(pairs)


def _locale() -> str:
    from lms.i18n import current_locale

    return current_locale()


@bp.route("/users")
@access.roles(Role.ADMIN)
def list_users():
    q = request.args.get("q", "").strip()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = select(User)
    scope = administered_institution_ids(current_user)
    if scope is not None:
        query = query.where(User.grants.any(RoleGrant.institution_id.in_(scope)))
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            or_(
                User.username.like(like),
                func.lower(User.real_name).like(like),
                func.lower(User.employer).like(like),
            )
        )
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    users = db.session.scalars(
        query.order_by(User.username).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    return render_template(
        "lms/admin/users.html", users=users, q=q, page=page, total=total, pages=max(1, -(-total // PAGE_SIZE))
    )


@bp.route("/users/new", methods=["GET", "POST"])
@access.roles(Role.ADMIN)
def create_user():
    form = UserForm()
    form.role.choices = role_choices()
    form.institution_id.choices = institution_choices(allow_platform=True)
    status = 200
    if form.validate_on_submit():
        institution = (
            db.session.get(Institution, form.institution_id.data) if form.institution_id.data else None
        )
        try:
            user = accounts.create_user(
                username=form.username.data or "",
                real_name=form.real_name.data or "",
                password=form.password.data,
                email=form.email.data or "",
                phone=form.phone.data or "",
                employer=form.employer.data or "",
                grants=[(Role(form.role.data), institution)],
                actor=current_user,
            )
        except accounts.InvalidField as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("User %(username)s created.", username=user.username), "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    if form.is_submitted():
        status = 400
    return render_template("lms/admin/user_new.html", form=form), status


@bp.route("/users/import", methods=["GET", "POST"])
@access.roles(Role.ADMIN)
def import_users():
    form = ImportForm()
    if not form.validate_on_submit():
        return _render_import(form), 400 if form.is_submitted() else 200
    max_bytes = current_app.config["USER_IMPORT_MAX_BYTES"]
    data = form.file.data.read(max_bytes + 1)  # never read more than the limit allows
    if len(data) > max_bytes:
        form.file.errors.append(
            _("The file is larger than %(n)d KB; split it into smaller files.", n=max_bytes // 1024)
        )
        return _render_import(form), 413
    try:
        result = user_import.import_users_csv(
            data,
            actor=current_user,
            dry_run=form.dry_run.data,
            institution_code=None,
            max_bytes=max_bytes,
            max_rows=current_app.config["USER_IMPORT_MAX_ROWS"],
        )
    except user_import.ImportRejected as exc:
        db.session.rollback()
        return _render_import(form, problems=exc.problems), 422
    if result.dry_run:
        db.session.rollback()
        return _render_import(form, result=result), 200
    db.session.commit()
    flash(
        _(
            "Imported %(created)d user(s) and made %(enrolled)d enrolment(s). They cannot sign in until "
            "you set a password for each.",
            created=result.created,
            enrolled=result.enrolled,
        ),
        "success",
    )
    return redirect(url_for("admin.list_users"), 303)


def _render_import(form: ImportForm, problems=None, result=None) -> str:
    return render_template(
        "lms/admin/import_users.html",
        form=form,
        problems=problems,
        result=result,
        columns=user_import.COLUMNS,
        example=user_import.EXAMPLE_ROW,
        max_kb=current_app.config["USER_IMPORT_MAX_BYTES"] // 1024,
        max_rows=current_app.config["USER_IMPORT_MAX_ROWS"],
    )


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@access.roles(Role.ADMIN)
def edit_user(user_id: int):
    user = get_user_or_404(user_id)
    form = UserEditForm(obj=user)
    status = 200
    if form.validate_on_submit():
        try:
            accounts.update_profile(
                user,
                actor=current_user,
                email=form.email.data or "",
                phone=form.phone.data or "",
                real_name=form.real_name.data or "",
                employer=form.employer.data or "",
            )
        except accounts.InvalidField as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    if form.is_submitted():
        status = 400
    return _render_user(user, form), status


def _render_user(user: User, form=None, password_form=None, grant_form=None):
    grant_form = grant_form or GrantForm()
    grant_form.role.choices = role_choices()
    grant_form.institution_id.choices = institution_choices(allow_platform=True)
    enrollments = db.session.scalars(select(Enrollment).where(Enrollment.user_id == user.id)).all()
    return render_template(
        "lms/admin/user_edit.html",
        user=user,
        form=form or UserEditForm(obj=user),
        password_form=password_form or PasswordResetForm(),
        grant_form=grant_form,
        confirm_form=ConfirmForm(),
        enrollments=enrollments,
    )


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@access.roles(Role.ADMIN)
def reset_user_password(user_id: int):
    user = get_user_or_404(user_id)
    form = PasswordResetForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(user, form.new_password.data or "", current_user)
        except accounts.InvalidField as exc:
            form.new_password.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Password of %(username)s reset.", username=user.username), "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return _render_user(user, password_form=form), 400


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
@access.roles(Role.ADMIN)
def deactivate_user(user_id: int):
    return _set_active(user_id, False)


@bp.route("/users/<int:user_id>/reactivate", methods=["POST"])
@access.roles(Role.ADMIN)
def reactivate_user(user_id: int):
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool):
    user = get_user_or_404(user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        accounts.set_active(user, active, current_user)
    except DomainError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.edit_user", user_id=user.id), 303)
    db.session.commit()
    flash(_("Account reactivated.") if active else _("Account deactivated."), "success")
    return redirect(url_for("admin.edit_user", user_id=user.id), 303)


@bp.route("/users/<int:user_id>/grants", methods=["POST"])
@access.roles(Role.ADMIN)
def add_grant(user_id: int):
    user = get_user_or_404(user_id)
    form = GrantForm()
    form.role.choices = role_choices()
    form.institution_id.choices = institution_choices(allow_platform=True)
    if not form.validate_on_submit():
        return _render_user(user, grant_form=form), 400
    institution = db.session.get(Institution, form.institution_id.data) if form.institution_id.data else None
    accounts.grant_role(user, Role(form.role.data), institution, current_user)
    db.session.commit()
    flash(_("Role granted."), "success")
    return redirect(url_for("admin.edit_user", user_id=user.id), 303)


@bp.route("/users/<int:user_id>/grants/<int:grant_id>/revoke", methods=["POST"])
@access.roles(Role.ADMIN)
def revoke_grant(user_id: int, grant_id: int):
    user = get_user_or_404(user_id)
    grant = next((g for g in user.grants if g.id == grant_id), None)
    if grant is None or not ConfirmForm().validate_on_submit():
        abort(404 if grant is None else 400)
    scope = administered_institution_ids(current_user)
    if scope is not None and grant.institution_id not in scope:
        abort(403)
    if user.id == current_user.id and grant.role == Role.ADMIN:
        flash(_("You cannot remove your own administrator role."), "error")
        return redirect(url_for("admin.edit_user", user_id=user.id), 303)
    accounts.revoke_role(user, grant, current_user)
    db.session.commit()
    flash(_("Role removed."), "success")
    return redirect(url_for("admin.edit_user", user_id=user.id), 303)


@bp.route("/institutions", methods=["GET", "POST"])
@access.roles(Role.ADMIN)
def list_institutions():
    form = InstitutionForm()
    status = 200
    if form.is_submitted():
        if not current_user.is_platform_admin:
            abort(403)
        if form.validate():
            try:
                institution = cohort_service.create_institution(
                    code=form.code.data or "",
                    name=form.name.data or "",
                    name_en=form.name_en.data or "",
                    kind=InstitutionKind(form.kind.data),
                    timezone=form.timezone.data or "Asia/Shanghai",
                    address=form.address.data or "",
                    actor=current_user,
                )
            except DomainError as exc:
                form.code.errors.append(str(exc))
            else:
                db.session.commit()
                flash(_("Institution %(code)s created.", code=institution.code), "success")
                return redirect(url_for("admin.list_institutions"), 303)
        status = 400
    return render_template(
        "lms/admin/institutions.html", institutions=institutions_for_admin(current_user), form=form
    ), status


@bp.route("/cohorts")
@access.roles(Role.ADMIN)
def list_cohorts():
    return render_template("lms/admin/cohorts.html", cohorts=cohort_service.visible_cohorts(current_user))


@bp.route("/cohorts/new", methods=["GET", "POST"])
@access.roles(Role.ADMIN)
def create_cohort():
    form = CohortForm()
    form.course_id.choices = choices(
        (c.id, c.display_title(_locale())) for c in db.session.scalars(select(Course).order_by(Course.code))
    )
    form.training_base_id.choices = institution_choices(InstitutionKind.TRAINING_BASE)
    trainers = db.session.scalars(
        select(User).where(User.grants.any(RoleGrant.role == Role.TRAINER)).order_by(User.username)
    ).all()
    form.trainer_ids.choices = choices((t.id, f"{t.real_name} ({t.username})") for t in trainers)
    status = 200
    if form.validate_on_submit():
        course = db.session.get(Course, form.course_id.data)
        base = db.session.get(Institution, form.training_base_id.data)
        assert course is not None and base is not None  # the choices came from the database
        try:
            cohort = cohort_service.create_cohort(
                code=form.code.data or "",
                name=form.name.data or "",
                course=course,
                training_base=base,
                starts_on=form.starts_on.data,
                ends_on=form.ends_on.data,
                required_hours=form.required_hours.data,
                trainers=[t for t in trainers if t.id in (form.trainer_ids.data or [])],
                actor=current_user,
            )
        except DomainError as exc:
            form.code.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Cohort %(code)s created.", code=cohort.code), "success")
            return redirect(url_for("main.show_cohort", cohort_id=cohort.id), 303)
    if form.is_submitted():
        status = 400
    return render_template("lms/admin/cohort_new.html", form=form), status


@bp.route("/cohorts/<int:cohort_id>/enrollments", methods=["POST"])
@access.roles(Role.ADMIN)
def enroll_trainees(cohort_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not cohort_service.can_administer_cohort(current_user, cohort):
        abort(404)
    form = EnrollForm()
    if not form.validate_on_submit():
        flash(_("Give at least one username."), "error")
        return redirect(url_for("main.show_cohort", cohort_id=cohort.id), 303)
    names = [n for n in re.split(r"[\s,，;；]+", form.usernames.data or "") if n]
    problems = []
    users = []
    for name in names:
        user = accounts.get_user_by_username(name)
        if user is None:
            problems.append(_("No user '%(username)s'.", username=name))
        else:
            users.append(user)
    if not problems:
        for user in users:
            try:
                cohort_service.enroll(user, cohort, current_user)
            except DomainError as exc:
                problems.append(str(exc))
    if problems:
        db.session.rollback()
        for problem in problems:
            flash(problem, "error")
        flash(_("Nobody was enrolled."), "error")
    else:
        db.session.commit()
        flash(_("%(n)d trainee(s) enrolled.", n=len(users)), "success")
    return redirect(url_for("main.show_cohort", cohort_id=cohort.id), 303)


@bp.route("/cohorts/<int:cohort_id>/enrollments/<int:enrollment_id>/withdraw", methods=["POST"])
@access.roles(Role.ADMIN)
def withdraw_enrollment(cohort_id: int, enrollment_id: int):
    cohort = db.session.get(Cohort, cohort_id)
    enrollment = db.session.get(Enrollment, enrollment_id)
    if (
        cohort is None
        or enrollment is None
        or enrollment.cohort_id != cohort.id
        or not cohort_service.can_administer_cohort(current_user, cohort)
    ):
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    cohort_service.withdraw(enrollment, current_user)
    db.session.commit()
    flash(_("%(name)s withdrawn.", name=enrollment.user.real_name), "success")
    return redirect(url_for("main.show_cohort", cohort_id=cohort.id), 303)
