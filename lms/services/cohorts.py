"""Institutions, courses, cohorts and enrollment."""

from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select

from lms import signals
from lms.extensions import db
from lms.models import (
    Cohort,
    Course,
    Enrollment,
    EnrollmentStatus,
    Institution,
    InstitutionKind,
    Role,
    User,
)
from lms.services import DomainError, audit


class AlreadyEnrolled(DomainError):
    pass


def get_cohort_by_code(code: str) -> Cohort | None:
    """The cohort with this code, or None."""
    return db.session.scalar(select(Cohort).where(Cohort.code == code.strip()))


def create_institution(
    *,
    code: str,
    name: str,
    kind: InstitutionKind,
    name_en: str = "",
    timezone: str = "Asia/Shanghai",
    address: str = "",
    actor: User | None = None,
) -> Institution:
    """Add an institution; codes are unique."""
    code = code.strip()
    if not code or not name.strip():
        raise DomainError(_("Code and name are required."))
    if db.session.scalar(select(Institution.id).where(Institution.code == code)):
        raise DomainError(_("Institution code '%(code)s' is already in use.", code=code))
    institution = Institution(
        code=code,
        name=name.strip(),
        name_en=name_en.strip(),
        kind=kind,
        timezone=timezone,
        address=address.strip(),
    )
    db.session.add(institution)
    db.session.flush()
    audit.record("institution.created", actor, institution, code=code)
    return institution


def create_cohort(
    *,
    code: str,
    name: str,
    course: Course,
    training_base: Institution,
    starts_on: date,
    ends_on: date,
    required_hours: int | None = None,
    trainers: list[User] | None = None,
    actor: User | None = None,
) -> Cohort:
    """Add a cohort of a course at a training base."""
    code = code.strip()
    if not code or not name.strip():
        raise DomainError(_("Code and name are required."))
    if ends_on < starts_on:
        raise DomainError(_("The cohort cannot end before it starts."))
    if training_base.kind != InstitutionKind.TRAINING_BASE:
        raise DomainError(_("Cohorts run at a training base."))
    if get_cohort_by_code(code) is not None:
        raise DomainError(_("Cohort code '%(code)s' is already in use.", code=code))
    for trainer in trainers or []:
        if not trainer.has_role(Role.TRAINER):
            raise DomainError(_("%(name)s is not a trainer.", name=trainer.real_name))
    cohort = Cohort(
        code=code,
        name=name.strip(),
        course=course,
        training_base=training_base,
        starts_on=starts_on,
        ends_on=ends_on,
        required_hours=required_hours if required_hours is not None else course.total_hours,
        trainers=list(trainers or []),
    )
    db.session.add(cohort)
    db.session.flush()
    audit.record("cohort.created", actor, cohort, code=code)
    return cohort


def enroll(user: User, cohort: Cohort, actor: User | None = None) -> Enrollment:
    """Enrol a trainee; re-enrolling a withdrawn trainee reactivates the old enrollment."""
    if not user.has_role(Role.TRAINEE):
        raise DomainError(_("%(name)s is not a trainee.", name=user.real_name))
    enrollment = db.session.scalar(
        select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.user_id == user.id)
    )
    if enrollment is not None:
        if enrollment.status == EnrollmentStatus.WITHDRAWN:
            enrollment.status = EnrollmentStatus.ACTIVE
            audit.record("enrollment.reactivated", actor, enrollment)
            return enrollment
        raise AlreadyEnrolled(
            _("%(name)s is already in cohort %(code)s.", name=user.real_name, code=cohort.code)
        )
    enrollment = Enrollment(cohort=cohort, user=user)
    db.session.add(enrollment)
    db.session.flush()
    audit.record("enrollment.created", actor, enrollment, user_id=user.id, cohort_id=cohort.id)
    signals.enrollment_created.send(None, enrollment=enrollment)
    return enrollment


def withdraw(enrollment: Enrollment, actor: User | None) -> None:
    """Withdraw a trainee from a cohort; their ledger and records stay."""
    if enrollment.status != EnrollmentStatus.WITHDRAWN:
        enrollment.status = EnrollmentStatus.WITHDRAWN
        audit.record("enrollment.withdrawn", actor, enrollment)
        signals.enrollment_withdrawn.send(None, enrollment=enrollment)


def visible_cohorts(user: User) -> list[Cohort]:
    """Cohorts the user may see: all for platform admins, the institution's for admins, taught ones for
    trainers, enrolled ones for trainees."""
    query = select(Cohort).order_by(Cohort.starts_on.desc(), Cohort.code)
    if user.is_platform_admin:
        return list(db.session.scalars(query))
    admin_of = {g.institution_id for g in user.grants if g.role == Role.ADMIN}
    cohorts = {c.id: c for c in db.session.scalars(query.where(Cohort.training_base_id.in_(admin_of)))}
    for cohort in db.session.scalars(query.where(Cohort.trainers.any(User.id == user.id))):
        cohorts[cohort.id] = cohort
    for cohort in db.session.scalars(
        query.join(Enrollment).where(
            Enrollment.user_id == user.id, Enrollment.status != EnrollmentStatus.WITHDRAWN
        )
    ):
        cohorts[cohort.id] = cohort
    return sorted(cohorts.values(), key=lambda c: (c.starts_on, c.code), reverse=True)


def current_enrollments(user: User) -> list[Enrollment]:
    """The user's enrollments that are not withdrawn, latest cohort first."""
    return list(
        db.session.scalars(
            select(Enrollment)
            .join(Cohort)
            .where(Enrollment.user_id == user.id, Enrollment.status != EnrollmentStatus.WITHDRAWN)
            .order_by(Cohort.starts_on.desc(), Cohort.id)
        )
    )


def can_manage_cohort(user: User, cohort: Cohort) -> bool:
    """Admins of its training base (or the platform) and its trainers."""
    return can_administer_cohort(user, cohort) or any(t.id == user.id for t in cohort.trainers)


def can_administer_cohort(user: User, cohort: Cohort) -> bool:
    """Admins of its training base or the platform."""
    return user.is_platform_admin or any(
        g.role == Role.ADMIN and g.institution_id == cohort.training_base_id for g in user.grants
    )
