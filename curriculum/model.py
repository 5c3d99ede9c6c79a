"""The course files as frozen dataclasses: what the loader returns and the importer writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCALES = ("zh_CN", "en")


@dataclass(frozen=True)
class Text:
    """A text in both locales."""

    zh_CN: str
    en: str

    @classmethod
    def of(cls, value: dict[str, str]) -> Text:
        return cls(zh_CN=value["zh_CN"], en=value["en"])

    def as_dict(self) -> dict[str, str]:
        return {"zh_CN": self.zh_CN, "en": self.en}


@dataclass(frozen=True)
class Titled:
    id: str
    title: Text


@dataclass(frozen=True)
class QuizOption:
    id: str
    text: Text


@dataclass(frozen=True)
class QuizQuestion:
    id: str
    type: str  # single | multiple | true_false | fill
    prompt: Text
    explanation: Text
    answer: Any  # option id | list of option ids | bool | {locale: [accepted answers]}
    options: tuple[QuizOption, ...] = ()


@dataclass(frozen=True)
class Unit:
    id: str
    kind: str  # lesson | quiz | lab | exercise
    module_id: str
    title: Text
    competencies: tuple[str, ...]
    minutes: int = 0
    content: Text | None = None  # lesson Markdown, per locale
    plan: Text | None = None  # lab plan Markdown, per locale
    questions: tuple[QuizQuestion, ...] = ()
    pass_mark: int | None = None
    exercises: tuple[str, ...] = ()
    notebook_path: str | None = None
    notebook: str | None = None  # the nbgrader source notebook (JSON text)
    points: float | None = None
    due_days: int | None = None


@dataclass(frozen=True)
class Module:
    id: str
    title: Text
    summary: Text
    work_functions: tuple[str, ...]
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class Hours:
    total: float
    online: float
    offline: float


@dataclass(frozen=True)
class CourseFiles:
    """A whole course version, read from its folder."""

    root: Path
    schema_version: int
    slug: str
    code: str
    version: str
    level: str
    title: Text
    summary: Text
    standard_code: str
    standard_edition: int
    standard_title: Text
    work_functions: tuple[Titled, ...]
    hours: Hours
    competencies: tuple[Titled, ...]
    modules: tuple[Module, ...]
    # course.yaml's ``completion`` rules as written (None: the defaults, see lms.completion)
    completion: dict[str, Any] | None = None
    assets: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def units(self) -> list[Unit]:
        """Every unit in teaching order."""
        return [unit for module in self.modules for unit in module.units]
