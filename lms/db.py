"""Database helpers used by the CLI and the tests."""

from pathlib import Path


def upgrade_database(revision: str = "head") -> None:
    """Apply the Alembic migrations (one history for the core and every plugin)."""
    import flask_migrate

    flask_migrate.upgrade(directory=str(Path(__file__).parent / "migrations"), revision=revision)


def is_transient(error: Exception) -> bool:
    """A conflict the database resolved by refusing one side: retrying the whole unit of work is safe."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(error, OperationalError):
        return False
    text = str(error.orig).lower()
    code = getattr(error.orig, "sqlstate", None)
    return "database is locked" in text or "database is busy" in text or code in ("40001", "40P01")


def commit_with_retry(work, attempts: int = 10):
    """Run ``work()`` and commit; on a transient conflict roll back and run it again from the start.

    SQLite refuses a writer whose read snapshot went stale (SQLITE_BUSY) and PostgreSQL may abort a
    transaction on deadlock or serialization failure; in both cases the database kept its rules and
    the whole unit of work can simply be repeated.
    """
    import random
    import time

    from lms.extensions import db

    for attempt in range(attempts):
        try:
            result = work()
            db.session.commit()
            return result
        except Exception as exc:
            db.session.rollback()
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")
