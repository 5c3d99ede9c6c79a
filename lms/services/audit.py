from typing import Any

from lms.extensions import db
from lms.models import AuditLog, User


def record(
    action: str,
    actor: User | None,
    target: Any = None,
    **details: Any,
) -> AuditLog:
    """Add an audit line: who (actor) did what (action) to which record (target), with details."""
    entry = AuditLog(
        action=action,
        actor_id=actor.id if actor is not None else None,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "id", "")) if target is not None else "",
        details=details,
    )
    db.session.add(entry)
    return entry
