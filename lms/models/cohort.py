import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Enum, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms.extensions import Model, db
from lms.models.course import Course, CourseVersion
from lms.models.institution import Institution
from lms.models.user import User
from lms.timeutil import UTCDateTime, utcnow

cohort_trainer = Table(
    "lms_cohort_trainer",
    db.metadata,
    Column("cohort_id", ForeignKey("lms_cohort.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("lms_user.id", ondelete="CASCADE"), primary_key=True),
)


class Cohort(Model):
    """One run of a course at a training base: a class with dates, trainers and trainees."""

    __tablename__ = "lms_cohort"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    course_id: Mapped[int] = mapped_column(ForeignKey("lms_course.id"), index=True)
    training_base_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    required_hours: Mapped[int] = mapped_column(default=0)
    # The course version the cohort follows; None until the course's files are imported.
    course_version_id: Mapped[int | None] = mapped_column(ForeignKey("lms_course_version.id"), index=True)
    # The cohort's changes to the course's completion rules (same keys as course.yaml's ``completion``).
    completion_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    course: Mapped[Course] = relationship(lazy="joined")
    course_version: Mapped[CourseVersion | None] = relationship()
    training_base: Mapped[Institution] = relationship(lazy="joined")
    trainers: Mapped[list[User]] = relationship(secondary=cohort_trainer, lazy="selectin")
    enrollments: Mapped[list["Enrollment"]] = relationship(
        back_populates="cohort", cascade="all, delete-orphan"
    )


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"


class Enrollment(Model):
    """A trainee's place in a cohort."""

    __tablename__ = "lms_enrollment"
    __table_args__ = (UniqueConstraint("cohort_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id", ondelete="CASCADE"), index=True)
    status: Mapped[EnrollmentStatus] = mapped_column(
        Enum(EnrollmentStatus, native_enum=False, length=20), default=EnrollmentStatus.ACTIVE
    )
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the completion rules first held (the certificate is issued then).
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    cohort: Mapped[Cohort] = relationship(back_populates="enrollments")
    user: Mapped[User] = relationship(lazy="joined")
