"""Reads a course folder into frozen dataclasses, collecting every problem with its file and line.

Pure: no Flask, no database. ``load_course`` raises CourseInvalid listing every problem;
``validate_course`` returns the problems (empty when the course is clean).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema

from curriculum.model import (
    LOCALES,
    CourseFiles,
    Hours,
    Module,
    QuizOption,
    QuizQuestion,
    Text,
    Titled,
    Unit,
)
from curriculum.notebooks import notebook_problems
from curriculum.yamlfile import YamlDocument, YamlSyntaxError, read_yaml
from lms.completion import problems_in

CURRENT_SCHEMA_VERSION = 1
OLDEST_SCHEMA_VERSION = 1
SCHEMA_DIR = Path(__file__).parent / "schemas"
IMAGE_RE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
ASSET_SUFFIXES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MAX_TEXT_BYTES = 512 * 1024

# Chained upgrades: UPGRADES[n] turns a schema_version n course.yaml mapping into version n + 1.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a course: where it is and what to do about it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class CourseInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the course files")
        self.problems = problems


@cache
def schema(name: str, version: int) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"v{version}" / f"{name}.json").read_text(encoding="utf-8"))


class _Reader:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.problems: list[Problem] = []
        self.assets: dict[str, bytes] = {}
        self.lab_exercises: list[tuple[Path, int, str, str]] = []  # (file, line, lab id, exercise id)

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.parent))
        except ValueError:
            return str(path)

    def problem(self, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(self.rel(path), line, message))

    def yaml(self, path: Path) -> YamlDocument | None:
        if not path.is_file():
            return None
        try:
            return read_yaml(path)
        except YamlSyntaxError as exc:
            self.problem(path, exc.line, exc.message)
            return None

    def check_schema(self, document: YamlDocument, name: str, version: int) -> bool:
        validator = jsonschema.Draft202012Validator(schema(name, version))
        errors = sorted(validator.iter_errors(document.data), key=lambda e: list(map(str, e.absolute_path)))
        for error in errors:
            key = tuple(error.absolute_path)
            line = document.line_of(key)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                extra = set(error.instance) - set(error.schema.get("properties", {}))
                # point at the (first) unknown key itself rather than at the mapping holding it
                line = min((document.line_of((*key, name)) for name in extra), default=line)
            self.problem(document.path, line, _explain(error))
        return not errors

    def inside(self, relative: str, origin: YamlDocument, key: tuple) -> Path | None:
        """The file a course file names, which must exist inside the course folder."""
        pure = PurePosixPath(relative)
        path = (self.root / pure).resolve()
        if pure.is_absolute() or ".." in pure.parts or not path.is_relative_to(self.root):
            self.problem(
                origin.path,
                origin.line_of(key),
                f"'{relative}' points outside the course folder; "
                "use a path relative to and inside the course folder",
            )
            return None
        if not path.is_file():
            self.problem(
                origin.path,
                origin.line_of(key),
                f"file '{relative}' does not exist; create it or fix the path",
            )
            return None
        return path

    def text_file(self, relative: str, origin: YamlDocument, key: tuple) -> str | None:
        path = self.inside(relative, origin, key)
        if path is None:
            return None
        data = path.read_bytes()
        if len(data) > MAX_TEXT_BYTES:
            self.problem(path, 1, f"file is larger than {MAX_TEXT_BYTES // 1024} KiB; split it")
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.problem(path, 1, "not UTF-8 text; save the file as UTF-8")
            return None
        if path.suffix == ".md":
            self.markdown_assets(path, text)
        return text

    def markdown_assets(self, path: Path, text: str) -> None:
        for number, line in enumerate(text.splitlines(), start=1):
            for target in IMAGE_RE.findall(line):
                if "://" in target or target.startswith("data:"):
                    self.problem(path, number, f"image '{target}' is not a course file; put it in images/")
                    continue
                pure = PurePosixPath(target)
                asset = (self.root / pure).resolve()
                if ".." in pure.parts or not asset.is_relative_to(self.root) or pure.parts[:1] != ("images",):
                    self.problem(path, number, f"image '{target}' must be a file under images/")
                elif not asset.is_file():
                    self.problem(
                        path, number, f"image '{target}' does not exist; add it to images/ or fix the path"
                    )
                elif asset.suffix.lower() not in ASSET_SUFFIXES:
                    self.problem(path, number, f"image '{target}' must be SVG, PNG or JPEG")
                else:
                    self.assets[str(pure)] = asset.read_bytes()


def _explain(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "the file"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key(s) {', '.join(map(repr, extra))} in {where}; allowed: " + ", ".join(
            sorted(error.schema.get("properties", {}))
        )
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        if set(missing) & set(LOCALES):
            return f"{where}: missing locale {', '.join(missing)}; every text needs zh_CN and en"
        return f"{where}: missing required key(s) {', '.join(missing)}"
    if error.validator == "pattern":
        return f"{where}: {error.instance!r} does not match {error.validator_value}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "const":
        return f"{where}: must be {error.validator_value!r}, not {error.instance!r}"
    return f"{where}: {error.message}"


def _schema_version(reader: _Reader, document: YamlDocument) -> int | None:
    data = document.data
    version = data.get("schema_version") if isinstance(data, dict) else None
    line = document.line_of(("schema_version",))
    if not isinstance(version, int) or isinstance(version, bool):
        reader.problem(
            document.path,
            line,
            "schema_version is missing or not a whole number; "
            f"add e.g. 'schema_version: {CURRENT_SCHEMA_VERSION}' at the top; "
            f"this LMS reads schema_version {OLDEST_SCHEMA_VERSION} to {CURRENT_SCHEMA_VERSION}",
        )
        return None
    if version > CURRENT_SCHEMA_VERSION:
        reader.problem(
            document.path,
            line,
            f"schema_version {version} is too new: this LMS reads up to "
            f"{CURRENT_SCHEMA_VERSION}; upgrade the LMS",
        )
        return None
    if version < OLDEST_SCHEMA_VERSION:
        reader.problem(
            document.path,
            line,
            f"schema_version {version} is too old: this LMS reads "
            f"{OLDEST_SCHEMA_VERSION} to {CURRENT_SCHEMA_VERSION}; convert the course with a release "
            "that still reads it",
        )
        return None
    while version < CURRENT_SCHEMA_VERSION:
        document.data = UPGRADES[version](document.data)
        version += 1
    return version


def validate_course(root: Path) -> list[Problem]:
    """Every problem of the course folder, sorted by file and line (empty: the course is clean)."""
    try:
        load_course(root)
    except CourseInvalid as exc:
        return exc.problems
    return []


def load_course(root: Path) -> CourseFiles:
    """Read and check a course folder; raises CourseInvalid with every problem found."""
    reader = _Reader(Path(root))
    course_file = reader.root / "course.yaml"
    if not reader.root.is_dir():
        raise CourseInvalid([Problem(str(root), 1, "not a folder")])
    if not course_file.is_file():
        raise CourseInvalid([Problem(reader.rel(course_file), 1, "course.yaml is missing")])
    document = reader.yaml(course_file)
    if document is None:
        raise CourseInvalid(reader.problems)
    if not isinstance(document.data, dict):
        reader.problem(course_file, 1, "course.yaml must be a mapping of keys to values")
        raise CourseInvalid(reader.problems)
    version = _schema_version(reader, document)
    if version is None or not reader.check_schema(document, "course", version):
        raise CourseInvalid(sorted(reader.problems))
    data = document.data
    work_functions = tuple(Titled(w["id"], Text.of(w["title"])) for w in data["standard"]["work_functions"])
    competencies = tuple(Titled(c["id"], Text.of(c["title"])) for c in data["competencies"])
    _unique(
        reader,
        document,
        [("standard", "work_functions", i, "id") for i in range(len(work_functions))],
        [w.id for w in work_functions],
        "work function",
    )
    _unique(
        reader,
        document,
        [("competencies", i, "id") for i in range(len(competencies))],
        [c.id for c in competencies],
        "competency",
    )
    modules = []
    seen_ids: dict[str, tuple[Path, int]] = {}
    for index, relative in enumerate(data["modules"]):
        path = reader.inside(relative, document, ("modules", index))
        module_document = reader.yaml(path) if path else None
        if module_document is None:
            continue
        module = _read_module(
            reader,
            module_document,
            version,
            {w.id for w in work_functions},
            {c.id for c in competencies},
            seen_ids,
        )
        if module is not None:
            modules.append(module)
    course = CourseFiles(
        root=reader.root,
        schema_version=version,
        slug=data["slug"],
        code=data["code"],
        version=data["version"],
        level=data["level"],
        title=Text.of(data["title"]),
        summary=Text.of(data["summary"]),
        standard_code=str(data["standard"]["code"]),
        standard_edition=data["standard"]["edition"],
        standard_title=Text.of(data["standard"]["title"]),
        work_functions=work_functions,
        hours=Hours(**data["hours"]),
        competencies=competencies,
        modules=tuple(modules),
        completion=data.get("completion"),
        assets=reader.assets,
    )
    if not reader.problems:
        _check_course(reader, document, course)
    if reader.problems:
        raise CourseInvalid(sorted(set(reader.problems)))
    return course


def _unique(reader: _Reader, document: YamlDocument, keys: list[tuple], ids: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for key, value in zip(keys, ids, strict=True):
        if value in seen:
            reader.problem(
                document.path,
                document.line_of(key),
                f"duplicate {what} id '{value}' (first at line {seen[value]}); ids must be unique",
            )
        else:
            seen[value] = document.line_of(key)


def _read_module(
    reader: _Reader,
    document: YamlDocument,
    version: int,
    work_functions: set[str],
    competencies: set[str],
    seen_ids: dict[str, tuple[Path, int]],
) -> Module | None:
    if not isinstance(document.data, dict):
        reader.problem(document.path, 1, "a module file must be a mapping of keys to values")
        return None
    if not reader.check_schema(document, "module", version):
        return None
    data = document.data
    for index, wf in enumerate(data["work_functions"]):
        if wf not in work_functions:
            reader.problem(
                document.path,
                document.line_of(("work_functions", index)),
                f"work function '{wf}' is not declared in course.yaml standard.work_functions; "
                "declare it there or fix the id",
            )
    _claim(reader, seen_ids, data["id"], document, ("id",))
    units = []
    for index, raw in enumerate(data["units"]):
        key = ("units", index)
        _claim(reader, seen_ids, raw["id"], document, (*key, "id"))
        for c_index, tag in enumerate(raw["competencies"]):
            if tag not in competencies:
                reader.problem(
                    document.path,
                    document.line_of((*key, "competencies", c_index)),
                    f"competency '{tag}' is not declared in course.yaml competencies; "
                    "declare it there or fix the id",
                )
        unit = _read_unit(reader, document, key, raw, data["id"], version)
        if unit is not None:
            units.append(unit)
    return Module(
        id=data["id"],
        title=Text.of(data["title"]),
        summary=Text.of(data["summary"]),
        work_functions=tuple(data["work_functions"]),
        units=tuple(units),
    )


def _claim(
    reader: _Reader, seen: dict[str, tuple[Path, int]], value: str, document: YamlDocument, key: tuple
) -> None:
    line = document.line_of(key)
    if value in seen:
        first_path, first_line = seen[value]
        reader.problem(
            document.path,
            line,
            f"duplicate id '{value}' (first used at "
            f"{reader.rel(first_path)}:{first_line}); ids must be unique in the course",
        )
    else:
        seen[value] = (document.path, line)


def _read_text_pair(
    reader: _Reader, document: YamlDocument, key: tuple, paths: dict[str, str]
) -> Text | None:
    texts = {locale: reader.text_file(paths[locale], document, (*key, locale)) for locale in LOCALES}
    if any(text is None for text in texts.values()):
        return None
    return Text(zh_CN=texts["zh_CN"] or "", en=texts["en"] or "")


def _read_unit(
    reader: _Reader, document: YamlDocument, key: tuple, raw: dict[str, Any], module_id: str, version: int
) -> Unit | None:
    common = dict(
        id=raw["id"],
        kind=raw["kind"],
        module_id=module_id,
        title=Text.of(raw["title"]),
        competencies=tuple(raw["competencies"]),
    )
    kind = raw["kind"]
    if kind == "lesson":
        content = _read_text_pair(reader, document, (*key, "content"), raw["content"])
        return Unit(**common, minutes=raw["minutes"], content=content) if content else None
    if kind == "lab":
        for index, exercise in enumerate(raw["exercises"]):
            line = document.line_of((*key, "exercises", index))
            reader.lab_exercises.append((document.path, line, raw["id"], exercise))
        plan = _read_text_pair(reader, document, (*key, "plan"), raw["plan"])
        return (
            Unit(**common, minutes=raw["minutes"], plan=plan, exercises=tuple(raw["exercises"]))
            if plan
            else None
        )
    if kind == "quiz":
        path = reader.inside(raw["questions"], document, (*key, "questions"))
        questions = _read_quiz(reader, path, version) if path else None
        if questions is None:
            return None
        return Unit(**common, minutes=raw["minutes"], questions=questions, pass_mark=raw["pass_mark"])
    path = reader.inside(raw["notebook"], document, (*key, "notebook"))
    if path is None:
        return None
    source = path.read_text(encoding="utf-8", errors="replace")
    for line, message in notebook_problems(source, raw["points"]):
        reader.problem(path, line, message)
    return Unit(
        **common,
        notebook_path=raw["notebook"],
        notebook=source,
        points=raw["points"],
        due_days=raw["due_days"],
    )


def _read_quiz(reader: _Reader, path: Path, version: int) -> tuple[QuizQuestion, ...] | None:
    document = reader.yaml(path)
    if document is None:
        return None
    if not isinstance(document.data, dict):
        reader.problem(path, 1, "a quiz file must be a mapping with a 'questions' list")
        return None
    if not reader.check_schema(document, "quiz", version):
        return None
    questions = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document.data["questions"]):
        key = ("questions", index)
        line = document.line_of((*key, "id"))
        if raw["id"] in seen:
            reader.problem(
                path, line, f"duplicate question id '{raw['id']}' (first at line {seen[raw['id']]})"
            )
        seen.setdefault(raw["id"], line)
        options = tuple(QuizOption(o["id"], Text.of(o["text"])) for o in raw.get("options", []))
        option_ids = [o.id for o in options]
        if len(set(option_ids)) != len(option_ids):
            reader.problem(
                path, document.line_of((*key, "options")), f"question '{raw['id']}' repeats an option id"
            )
        answer = raw["answer"]
        named = [answer] if raw["type"] == "single" else answer if raw["type"] == "multiple" else []
        for name in named:
            if name not in option_ids:
                reader.problem(
                    path,
                    document.line_of((*key, "answer")),
                    f"question '{raw['id']}': answer '{name}' names no option; options are "
                    + ", ".join(option_ids),
                )
        questions.append(
            QuizQuestion(
                id=raw["id"],
                type=raw["type"],
                prompt=Text.of(raw["prompt"]),
                explanation=Text.of(raw["explanation"]),
                answer=answer,
                options=options,
            )
        )
    return tuple(questions)


def _check_course(reader: _Reader, document: YamlDocument, course: CourseFiles) -> None:
    units = course.units()
    exercises = {u.id for u in units if u.kind == "exercise"}
    for path, line, lab_id, exercise in reader.lab_exercises:
        if exercise not in exercises:
            reader.problem(
                path,
                line,
                f"lab '{lab_id}' practises '{exercise}', which is not an exercise "
                "unit; list only ids of exercise units",
            )
    if course.completion is not None:
        kinds = {unit.id: unit.kind for unit in units}
        for where, message in problems_in(course.completion, kinds):
            reader.problem(document.path, document.line_of(("completion", *where)), f"completion: {message}")
    online = sum(u.minutes for u in units if u.kind in ("lesson", "quiz"))
    offline = sum(u.minutes for u in units if u.kind == "lab")
    declared = course.hours
    for label, minutes, hours in (
        ("online", online, declared.online),
        ("offline", offline, declared.offline),
        ("total", online + offline, declared.total),
    ):
        if abs(minutes - hours * 60) > 0.5:
            reader.problem(
                document.path,
                document.line_of(("hours", label)),
                f"hours.{label} is {hours:g} but the units add up to {minutes / 60:g} hours "
                f"({minutes} minutes); change the declaration or the units' minutes",
            )
