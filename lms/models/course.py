import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms.extensions import Model
from lms.timeutil import UTCDateTime, utcnow


class CourseLevel(enum.StrEnum):
    PRIMARY = "primary"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


class Course(Model):
    """A course a training base teaches; its versions and units come from the curriculum files."""

    __tablename__ = "lms_course"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    level: Mapped[CourseLevel] = mapped_column(Enum(CourseLevel, native_enum=False, length=20))
    total_hours: Mapped[int] = mapped_column(default=0)
    online_hours: Mapped[int] = mapped_column(default=0)
    offline_hours: Mapped[int] = mapped_column(default=0)

    def display_title(self, locale: str) -> str:
        """The title in the given locale, falling back to the Chinese title."""
        return self.title_en if locale == "en" and self.title_en else self.title


class UnitKind(enum.StrEnum):
    LESSON = "lesson"
    QUIZ = "quiz"
    LAB = "lab"
    EXERCISE = "exercise"

    @property
    def is_online(self) -> bool:
        return self in (UnitKind.LESSON, UnitKind.QUIZ)


class CourseVersion(Model):
    """One imported version of a course's files; exactly one version of a course is current."""

    __tablename__ = "lms_course_version"
    __table_args__ = (UniqueConstraint("course_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("lms_course.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(40))
    schema_version: Mapped[int]
    slug: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    is_current: Mapped[bool] = mapped_column(default=False)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Descriptive parts of course.yaml kept as read: titles, standard, competencies, hours.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    course: Mapped[Course] = relationship(lazy="joined")
    modules: Mapped[list["CourseModule"]] = relationship(
        back_populates="version", order_by="CourseModule.position", cascade="all, delete-orphan"
    )


class CourseModule(Model):
    """A module of a course version, in teaching order."""

    __tablename__ = "lms_course_module"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("lms_course_version.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int]
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    summary: Mapped[dict[str, str]] = mapped_column(JSON)
    work_functions: Mapped[list[str]] = mapped_column(JSON, default=list)

    version: Mapped[CourseVersion] = relationship(back_populates="modules")
    units: Mapped[list["CourseUnit"]] = relationship(
        back_populates="module", order_by="CourseUnit.position", cascade="all, delete-orphan"
    )


class CourseUnit(Model):
    """A lesson, quiz, lab or exercise. ``key`` is the stable id that progress is kept by."""

    __tablename__ = "lms_course_unit"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("lms_course_version.id", ondelete="CASCADE"), index=True
    )
    module_id: Mapped[int] = mapped_column(ForeignKey("lms_course_module.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[UnitKind] = mapped_column(Enum(UnitKind, native_enum=False, length=10))
    position: Mapped[int]
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    minutes: Mapped[int] = mapped_column(default=0)
    competencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    # lesson: {"content": {locale: markdown}}; lab: {"plan": {...}, "exercises": [...]};
    # quiz: {"questions": [...], "pass_mark": n};
    # exercise: {"notebook": json, "notebook_path", "points", "due_days"}
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    module: Mapped[CourseModule] = relationship(back_populates="units")
    version: Mapped[CourseVersion] = relationship()


class CourseAsset(Model):
    """An image a lesson or lab plan shows, stored with its version so any web node can serve it."""

    __tablename__ = "lms_course_asset"
    __table_args__ = (UniqueConstraint("version_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("lms_course_version.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)

    version: Mapped[CourseVersion] = relationship()
