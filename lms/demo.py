"""The demo scenario: a university's continuing-education school runs a live 64-hour primary-level
AI Engineering Technician class of 29 trainees; an accredited assessment site examines them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import select

from lms import signals
from lms.extensions import db
from lms.models import (
    Cohort,
    Course,
    CourseLevel,
    CourseModule,
    CourseUnit,
    Delivery,
    ExamRoom,
    HoursSource,
    Institution,
    InstitutionKind,
    ProgressStatus,
    Role,
    UnitKind,
    UnitProgress,
    User,
)
from lms.services import accounts, cohorts

TRAINING_BASE = (
    "DEMO-TB",
    "东南理工大学继续教育学院",
    "Southeast Polytechnic University, School of Continuing Education",
)
ASSESSMENT_SITE = (
    "DEMO-AS",
    "江苏省人工智能职业技能等级认定中心（南京考核站）",
    "Jiangsu AI Skills Assessment Centre (Nanjing site)",
)
COHORT_CODE = "AIET-P-DEMO"
COURSE_CODE = "AIET-P"

TELECOM = "华信通信集团江苏省分公司"
CONSTRUCTION = "中原建设工程局第三工程有限公司"
UNIVERSITIES = ("东南理工大学", "金陵信息职业技术学院", "江南科技大学")

# 29 trainees: 12 from the telecom branch, 10 from the construction bureau, 7 final-year students.
TRAINEE_NAMES = [
    "王志强",
    "李婷",
    "张伟",
    "刘洋",
    "陈静",
    "杨帆",
    "赵磊",
    "黄晓梅",
    "周杰",
    "吴昊",
    "徐丽娜",
    "孙鹏",
    "马俊",
    "朱慧",
    "胡斌",
    "郭晨",
    "何雪",
    "高翔",
    "林倩",
    "罗浩",
    "梁文博",
    "宋佳怡",
    "郑凯",
    "谢雨桐",
    "韩立",
    "唐欣然",
    "冯子豪",
    "邓佳琪",
    "曹宇航",
]


def _employer(index: int) -> str:
    if index < 12:
        return TELECOM
    if index < 22:
        return CONSTRUCTION
    return UNIVERSITIES[(index - 22) % len(UNIVERSITIES)]


def _institution(code: str, name: str, name_en: str, kind: InstitutionKind) -> Institution:
    found = db.session.scalar(select(Institution).where(Institution.code == code))
    return found or cohorts.create_institution(
        code=code, name=name, name_en=name_en, kind=kind, address="江苏省南京市"
    )


def _user(
    username: str,
    real_name: str,
    password: str,
    role: Role,
    institution: Institution | None,
    employer: str = "",
    phone: str = "",
) -> User:
    user = accounts.get_user_by_username(username)
    if user is None:
        user = accounts.create_user(
            username=username,
            real_name=real_name,
            password=password,
            employer=employer,
            phone=phone,
            email=f"{username}@demo.example.cn",
            grants=[(role, institution)],
        )
    return user


def load_demo(password: str = "lms-demo", today: date | None = None) -> dict[str, list[str]]:
    """Create (or keep) the demo rows and commit; returns the logins by role."""
    today = today or date.today()
    base = _institution(*TRAINING_BASE, InstitutionKind.TRAINING_BASE)
    site = _institution(*ASSESSMENT_SITE, InstitutionKind.ASSESSMENT_SITE)
    admin = _user("admin", "系统管理员", password, Role.ADMIN, None)
    trainers = [
        _user("trainer1", "沈建国", password, Role.TRAINER, base, employer=TRAINING_BASE[1]),
        _user("trainer2", "陆晓燕", password, Role.TRAINER, base, employer=TRAINING_BASE[1]),
    ]
    assessor = _user("assessor1", "钱文华", password, Role.ASSESSOR, site, employer=ASSESSMENT_SITE[1])
    trainees = [
        _user(
            f"trainee{i + 1:02d}",
            name,
            password,
            Role.TRAINEE,
            base,
            employer=_employer(i),
            phone=f"139{i + 1:08d}",
        )
        for i, name in enumerate(TRAINEE_NAMES)
    ]
    course = db.session.scalar(select(Course).where(Course.code == COURSE_CODE))
    if course is None:
        course = Course(
            code=COURSE_CODE,
            title="人工智能工程技术人员（初级）",
            title_en="AI Engineering Technician (Primary Level)",
            level=CourseLevel.PRIMARY,
            total_hours=64,
            online_hours=32,
            offline_hours=32,
        )
        db.session.add(course)
        db.session.flush()
    cohort = cohorts.get_cohort_by_code(COHORT_CODE)
    if cohort is None:
        cohort = cohorts.create_cohort(
            code=COHORT_CODE,
            name="人工智能工程技术人员（初级）演示班",
            course=course,
            training_base=base,
            starts_on=today - timedelta(days=14),
            ends_on=today + timedelta(days=14),
            required_hours=64,
            trainers=trainers,
        )
    enrolled = {e.user_id for e in cohort.enrollments}
    for trainee in trainees:
        if trainee.id not in enrolled:
            cohorts.enroll(trainee, cohort)
    db.session.flush()
    signals.demo_loaded.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        cohort=cohort,
        trainers=trainers,
        trainees=trainees,
        password=password,
    )
    for code, name, seats in (("K101", "第一考场", 30), ("K102", "第二考场（机房）", 40)):
        if (
            db.session.scalar(select(ExamRoom).where(ExamRoom.site_id == site.id, ExamRoom.code == code))
            is None
        ):
            db.session.add(ExamRoom(site_id=site.id, code=code, name=name, seats=seats))
    load_completion_demo(cohort, trainees)
    db.session.commit()
    return {
        "admin": [admin.username],
        "trainer": [t.username for t in trainers],
        "assessor": [assessor.username],
        "trainee": [f"{trainees[0].username} .. {trainees[-1].username}"],
    }


def load_completion_demo(cohort: Cohort, trainees: list[User]) -> None:
    """trainee01 has done the whole course (so holds a certificate); trainee02 all but the last two lab units,
    one lab short of the rules (the shipped course asks for seven of its eight).
    Their evidence goes in the ledger and progress as the real events would put it (marked as demo)."""
    from lms.services import completion
    from lms.services.hours import credit_hours

    version_id = cohort.course_version_id
    if version_id is None or len(trainees) < 2:
        return
    units = db.session.scalars(
        select(CourseUnit)
        .join(CourseModule, CourseUnit.module_id == CourseModule.id)
        .where(CourseUnit.version_id == version_id)
        .order_by(CourseModule.position, CourseUnit.position)
    ).all()
    last_labs = [unit.key for unit in units if unit.kind == UnitKind.LAB][-2:]
    start = datetime.combine(cohort.starts_on, time(1, 0), tzinfo=UTC)
    for trainee, skipped in ((trainees[0], []), (trainees[1], last_labs)):
        for day, unit in enumerate(units):
            if unit.key in skipped:
                continue
            at = start + timedelta(hours=day * 6)
            progress = db.session.scalar(
                select(UnitProgress).where(
                    UnitProgress.user_id == trainee.id,
                    UnitProgress.cohort_id == cohort.id,
                    UnitProgress.unit_key == unit.key,
                )
            )
            if progress is None:
                progress = UnitProgress(
                    user_id=trainee.id, cohort_id=cohort.id, unit_key=unit.key, started_at=at
                )
                db.session.add(progress)
            progress.status, progress.completed_at, progress.attempts = ProgressStatus.COMPLETED, at, 1
            if unit.kind == UnitKind.QUIZ:
                progress.best_score = 90.0
            elif unit.kind == UnitKind.EXERCISE:
                progress.best_score = 85.0
            elif unit.kind == UnitKind.LESSON:
                progress.active_seconds = unit.minutes * 60
            if unit.kind in (UnitKind.LESSON, UnitKind.QUIZ):
                progress.credited = True
                credit_hours(
                    trainee,
                    cohort,
                    source=HoursSource.ONLINE_UNIT,
                    source_ref=f"{cohort.id}:{unit.key}",
                    delivery=Delivery.ONLINE,
                    minutes=unit.minutes,
                    evidence={
                        "unit_key": unit.key,
                        "unit_kind": unit.kind.value,
                        "active_seconds": unit.minutes * 60,
                        "completed_at": at.isoformat(),
                        "demo": True,
                    },
                )
            elif unit.kind == UnitKind.LAB:
                credit_hours(
                    trainee,
                    cohort,
                    source=HoursSource.LAB_ATTENDANCE,
                    source_ref=f"demo:{cohort.id}:{unit.key}",
                    delivery=Delivery.OFFLINE,
                    minutes=unit.minutes,
                    evidence={
                        "kind": "lab_attendance",
                        "unit_key": unit.key,
                        "demo": True,
                        "starts_at": at.isoformat(),
                        "ends_at": (at + timedelta(minutes=unit.minutes)).isoformat(),
                        "checked_in_at": at.isoformat(),
                    },
                )
            db.session.flush()
        completion.reevaluate(trainee, cohort)
