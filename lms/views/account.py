"""The signed-in user's own settings: language, time zone, contact details and password."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from lms import access
from lms.extensions import db
from lms.forms import PasswordChangeForm, SettingsForm
from lms.services import accounts

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/", methods=["GET", "POST"])
@access.signed_in
def settings():
    user = current_user
    form = SettingsForm(obj=user)
    if not form.is_submitted():
        form.locale.data = user.locale or "zh_CN"
    password_form = PasswordChangeForm(prefix="pw")
    status = 200
    if form.validate_on_submit():
        try:
            accounts.update_profile(
                user,
                actor=user,
                email=form.email.data or "",
                phone=form.phone.data or "",
                locale=form.locale.data,
                timezone=form.timezone.data or "",
            )
        except accounts.InvalidField as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Settings saved."), "success")
            return redirect(url_for("account.settings"))
        status = 400
    elif form.is_submitted():
        status = 400
    return render_template("lms/account.html", form=form, password_form=password_form), status


@bp.route("/password", methods=["POST"])
@access.signed_in
def change_password():
    form = PasswordChangeForm(prefix="pw")
    if form.validate_on_submit():
        try:
            accounts.change_own_password(
                current_user, form.current_password.data or "", form.new_password.data or ""
            )
        except accounts.InvalidField as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Password changed."), "success")
            return redirect(url_for("account.settings"))
    settings_form = SettingsForm(obj=current_user)
    settings_form.locale.data = current_user.locale or "zh_CN"
    return render_template("lms/account.html", form=settings_form, password_form=form), 400
