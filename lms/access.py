"""Access rules: every view declares who may use it, and one request hook enforces the declaration.

A view without a rule is refused (deny by default), and tests/lms/test_route_access.py checks every
registered route against an explicit table, so no route can be added without an access rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user

from lms.models import Role

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = "public"
SIGNED_IN = "signed_in"
ROLES = "roles"


@dataclass(frozen=True)
class AccessRule:
    kind: str
    roles: frozenset[Role] = frozenset()

    def allows(self, user: Any) -> bool:
        if self.kind == PUBLIC:
            return True
        if not user.is_authenticated:
            return False
        return self.kind == SIGNED_IN or bool(self.roles & user.roles)


def _mark(rule: AccessRule) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        view.access_rule = rule  # type: ignore[attr-defined]
        return view

    return decorate


public = _mark(AccessRule(PUBLIC))
"""Anyone, signed in or not."""

signed_in = _mark(AccessRule(SIGNED_IN))
"""Any signed-in user."""


def roles(*allowed: Role) -> Callable[[F], F]:
    """Users holding at least one of the roles (at any institution; views narrow further)."""
    return _mark(AccessRule(ROLES, frozenset(allowed)))


def rule_for(app: Flask, endpoint: str) -> AccessRule | None:
    """The declared rule of an endpoint, or None when it has none."""
    if endpoint == "static" or endpoint.endswith(".static"):
        return AccessRule(PUBLIC)
    view = app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def enforce_access() -> Any:
    """before_request hook: authenticate API calls by bearer token, then apply the view's rule."""
    if request.endpoint is None:
        return None  # 404 / 405 follow
    if is_api_request():
        from lms.services.tokens import user_for_bearer_header

        g.api_user = user_for_bearer_header(request.headers.get("Authorization"))
    rule = rule_for(current_app, request.endpoint)
    if rule is None:
        current_app.logger.error("endpoint %s declares no access rule; refused", request.endpoint)
        abort(403)
    user = g.api_user if is_api_request() else current_user
    if rule.allows(user):
        return None
    if not user.is_authenticated:
        if is_api_request():
            return _api_unauthenticated()
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(403)


def _api_unauthenticated() -> Any:
    from flask_babel import gettext

    if getattr(g, "api_token_problem", None):
        message = g.api_token_problem
    else:
        message = gettext("A bearer token is required: send 'Authorization: Bearer <token>'.")
    response = jsonify(error="unauthenticated", message=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="lms"'
    return response
