from __future__ import annotations

from typing import TYPE_CHECKING

from lms.plugins import Plugin

if TYPE_CHECKING:
    from flask import Flask


class LabsPlugin(Plugin):
    """Offline lab sessions at training-base sites: schedule, bookings and on-site attendance."""

    name = "labs"

    def init_app(self, app: Flask) -> None:
        from labs import models  # noqa: F401  (registers the labs tables on the shared metadata)


plugin = LabsPlugin()
