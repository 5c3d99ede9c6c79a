"""Separate assessment: the training base hands its eligible trainees to an accredited assessment site,
which seats them in exam sessions in its own rooms and records the national exam's results."""

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms.extensions import Model
from lms.models.certificate import Certificate
from lms.models.cohort import Cohort
from lms.models.institution import Institution
from lms.models.user import User
from lms.timeutil import UTCDateTime, utcnow


class ExamRoom(Model):
    """A room of an assessment site where the exam is sat."""

    __tablename__ = "lms_exam_room"
    __table_args__ = (UniqueConstraint("site_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    seats: Mapped[int]


class Handover(Model):
    """A roster of eligible trainees handed from a cohort's training base to an assessment site; from then
    on it is the site's, and the training base cannot change it."""

    __tablename__ = "lms_handover"

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    handed_over_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    handed_over_by_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id"))

    cohort: Mapped[Cohort] = relationship(lazy="joined")
    site: Mapped[Institution] = relationship(lazy="joined")
    handed_over_by: Mapped[User] = relationship()


class ExamSession(Model):
    """One sitting of the exam in an assessment site's room."""

    __tablename__ = "lms_exam_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("lms_exam_room.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    site: Mapped[Institution] = relationship(lazy="joined")
    room: Mapped[ExamRoom] = relationship(lazy="joined")
    candidates: Mapped[list["Candidate"]] = relationship(viewonly=True, order_by="Candidate.seat")


class CandidateStatus(enum.StrEnum):
    WAITING = "waiting"  # handed over, no exam session yet
    SCHEDULED = "scheduled"
    PASSED = "passed"
    FAILED = "failed"
    ABSENT = "absent"


class Candidate(Model):
    """A trainee's place on a handed-over roster, one row per attempt: a fail or an absence opens the
    next attempt (a retake) as a new row."""

    __tablename__ = "lms_candidate"
    __table_args__ = (
        UniqueConstraint("user_id", "cohort_id", "attempt"),
        UniqueConstraint("exam_session_id", "seat"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    handover_id: Mapped[int] = mapped_column(ForeignKey("lms_handover.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("lms_institution.id"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("lms_cohort.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_user.id"), index=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("lms_certificate.id"))
    attempt: Mapped[int] = mapped_column(default=1)
    retake_of_id: Mapped[int | None] = mapped_column(ForeignKey("lms_candidate.id"))
    status: Mapped[CandidateStatus] = mapped_column(
        Enum(CandidateStatus, native_enum=False, length=20), default=CandidateStatus.WAITING
    )
    exam_session_id: Mapped[int | None] = mapped_column(ForeignKey("lms_exam_session.id"), index=True)
    seat: Mapped[int | None]
    score: Mapped[float | None]
    # the national professional technical level certificate (专业技术等级证书) number, on a pass
    level_certificate_no: Mapped[str] = mapped_column(String(64), default="")
    result_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    handover: Mapped[Handover] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")
    certificate: Mapped[Certificate] = relationship()
    exam_session: Mapped[ExamSession | None] = relationship(lazy="joined")
