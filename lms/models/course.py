import enum

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from lms.extensions import db


class CourseLevel(enum.StrEnum):
    PRIMARY = "primary"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


class Course(db.Model):
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
