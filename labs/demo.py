"""`lms demo` for labs: a site with a 30-seat lab and a 12-seat GPU lab, the demo cohort's lab units
scheduled there, one meeting in progress (so check-in can be tried at once) and the rest upcoming."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from labs.models import LabSession, Room, Site
from labs.services import create_lab_session
from lms.extensions import db
from lms.models import Cohort, CourseModule, CourseUnit, Role, UnitKind, User

SITE_CODE = "DEMO-SITE"
ZONE = "Asia/Shanghai"
OVERRIDE = "演示数据：整班在小教室分两批轮换 / demo: the class rotates through the small room"


def _room(site: Site, code: str, name: str, seats: int, gpu_seats: int) -> Room:
    room = db.session.scalar(select(Room).where(Room.site_id == site.id, Room.code == code))
    if room is None:
        room = Room(
            site=site,
            code=code,
            name=name,
            seats=seats,
            workstations=seats,
            gpu_seats=gpu_seats,
            open_from=time(8, 0),
            open_until=time(21, 30),
            open_weekdays=[1, 2, 3, 4, 5, 6, 7],
        )
        db.session.add(room)
        db.session.flush()
    return room


def load_labs_demo(sender: Any, *, cohort: Cohort, trainers: list[User], **_: Any) -> None:
    """Receiver of lms.signals.demo_loaded (safe to run twice: an existing schedule is kept)."""
    if cohort.course_version_id is None:
        return  # the course files are not imported (curriculum plugin disabled): no lab units to place
    site = db.session.scalar(select(Site).where(Site.code == SITE_CODE))
    if site is None:
        site = Site(
            code=SITE_CODE,
            name="东南理工大学人工智能实训中心",
            name_en="SPU AI Training Centre",
            address="江苏省南京市江宁区实训路 8 号 A 座",
            timezone=ZONE,
            institution=cohort.training_base,
        )
        db.session.add(site)
        db.session.flush()
    lab = _room(site, "A301", "人工智能实训室 A301", 30, 0)
    gpu = _room(site, "A305", "GPU 实训室 A305", 12, 12)
    if db.session.scalar(select(LabSession.id).where(LabSession.cohort_id == cohort.id)) is not None:
        return
    admin = db.session.scalar(select(User).where(User.grants.any(role=Role.ADMIN)))
    labs = db.session.scalars(
        select(CourseUnit)
        .join(CourseModule, CourseUnit.module_id == CourseModule.id)
        .where(CourseUnit.version_id == cohort.course_version_id, CourseUnit.kind == UnitKind.LAB)
        .order_by(CourseModule.position, CourseUnit.position)
    ).all()
    if not labs:
        return
    zone = ZoneInfo(ZONE)
    now = datetime.now(zone).replace(tzinfo=None, second=0, microsecond=0)
    # The first lab is under way: it began two minutes before the demo was loaded and runs four hours.
    in_progress = now - timedelta(minutes=2)
    plan = [(labs[0], in_progress, lab)]
    # The rest on the next two weekends (the cohort ends in two weeks): Saturday and Sunday, 09:00 and 14:00.
    next_saturday = (now + timedelta(days=(5 - now.weekday()) % 7 or 7)).replace(hour=9, minute=0)
    slots = [
        next_saturday + timedelta(days=week * 7 + day, hours=hour)
        for week in (0, 1)
        for day in (0, 1)
        for hour in (0, 5)
    ]
    for unit, start in zip(labs[1:], slots, strict=False):
        room = gpu if unit.key.startswith("m04") else lab
        plan.append((unit, start, room))
    for unit, start, room in plan:
        create_lab_session(
            cohort=cohort,
            unit_key=unit.key,
            room=room,
            trainers=trainers[:1] if room is lab else trainers[1:],
            first_start_local=start,
            duration_minutes=unit.minutes or 240,
            title=unit.title.get("zh_CN", ""),
            booking_cutoff_minutes=60,
            actor=admin,
            override_reason=OVERRIDE,
        )
