from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms.extensions import Model
from lms.models.cohort import Cohort
from lms.models.institution import Institution
from lms.models.user import User
from lms.timeutil import UTCDateTime, utcnow


class Certificate(Model):
    """A training-completion certificate (培训合格证书): what it says is frozen when it is issued, so the
    PDF and the public verification page show the same thing for as long as it stands."""

    __tablename__ = "lms_certificate"
    __table_args__ = (UniqueConstraint("user_id", "cohort_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id"), index=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    holder_name: Mapped[str] = mapped_column(String(100))
    course_code: Mapped[str] = mapped_column(String(64))
    course_title: Mapped[dict[str, str]] = mapped_column(JSON)
    level: Mapped[str] = mapped_column(String(20))
    online_minutes: Mapped[int]
    offline_minutes: Mapped[int]
    # the rules it was issued under, and the checklist that met them
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("lms_user.id"))
    revoked_reason: Mapped[str] = mapped_column(String(500), default="")

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
    cohort: Mapped[Cohort] = relationship(lazy="joined")
    issuer: Mapped[Institution] = relationship(lazy="joined")

    @property
    def total_minutes(self) -> int:
        return self.online_minutes + self.offline_minutes

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
