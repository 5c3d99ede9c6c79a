"""``lms labs ...``: planning and lab kits for sites without a reliable connection."""

import click


@click.group("labs")
def labs_group() -> None:
    """Offline labs: planner and lab kits."""
