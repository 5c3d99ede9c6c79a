"""API bearer tokens: issued once in plain text, stored as SHA-256, checked on every API call."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from flask import g
from flask_babel import gettext as _
from flask_login import AnonymousUserMixin
from sqlalchemy import select

from lms.extensions import db
from lms.models import ApiToken, User
from lms.services import DomainError, audit
from lms.timeutil import utcnow

TOKEN_PREFIX = "lms_"


class TokenRejected(DomainError):
    pass


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_token(user: User, name: str, lifetime_days: int | None, actor: User | None) -> tuple[ApiToken, str]:
    """A new token for the user; the plain text is returned once and never stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        token_hash=hash_token(plaintext),
        prefix=plaintext[: len(TOKEN_PREFIX) + 6],
        name=name,
        expires_at=utcnow() + timedelta(days=lifetime_days) if lifetime_days else None,
    )
    db.session.add(token)
    db.session.flush()
    audit.record("token.issued", actor, user, token_id=token.id, name=name)
    return token, plaintext


def revoke_token(token: ApiToken, actor: User | None) -> None:
    """Stop a token from working."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record("token.revoked", actor, token.user, token_id=token.id)


def user_for_token(plaintext: str) -> User:
    """The active user the token belongs to; raises TokenRejected saying why not."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None:
        raise TokenRejected(_("The bearer token is not valid."))
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise TokenRejected(_("The bearer token has expired; ask for a new one."))
    if not token.user.active:
        raise TokenRejected(_("The account of this token is deactivated."))
    return token.user


def user_for_bearer_header(header: str | None) -> Any:
    """The user of an ``Authorization: Bearer`` header, or an anonymous user (with the reason in g)."""
    g.api_token_problem = None
    if not header:
        return AnonymousUserMixin()
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        g.api_token_problem = _("Send the token as 'Authorization: Bearer <token>'.")
        return AnonymousUserMixin()
    try:
        return user_for_token(value.strip())
    except TokenRejected as exc:
        g.api_token_problem = str(exc)
        return AnonymousUserMixin()
