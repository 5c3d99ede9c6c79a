"""Blended LMS core: the application factory and plugin host."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["ConfigError", "create_app"]


class ConfigError(RuntimeError):
    """The configuration cannot run an app (no secret key, unknown plugin, bad value)."""


def default_instance_path() -> Path:
    """``$LMS_INSTANCE_PATH``, else ``./instance`` in the working directory."""
    return Path(os.environ.get("LMS_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """Defaults, then instance/config.py, then LMS_* environment variables, then ``overrides``."""
    app.config.from_object("lms.config")
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("LMS")
    if overrides:
        app.config.update(overrides)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'lms.sqlite3'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["DATABASE_URL"])
    if not app.config.get("SECRET_KEY"):
        raise ConfigError(
            f"no SECRET_KEY: run `lms init` to write one into {app.instance_path}/config.py "
            "(or set LMS_SECRET_KEY)"
        )
    served_over_https = str(app.config["PUBLIC_URL"]).lower().startswith("https://")
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if app.config.get(key) is None:
            app.config[key] = served_over_https


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the LMS: configuration, extensions, core blueprints, then the configured plugins."""
    from flask import Flask

    instance_path = Path((config or {}).get("INSTANCE_PATH") or default_instance_path())
    app = Flask("lms", instance_path=str(instance_path), instance_relative_config=True)
    load_config(app, config)
    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]

    from lms import i18n, models  # noqa: F401  (models registers the tables)
    from lms.extensions import babel, csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    login_manager.init_app(app)
    i18n.init_app(app)

    from lms import queue, web

    web.init_app(app)
    queue.init_app(app)

    from lms.plugins import PluginError, load_plugins, parse_plugin_names

    try:
        plugins = load_plugins(parse_plugin_names(app.config.get("PLUGINS")))
    except PluginError as exc:
        raise ConfigError(str(exc)) from exc
    app.extensions["lms.plugins"] = plugins
    for plugin in plugins:
        for blueprint in plugin.blueprints():
            app.register_blueprint(blueprint)
        plugin.init_app(app)
    return app
