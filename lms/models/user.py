import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from lms.extensions import Model
from lms.models.institution import Institution
from lms.timeutil import UTCDateTime, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    TRAINER = "trainer"
    ASSESSOR = "assessor"
    TRAINEE = "trainee"


class User(UserMixin, Model):
    """A person who signs in: trainee, trainer, assessor or administrator (by role grants)."""

    __tablename__ = "lms_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    real_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str] = mapped_column(String(32), default="")
    employer: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str | None] = mapped_column(String(10))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    grants: Mapped[list["RoleGrant"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def is_active(self) -> bool:
        return self.active

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash of the password."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        """True when the password matches the stored hash."""
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def has_role(self, role: Role, institution_id: int | None = None) -> bool:
        """True when the user holds the role (at the institution, when one is given)."""
        return any(
            g.role == role and (institution_id is None or g.institution_id in (None, institution_id))
            for g in self.grants
        )

    @property
    def roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    @property
    def is_platform_admin(self) -> bool:
        """An admin grant with no institution covers the whole platform."""
        return any(g.role == Role.ADMIN and g.institution_id is None for g in self.grants)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class RoleGrant(Model):
    """A role held at one institution; an admin grant with no institution is platform-wide."""

    __tablename__ = "lms_role_grant"
    __table_args__ = (UniqueConstraint("user_id", "role", "institution_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("lms_institution.id"), index=True)

    user: Mapped[User] = relationship(back_populates="grants")
    institution: Mapped[Institution | None] = relationship(lazy="joined")


class LoginFailure(Model):
    """One failed sign-in, kept for throttling by account and by address."""

    __tablename__ = "lms_login_failure"
    __table_args__ = (
        Index("ix_lms_login_failure_username_at", "username", "at"),
        Index("ix_lms_login_failure_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
