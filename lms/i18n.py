"""Locale and time-zone selection, and the template filters that show UTC times in the user's zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, g, has_request_context, request, session
from flask_babel import format_date, format_datetime, get_locale
from flask_login import current_user


def _user():
    if has_request_context() and request.path.startswith("/api/"):
        return getattr(g, "api_user", None)
    return current_user if has_request_context() else None


def supported_locales() -> tuple[str, ...]:
    return tuple(current_app.config["LANGUAGES"])


def normalise_locale(value: str | None) -> str | None:
    """Map ``zh``, ``zh-CN``, ``zh_Hans_CN`` and ``en-US`` style tags onto a supported locale."""
    if not value:
        return None
    tag = value.replace("-", "_").lower()
    if tag.startswith("zh"):
        return "zh_CN"
    if tag.startswith("en"):
        return "en"
    return None


def select_locale() -> str:
    """The user's own setting, then the session's choice, then Accept-Language, then the default.

    Babel expands ``zh_CN`` to ``zh_Hans_CN``, so the Chinese catalog lives in translations/zh_Hans_CN.
    """
    user = _user()
    if user is not None and user.is_authenticated and user.locale in supported_locales():
        return user.locale
    if has_request_context():
        chosen = session.get("locale")
        if chosen in supported_locales():
            return chosen
        for tag, _quality in request.accept_languages:
            locale = normalise_locale(tag)
            if locale:
                return locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    """The user's time zone, or the default (Asia/Shanghai)."""
    user = _user()
    if user is not None and user.is_authenticated and is_valid_timezone(user.timezone):
        return user.timezone
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


def is_valid_timezone(name: str | None) -> bool:
    """True for an IANA zone name this machine knows."""
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def current_locale() -> str:
    """The locale of this request as one of LANGUAGES (``zh_CN`` or ``en``)."""
    return normalise_locale(str(get_locale() or "")) or current_app.config["BABEL_DEFAULT_LOCALE"]


def _local_datetime(value: datetime | None, fmt: str = "medium") -> str:
    return "" if value is None else format_datetime(value, fmt)


def _local_date(value: date | None, fmt: str = "medium") -> str:
    return "" if value is None else format_date(value, fmt)


def init_app(app: Flask) -> None:
    app.add_template_filter(_local_datetime, "datetime")
    app.add_template_filter(_local_date, "date")
    app.add_template_global(current_locale, "current_locale")
