"""Calendar feed tokens: the secret in a per-user or per-room iCalendar address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from lms.extensions import Model
from lms.timeutil import UTCDateTime, utcnow


class FeedToken(Model):
    """The token of one calendar feed, owned by a user or by a room (exactly one of them).

    The address's token is an HMAC of ``nonce`` under the app's SECRET_KEY, so the page can show the
    same address again; the database alone (nonce and SHA-256 of the token) does not give it away.
    Regenerating revokes the old row and adds a new one.
    """

    __tablename__ = "labs_feed_token"
    __table_args__ = (CheckConstraint("(user_id IS NULL) <> (room_id IS NULL)", name="one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("labs_room.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
