"""Wires the core's web layer into the app: blueprints, access hook, error pages, template context."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app, jsonify, render_template, request
from flask_babel import gettext, lazy_gettext
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from lms.access import enforce_access, is_api_request
from lms.extensions import db, login_manager
from lms.models import Role, User
from lms.plugins import NavItem

CORE_NAV = [
    NavItem("main.dashboard", lazy_gettext("Dashboard"), frozenset(Role)),
    NavItem("admin.list_users", lazy_gettext("Users"), frozenset({Role.ADMIN})),
    NavItem("admin.list_cohorts", lazy_gettext("Cohorts"), frozenset({Role.ADMIN})),
    NavItem("admin.list_institutions", lazy_gettext("Institutions"), frozenset({Role.ADMIN})),
    NavItem("assessment.list_sites", lazy_gettext("Assessment"), frozenset({Role.ASSESSOR})),
    NavItem("records.list_audit", lazy_gettext("Audit log"), frozenset({Role.ADMIN})),
]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


def nav_items() -> list[NavItem]:
    """Header links for the signed-in user: the core's, then each plugin's."""
    if not current_user.is_authenticated:
        return []
    items = list(CORE_NAV)
    for plugin in current_app.extensions.get("lms.plugins", []):
        items.extend(plugin.nav_items())
    user_roles = current_user.roles
    return [item for item in items if item.roles & user_roles]


def _error_response(status: int, message: str) -> Any:
    if is_api_request():
        response = jsonify(error=_ERROR_CODES.get(status, "error"), message=message)
        response.status_code = status
        return response
    return render_template("lms/error.html", status=status, message=message), status


_ERROR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "too_many_requests",
    500: "server_error",
}


def _messages() -> dict[int, str]:
    return {
        400: gettext("The request could not be understood."),
        403: gettext("You do not have access to this page."),
        404: gettext("There is nothing at this address."),
        405: gettext("This address does not accept that method."),
        413: gettext("The upload is too large."),
        429: gettext("Too many requests; wait a moment and try again."),
        500: gettext("Something went wrong on our side. The error was logged."),
    }


def handle_http_error(error: HTTPException) -> Any:
    status = error.code or 500
    message = _messages().get(status) or error.description or ""
    response = _error_response(status, message)
    allowed = dict(error.get_headers()).get("Allow")
    if allowed:  # a 405 must say which methods the address accepts (RFC 9110)
        if isinstance(response, tuple):
            response = (*response, {"Allow": allowed})
        else:
            response.headers["Allow"] = allowed
    return response


def handle_csrf_error(error: CSRFError) -> Any:
    current_app.logger.warning("CSRF refused: %s", error.description)
    return _error_response(
        400, gettext("The form expired or was not sent from this site. Reload the page and try again.")
    )


def handle_unexpected(error: Exception) -> Any:
    db.session.rollback()
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return _error_response(500, _messages()[500])


MAX_ID = 2**31 - 1  # row ids are 32-bit integers on PostgreSQL


def refuse_impossible_ids() -> None:
    """An id in the URL that no row can have is a 404 before any query (PostgreSQL would refuse it)."""
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            abort(404)


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = lazy_gettext("Please sign in to continue.")
    login_manager.login_message_category = "info"

    from lms.api import bp as api_bp
    from lms.services import completion as completion_service
    from lms.services.hours import connect_receivers
    from lms.views import account, admin, assessment, auth, completion, learn, main, records, reports

    for blueprint in (
        auth.bp,
        main.bp,
        account.bp,
        admin.bp,
        learn.bp,
        reports.bp,
        completion.bp,
        assessment.bp,
        records.bp,
        api_bp,
    ):
        app.register_blueprint(blueprint)
    app.before_request(refuse_impossible_ids)
    app.before_request(enforce_access)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    if not app.config.get("PROPAGATE_UNEXPECTED_ERRORS"):
        app.register_error_handler(Exception, handle_unexpected)
    app.context_processor(lambda: {"nav_items": nav_items(), "Role": Role})
    connect_receivers()
    completion_service.connect_receivers()
