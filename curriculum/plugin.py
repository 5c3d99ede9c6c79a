from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lms.plugins import Plugin

if TYPE_CHECKING:
    import click
    from flask import Flask

SHIPPED_COURSES = Path(__file__).parent / "courses"
DEMO_COURSE = SHIPPED_COURSES / "ai-engineering-technician-primary"


class CurriculumPlugin(Plugin):
    """Courses as versioned files: loader, validator, importer, export, and the shipped courses."""

    name = "curriculum"
    cli_name = "curriculum"

    def cli(self) -> click.Group:
        from curriculum.cli import curriculum_group

        return curriculum_group

    def init_app(self, app: Flask) -> None:
        from lms import signals

        signals.demo_loaded.connect(_import_demo_course, weak=False)


def _import_demo_course(sender: Any, *, cohort, **_: Any) -> None:
    """`lms demo`: import the shipped primary-level course and put the demo cohort on it."""
    from curriculum.importer import import_course
    from curriculum.loader import load_course

    import_course(load_course(DEMO_COURSE))


plugin = CurriculumPlugin()
