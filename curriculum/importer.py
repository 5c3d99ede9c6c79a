"""Writes a loaded course version into the core's tables, and exports one back to files.

Importing the same version twice changes nothing. A new version becomes current and the cohorts
that followed the previous current version move to it; progress is kept by unit key, so it survives
on every unit whose id survives, and the report says what was added, removed or moved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from curriculum.loader import ASSET_SUFFIXES
from curriculum.model import CourseFiles, Unit
from lms.extensions import db
from lms.models import (
    Cohort,
    Course,
    CourseAsset,
    CourseLevel,
    CourseModule,
    CourseUnit,
    CourseVersion,
    UnitKind,
    UnitProgress,
    User,
)
from lms.services import DomainError, audit


class VersionConflict(DomainError):
    """The version string was imported before with other content."""


@dataclass
class ImportReport:
    course_code: str
    version: str
    status: str  # created | unchanged
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (unit, from module, to module)
    cohorts_moved: list[str] = field(default_factory=list)
    progress_kept: int = 0
    progress_orphaned: int = 0

    def lines(self) -> list[str]:
        """The report as lines for the CLI."""
        if self.status == "unchanged":
            return [
                f"{self.course_code} {self.version}: already imported with the same content; nothing changed"
            ]
        out = [f"{self.course_code} {self.version}: imported and now current"]
        out += [f"  added unit {key}" for key in self.added]
        out += [f"  removed unit {key}" for key in self.removed]
        out += [f"  moved unit {key}: {old} -> {new}" for key, old, new in self.moved]
        out += [f"  cohort {code} now follows {self.version}" for code in self.cohorts_moved]
        if self.cohorts_moved:
            out.append(
                f"  progress kept on {self.progress_kept} record(s); "
                f"{self.progress_orphaned} record(s) on removed units are kept but no longer shown"
            )
        return out


def content_hash(files: CourseFiles) -> str:
    """A digest of everything a version holds, so a re-import can tell same from changed."""
    digest = hashlib.sha256()
    data = asdict(files)
    data.pop("root")
    data.pop("assets")
    digest.update(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode())
    for path in sorted(files.assets):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files.assets[path]).digest())
    return digest.hexdigest()


def _unit_body(unit: Unit) -> dict[str, Any]:
    if unit.kind == "lesson":
        assert unit.content is not None
        return {"content": unit.content.as_dict()}
    if unit.kind == "lab":
        assert unit.plan is not None
        return {"plan": unit.plan.as_dict(), "exercises": list(unit.exercises)}
    if unit.kind == "quiz":
        return {
            "pass_mark": unit.pass_mark,
            "questions": [
                {
                    "id": q.id,
                    "type": q.type,
                    "prompt": q.prompt.as_dict(),
                    "explanation": q.explanation.as_dict(),
                    "answer": q.answer,
                    "options": [{"id": o.id, "text": o.text.as_dict()} for o in q.options],
                }
                for q in unit.questions
            ],
        }
    return {
        "notebook": unit.notebook,
        "notebook_path": unit.notebook_path,
        "points": unit.points,
        "due_days": unit.due_days,
    }


def import_course(files: CourseFiles, actor: User | None = None, move_cohorts: bool = True) -> ImportReport:
    """Create (or find, unchanged) the course version; flushes, the caller commits."""
    digest = content_hash(files)
    course = db.session.scalar(select(Course).where(Course.code == files.code))
    if course is None:
        course = Course(
            code=files.code, title=files.title.zh_CN, title_en=files.title.en, level=CourseLevel(files.level)
        )
        db.session.add(course)
        db.session.flush()
    existing = db.session.scalar(
        select(CourseVersion).where(
            CourseVersion.course_id == course.id, CourseVersion.version == files.version
        )
    )
    if existing is not None:
        if existing.content_hash == digest:
            return ImportReport(files.code, files.version, "unchanged")
        raise VersionConflict(
            f"{files.code} version {files.version} was imported before with different content; "
            "give the changed course a new version string in course.yaml"
        )
    previous = db.session.scalar(
        select(CourseVersion).where(CourseVersion.course_id == course.id, CourseVersion.is_current.is_(True))
    )
    course.title, course.title_en, course.level = files.title.zh_CN, files.title.en, CourseLevel(files.level)
    course.total_hours = round(files.hours.total)
    course.online_hours, course.offline_hours = round(files.hours.online), round(files.hours.offline)
    version = CourseVersion(
        course=course,
        version=files.version,
        schema_version=files.schema_version,
        slug=files.slug,
        content_hash=digest,
        is_current=True,
        meta={
            "title": files.title.as_dict(),
            "summary": files.summary.as_dict(),
            "level": files.level,
            "standard": {
                "code": files.standard_code,
                "edition": files.standard_edition,
                "title": files.standard_title.as_dict(),
                "work_functions": [{"id": w.id, "title": w.title.as_dict()} for w in files.work_functions],
            },
            "hours": asdict(files.hours),
            "competencies": [{"id": c.id, "title": c.title.as_dict()} for c in files.competencies],
            "completion": files.completion,
        },
    )
    db.session.add(version)
    for m_index, module in enumerate(files.modules):
        row = CourseModule(
            version=version,
            key=module.id,
            position=m_index,
            title=module.title.as_dict(),
            summary=module.summary.as_dict(),
            work_functions=list(module.work_functions),
        )
        for u_index, unit in enumerate(module.units):
            row.units.append(
                CourseUnit(
                    version=version,
                    key=unit.id,
                    kind=UnitKind(unit.kind),
                    position=u_index,
                    title=unit.title.as_dict(),
                    minutes=unit.minutes,
                    competencies=list(unit.competencies),
                    body=_unit_body(unit),
                )
            )
        db.session.add(row)
    for path, data in files.assets.items():
        db.session.add(
            CourseAsset(
                version=version, path=path, data=data, content_type=ASSET_SUFFIXES[Path(path).suffix.lower()]
            )
        )
    if previous is not None:
        previous.is_current = False
    db.session.flush()
    report = ImportReport(files.code, files.version, "created")
    if previous is not None:
        _compare(previous, files, report)
    if move_cohorts:
        _move_cohorts(course, previous, version, files, report)
    audit.record("course.imported", actor, version, code=files.code, version=files.version)
    return report


def _compare(previous: CourseVersion, files: CourseFiles, report: ImportReport) -> None:
    old = {u.key: m.key for m in previous.modules for u in m.units}
    new = {u.id: u.module_id for u in files.units()}
    report.added = [key for key in new if key not in old]
    report.removed = [key for key in old if key not in new]
    report.moved = [(key, old[key], new[key]) for key in new if key in old and old[key] != new[key]]


def _move_cohorts(
    course: Course,
    previous: CourseVersion | None,
    version: CourseVersion,
    files: CourseFiles,
    report: ImportReport,
) -> None:
    follows_previous = (
        Cohort.course_version_id.is_(None)
        if previous is None
        else (Cohort.course_version_id.in_([previous.id]) | Cohort.course_version_id.is_(None))
    )
    cohorts = db.session.scalars(select(Cohort).where(Cohort.course_id == course.id, follows_previous)).all()
    keys = {u.id for u in files.units()}
    for cohort in cohorts:
        cohort.course_version_id = version.id
        report.cohorts_moved.append(cohort.code)
        total = db.session.scalar(select(func.count()).where(UnitProgress.cohort_id == cohort.id)) or 0
        kept = (
            db.session.scalar(
                select(func.count()).where(
                    UnitProgress.cohort_id == cohort.id, UnitProgress.unit_key.in_(keys)
                )
            )
            or 0
        )
        report.progress_kept += kept
        report.progress_orphaned += total - kept


def export_course(version: CourseVersion, target: Path) -> Path:
    """Write a course version back to a folder that validates; returns the folder."""
    meta = version.meta
    root = target / version.slug
    root.mkdir(parents=True, exist_ok=False)
    module_paths = []
    for module in version.modules:
        units = []
        for unit in module.units:
            entry: dict[str, Any] = {"id": unit.key, "kind": unit.kind.value, "title": unit.title}
            body = unit.body
            if unit.kind == UnitKind.LESSON:
                entry["minutes"] = unit.minutes
                entry["content"] = _write_pair(root, "lessons", unit.key, body["content"])
            elif unit.kind == UnitKind.LAB:
                entry["minutes"] = unit.minutes
                entry["plan"] = _write_pair(root, "labs", unit.key, body["plan"])
                entry["exercises"] = body["exercises"]
            elif unit.kind == UnitKind.QUIZ:
                entry["minutes"] = unit.minutes
                entry["questions"] = f"quizzes/{unit.key}.yaml"
                entry["pass_mark"] = body["pass_mark"]
                questions = []
                for q in body["questions"]:
                    item = {"id": q["id"], "type": q["type"], "prompt": q["prompt"]}
                    if q["options"]:
                        item["options"] = q["options"]
                    item.update(answer=q["answer"], explanation=q["explanation"])
                    questions.append(item)
                _dump(root / entry["questions"], {"questions": questions})
            else:
                entry["notebook"] = body["notebook_path"]
                entry["points"] = body["points"]
                entry["due_days"] = body["due_days"]
                path = root / body["notebook_path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body["notebook"], encoding="utf-8")
            entry["competencies"] = unit.competencies
            units.append(entry)
        relative = f"modules/{module.key}.yaml"
        _dump(
            root / relative,
            {
                "id": module.key,
                "title": module.title,
                "summary": module.summary,
                "work_functions": module.work_functions,
                "units": units,
            },
        )
        module_paths.append(relative)
    for asset in db.session.scalars(select(CourseAsset).where(CourseAsset.version_id == version.id)):
        path = root / asset.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(asset.data)
    _dump(
        root / "course.yaml",
        {
            "schema_version": version.schema_version,
            "slug": version.slug,
            "code": version.course.code,
            "version": version.version,
            "level": meta["level"],
            "title": meta["title"],
            "summary": meta["summary"],
            "standard": meta["standard"],
            "hours": meta["hours"],
            "competencies": meta["competencies"],
            **({"completion": meta["completion"]} if meta.get("completion") else {}),
            "modules": module_paths,
        },
    )
    return root


def _write_pair(root: Path, folder: str, key: str, texts: dict[str, str]) -> dict[str, str]:
    paths = {}
    for locale, text in texts.items():
        relative = f"{folder}/{key}.{locale}.md"
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
        paths[locale] = relative
    return paths


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100), encoding="utf-8")
