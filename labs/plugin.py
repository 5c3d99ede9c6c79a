from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from lms.plugins import Plugin

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

# Each module defines a blueprint named ``bp``; they are imported only when the app is built.
BLUEPRINT_MODULES: tuple[str, ...] = ()


class LabsPlugin(Plugin):
    """Offline lab sessions at training-base sites: schedule, bookings and on-site attendance."""

    name = "labs"
    cli_name = "labs"

    def blueprints(self) -> list[Blueprint]:
        return [import_module(name).bp for name in BLUEPRINT_MODULES]

    def init_app(self, app: Flask) -> None:
        from labs import models  # noqa: F401  (registers the labs tables on the shared metadata)
        from labs.demo import load_labs_demo
        from lms import signals

        signals.demo_loaded.connect(load_labs_demo, weak=False)

    def cli(self) -> click.Group:
        from labs.cli import labs_group

        return labs_group

    def openapi_paths(self) -> dict[str, Any]:
        from labs.openapi import PATHS

        return PATHS


plugin = LabsPlugin()
