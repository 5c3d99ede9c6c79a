"""Sign in, sign out and the language switcher."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from lms import access
from lms.extensions import db
from lms.forms import LocaleForm, LoginForm
from lms.services import accounts, audit

bp = Blueprint("auth", __name__)


def safe_next(target: str | None) -> str:
    """A same-site path to go to after signing in; anything else goes to the dashboard."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("main.dashboard")


def throttle_policy() -> accounts.ThrottlePolicy:
    config = current_app.config
    return accounts.ThrottlePolicy(
        window_seconds=int(config["LOGIN_FAILURE_WINDOW"]),
        per_account=int(config["LOGIN_FAILURES_PER_ACCOUNT"]),
        per_address=int(config["LOGIN_FAILURES_PER_ADDRESS"]),
    )


@bp.route("/login", methods=["GET", "POST"])
@access.public
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    form = LoginForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                form.username.data or "",
                form.password.data or "",
                request.remote_addr or "",
                throttle_policy(),
            )
        except accounts.TooManyAttempts as exc:
            flash(str(exc), "error")
            return render_template("lms/login.html", form=form), 429, {"Retry-After": str(exc.retry_after)}
        except accounts.AuthenticationFailed as exc:
            db.session.commit()  # keep the failure for throttling
            flash(str(exc), "error")
            status = 401
        else:
            # A new session on sign-in (no fixation); its CSRF token must be minted afresh too.
            session.clear()
            g.pop("csrf_token", None)
            login_user(user)
            audit.record("user.signed_in", user, user)
            db.session.commit()
            return redirect(safe_next(form.next.data))
    elif request.method == "POST":
        status = 400
    return render_template("lms/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@access.signed_in
def logout():
    locale = current_user.locale or session.get("locale")
    logout_user()
    session.clear()
    g.pop("csrf_token", None)
    if locale:
        session["locale"] = locale  # the sign-in page stays in the language the user chose
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/locale", methods=["POST"])
@access.public
def set_locale():
    form = LocaleForm()
    if not form.validate_on_submit():
        flash(_("Unknown language."), "error")
        return redirect(safe_next(form.next.data)), 303
    session["locale"] = form.locale.data
    if current_user.is_authenticated:
        current_user.locale = form.locale.data
        db.session.commit()
    return redirect(safe_next(form.next.data), 303)
