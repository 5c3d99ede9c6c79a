from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from lms.plugins import Plugin

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

    from lms.models import Role, User
    from lms.plugins import DashboardPanel, NavItem

# Each module defines a blueprint named ``bp``; they are imported only when the app is built.
BLUEPRINT_MODULES: tuple[str, ...] = (
    "labs.views_planner",
    "labs.views",
    "labs.views_feeds",
    "labs.views_reports",
    "labs.views_checkin",
    "labs.api",
)


class LabsPlugin(Plugin):
    """Offline lab sessions at training-base sites: schedule, bookings and on-site attendance."""

    name = "labs"
    cli_name = "labs"

    def blueprints(self) -> list[Blueprint]:
        return [import_module(name).bp for name in BLUEPRINT_MODULES]

    def init_app(self, app: Flask) -> None:
        from labs import feeds_model, models  # noqa: F401  (registers the labs tables on the shared metadata)
        from labs.demo import load_labs_demo
        from lms import signals

        signals.demo_loaded.connect(load_labs_demo, weak=False)

    def cli(self) -> click.Group:
        from labs.cli import labs_group

        return labs_group

    def nav_items(self) -> list[NavItem]:
        from flask_babel import lazy_gettext as _l

        from lms.models import Role
        from lms.plugins import NavItem

        return [
            NavItem("labs.calendar", _l("Labs"), frozenset({Role.TRAINER, Role.ADMIN})),
            NavItem("labs.list_upcoming", _l("My labs"), frozenset({Role.TRAINEE})),
        ]

    def dashboard_panels(self, user: User, role: Role) -> list[DashboardPanel]:
        from labs import views
        from lms.models import Role
        from lms.plugins import DashboardPanel

        panels = []
        if role == Role.TRAINEE:
            context = views.trainee_panel(user)
            if context["upcoming"] or context["promoted"] or context["cancelled"] or context["can_book_more"]:
                panels.append(DashboardPanel("labs/panel_trainee.html", context=context))
        if role == Role.TRAINER and user.has_role(Role.TRAINER):
            panels.append(DashboardPanel("labs/panel_trainer.html", context=views.trainer_panel(user)))
        return panels

    def openapi_paths(self) -> dict[str, Any]:
        from labs.openapi import PATHS

        return PATHS


plugin = LabsPlugin()
