"""The core's models; importing this package registers every core table on the metadata."""

from lms.models.assessment import Candidate, CandidateStatus, ExamRoom, ExamSession, Handover
from lms.models.audit import AuditLog
from lms.models.certificate import Certificate
from lms.models.cohort import Cohort, Enrollment, EnrollmentStatus, cohort_trainer
from lms.models.course import (
    Course,
    CourseAsset,
    CourseLevel,
    CourseModule,
    CourseUnit,
    CourseVersion,
    UnitKind,
)
from lms.models.hours import Delivery, HoursEntry, HoursSource, LedgerIsAppendOnly
from lms.models.institution import Institution, InstitutionKind
from lms.models.progress import ProgressStatus, QuizAttempt, UnitProgress
from lms.models.token import ApiToken
from lms.models.user import LoginFailure, Role, RoleGrant, User

__all__ = [
    "ApiToken",
    "AuditLog",
    "Candidate",
    "CandidateStatus",
    "ExamRoom",
    "ExamSession",
    "Handover",
    "Certificate",
    "Cohort",
    "Course",
    "CourseAsset",
    "CourseLevel",
    "CourseModule",
    "CourseUnit",
    "CourseVersion",
    "ProgressStatus",
    "QuizAttempt",
    "UnitKind",
    "UnitProgress",
    "Delivery",
    "Enrollment",
    "EnrollmentStatus",
    "HoursEntry",
    "HoursSource",
    "Institution",
    "InstitutionKind",
    "LedgerIsAppendOnly",
    "LoginFailure",
    "Role",
    "RoleGrant",
    "User",
    "cohort_trainer",
]
