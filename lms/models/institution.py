import enum

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from lms.extensions import Model


class InstitutionKind(enum.StrEnum):
    TRAINING_BASE = "training_base"
    ASSESSMENT_SITE = "assessment_site"
    SUPPORT_CENTRE = "support_centre"


class Institution(Model):
    """A training base, an accredited assessment site or a support centre."""

    __tablename__ = "lms_institution"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[InstitutionKind] = mapped_column(Enum(InstitutionKind, native_enum=False, length=20))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    address: Mapped[str] = mapped_column(String(300), default="")

    def display_name(self, locale: str) -> str:
        """The name in the given locale, falling back to the Chinese name."""
        return self.name_en if locale == "en" and self.name_en else self.name
