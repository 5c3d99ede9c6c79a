from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from lms.plugins import Plugin

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

    from lms.models import Role, User
    from lms.plugins import DashboardPanel, NavItem

BLUEPRINT_MODULES: tuple[str, ...] = ("graders.views", "graders.views_grading", "graders.api")

ENGINES = ("warm", "kernel")

# Defaults for the graders' settings (instance/config.py or LMS_* variables override them).
DEFAULTS: dict[str, Any] = {
    # "bwrap" (bubblewrap sandbox, required) or "unsafe" (no sandbox: trusted local use only).
    "GRADER_SANDBOX": "bwrap",
    # "warm": each submission is a fresh run forked in a warm sandbox (graders.warm); "kernel": a Jupyter
    # kernel in a new sandbox per submission (slower; for comparison and as a fallback)
    "GRADER_ENGINE": "warm",
    "GRADER_MAX_UPLOAD_BYTES": 20 * 1024 * 1024,
    "GRADER_MAX_CELLS": 2000,
    "GRADER_CPU_SECONDS": 600,
    "GRADER_MEMORY_BYTES": 2 * 1024**3,
    "GRADER_PROCESSES": 64,
    "GRADER_OPEN_FILES": 256,
    "GRADER_FILE_BYTES": 64 * 1024**2,
    "GRADER_DISK_BYTES": 128 * 1024**2,
    "GRADER_OUTPUT_BYTES": 1024**2,
}


class GradersPlugin(Plugin):
    """nbgrader notebook assignments: sandboxed autograding, manual grading and feedback."""

    name = "graders"
    cli_name = "grade"

    def blueprints(self) -> list[Blueprint]:
        return [import_module(name).bp for name in BLUEPRINT_MODULES]

    def init_app(self, app: Flask) -> None:
        from celery.signals import worker_init, worker_ready

        from graders import models, tasks  # noqa: F401  (tables on the metadata; the task on the queue)
        from graders.demo import load_graders_demo
        from lms import signals

        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        if app.config["GRADER_ENGINE"] not in ENGINES:
            from lms import ConfigError

            raise ConfigError(
                f"LMS_GRADER_ENGINE={app.config['GRADER_ENGINE']!r} is not a grading engine: "
                f"use {' or '.join(repr(name) for name in ENGINES)}"
            )
        signals.demo_loaded.connect(load_graders_demo, weak=False)
        worker_ready.connect(tasks.start_sweeper, weak=False)
        worker_init.connect(tasks.import_grading, weak=False)

    def cli(self) -> click.Group:
        from graders.cli import grade_group

        return grade_group

    def nav_items(self) -> list[NavItem]:
        from flask_babel import lazy_gettext as _l

        from lms.models import Role
        from lms.plugins import NavItem

        return [
            NavItem("graders.list_assignments", _l("Assignments"), frozenset({Role.TRAINEE})),
            NavItem("graders_grading.queue", _l("Grading"), frozenset({Role.TRAINER, Role.ADMIN})),
        ]

    def dashboard_panels(self, user: User, role: Role) -> list[DashboardPanel]:
        from graders import views
        from lms.models import Role
        from lms.plugins import DashboardPanel

        if role == Role.TRAINEE:
            context = views.trainee_panel(user)
            if context["items"]:
                return [DashboardPanel("graders/panel_trainee.html", context=context, order=60)]
        if role == Role.TRAINER:
            return [DashboardPanel("graders/panel_trainer.html", context=views.trainer_panel(user), order=60)]
        return []

    def openapi_paths(self) -> dict[str, Any]:
        from graders.openapi import PATHS

        return PATHS


plugin = GradersPlugin()
