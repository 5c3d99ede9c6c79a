"""Accounts: validation of user fields, creation, sign-in with throttling, passwords, deactivation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from lms.extensions import db
from lms.models import Institution, LoginFailure, Role, RoleGrant, User
from lms.services import DomainError, audit
from lms.timeutil import utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")
MIN_PASSWORD_LENGTH = 8


class InvalidField(DomainError):
    """A field value is not acceptable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UsernameTaken(InvalidField):
    pass


class AuthenticationFailed(DomainError):
    pass


class TooManyAttempts(DomainError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ThrottlePolicy:
    window_seconds: int = 900
    per_account: int = 5
    per_address: int = 30


def username_problem(username: str) -> str | None:
    """Why a username is unacceptable, or None."""
    if not USERNAME_RE.match(username):
        return _(
            "Username must be 3–64 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return None


def email_problem(email: str) -> str | None:
    """Why an e-mail address is unacceptable, or None (an empty address is allowed)."""
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        return _("'%(email)s' is not a valid e-mail address.", email=email)
    return None


def phone_problem(phone: str) -> str | None:
    """Why a phone number is unacceptable, or None (an empty number is allowed)."""
    if phone and not PHONE_RE.match(phone):
        return _("'%(phone)s' is not a valid phone number.", phone=phone)
    return None


def password_problem(password: str) -> str | None:
    """Why a new password is unacceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return _("Password must be at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)
    return None


def get_user_by_username(username: str) -> User | None:
    """The user with this username (case-insensitive), or None."""
    return db.session.scalar(select(User).where(User.username == username.strip().lower()))


def create_user(
    *,
    username: str,
    real_name: str,
    password: str | None = None,
    email: str = "",
    phone: str = "",
    employer: str = "",
    grants: list[tuple[Role, Institution | None]] | None = None,
    actor: User | None = None,
    locale: str | None = None,
) -> User:
    """Validate and add a user with role grants; raises InvalidField / UsernameTaken."""
    username = username.strip().lower()
    email = email.strip()
    for field, problem in (
        ("username", username_problem(username)),
        ("email", email_problem(email)),
        ("phone", phone_problem(phone.strip())),
        ("password", password_problem(password) if password is not None else None),
    ):
        if problem:
            raise InvalidField(field, problem)
    if not real_name.strip():
        raise InvalidField("real_name", _("Real name is required."))
    if get_user_by_username(username) is not None:
        raise UsernameTaken("username", _("Username '%(username)s' is already taken.", username=username))
    if email and db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
        raise InvalidField("email", _("E-mail address '%(email)s' is already in use.", email=email))
    user = User(
        username=username,
        real_name=real_name.strip(),
        email=email or None,
        phone=phone.strip(),
        employer=employer.strip(),
        locale=locale,
    )
    if password is not None:
        user.set_password(password)
    for role, institution in grants or []:
        user.grants.append(RoleGrant(role=role, institution=institution))
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", actor, user, username=username)
    return user


def grant_role(user: User, role: Role, institution: Institution | None, actor: User | None) -> RoleGrant:
    """Give the user a role at an institution (no-op when already held)."""
    for grant in user.grants:
        if grant.role == role and grant.institution_id == (institution.id if institution else None):
            return grant
    grant = RoleGrant(role=role, institution=institution)
    user.grants.append(grant)
    db.session.flush()
    audit.record(
        "role.granted", actor, user, role=role.value, institution_id=getattr(institution, "id", None)
    )
    return grant


def revoke_role(user: User, grant: RoleGrant, actor: User | None) -> None:
    """Remove one role grant from the user."""
    user.grants.remove(grant)
    db.session.flush()
    audit.record("role.revoked", actor, user, role=grant.role.value, institution_id=grant.institution_id)


def recent_failures(username: str, address: str, since: datetime) -> tuple[int, int]:
    """Failed sign-ins since ``since``: (for this account, from this address)."""
    by_account = db.session.scalar(
        select(func.count()).where(LoginFailure.username == username, LoginFailure.at >= since)
    )
    by_address = db.session.scalar(
        select(func.count()).where(LoginFailure.address == address, LoginFailure.at >= since)
    )
    return int(by_account or 0), int(by_address or 0)


def authenticate(
    username: str, password: str, address: str, policy: ThrottlePolicy, now: datetime | None = None
) -> User:
    """The active user whose password matches; raises TooManyAttempts or AuthenticationFailed.

    Failures are recorded (the caller commits them too), throttled per account and per address.
    """
    now = now or utcnow()
    username = username.strip().lower()[:64]
    since = now - timedelta(seconds=policy.window_seconds)
    by_account, by_address = recent_failures(username, address, since)
    if by_account >= policy.per_account or by_address >= policy.per_address:
        raise TooManyAttempts(
            _(
                "Too many failed sign-ins. Try again in %(minutes)d minutes.",
                minutes=max(1, policy.window_seconds // 60),
            ),
            retry_after=policy.window_seconds,
        )
    user = get_user_by_username(username)
    if user is None or not user.check_password(password) or not user.active:
        db.session.add(LoginFailure(username=username, address=address[:64], at=now))
        db.session.flush()
        # One message for all three cases, so sign-in does not reveal which accounts exist.
        raise AuthenticationFailed(_("Wrong username or password, or the account is deactivated."))
    user.last_login_at = now
    return user


def update_profile(
    user: User,
    *,
    actor: User,
    email: str,
    phone: str,
    locale: str | None = None,
    timezone: str | None = None,
    real_name: str | None = None,
    employer: str | None = None,
) -> None:
    """Change contact details and preferences after validating them; raises InvalidField."""
    from lms.i18n import is_valid_timezone

    email = email.strip()
    for field, problem in (("email", email_problem(email)), ("phone", phone_problem(phone.strip()))):
        if problem:
            raise InvalidField(field, problem)
    if timezone is not None and not is_valid_timezone(timezone):
        raise InvalidField("timezone", _("Unknown time zone '%(zone)s'.", zone=timezone))
    if real_name is not None and not real_name.strip():
        raise InvalidField("real_name", _("Real name is required."))
    if email and db.session.scalar(
        select(User.id).where(func.lower(User.email) == email.lower(), User.id != user.id)
    ):
        raise InvalidField("email", _("E-mail address '%(email)s' is already in use.", email=email))
    user.email = email or None
    user.phone = phone.strip()
    if locale is not None:
        user.locale = locale
    if timezone is not None:
        user.timezone = timezone
    if real_name is not None:
        user.real_name = real_name.strip()
    if employer is not None:
        user.employer = employer.strip()
    if actor.id != user.id:
        audit.record("user.updated", actor, user)


def reset_password(user: User, new_password: str, actor: User) -> None:
    """An administrator sets a new password for the user."""
    problem = password_problem(new_password)
    if problem:
        raise InvalidField("password", problem)
    user.set_password(new_password)
    audit.record("user.password_reset", actor, user)


def change_own_password(user: User, current_password: str, new_password: str) -> None:
    """The user changes their own password, proving the current one."""
    if not user.check_password(current_password):
        raise InvalidField("current_password", _("The current password is wrong."))
    problem = password_problem(new_password)
    if problem:
        raise InvalidField("new_password", problem)
    user.set_password(new_password)
    audit.record("user.password_changed", user, user)


def set_active(user: User, active: bool, actor: User) -> None:
    """Deactivate (or reactivate) an account; a deactivated user cannot sign in or use tokens."""
    if user.id == actor.id and not active:
        raise DomainError(_("You cannot deactivate your own account."))
    if user.active != active:
        user.active = active
        audit.record("user.activated" if active else "user.deactivated", actor, user)
