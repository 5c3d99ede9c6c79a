"""Database helpers used by the CLI and the tests."""

from pathlib import Path


def upgrade_database(revision: str = "head") -> None:
    """Apply the Alembic migrations (one history for the core and every plugin)."""
    import flask_migrate

    flask_migrate.upgrade(directory=str(Path(__file__).parent / "migrations"), revision=revision)
