"""Importing course versions into the database, and exporting them back; the curriculum CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from curriculum.importer import VersionConflict, export_course, import_course
from curriculum.loader import load_course, validate_course
from lms.cli import main
from lms.extensions import db
from lms.models import CourseUnit, CourseVersion, ProgressStatus, UnitProgress

SHIPPED = Path(__file__).resolve().parents[2] / "curriculum" / "courses" / "ai-engineering-technician-primary"


@pytest.fixture
def course_copy(tmp_path) -> Path:
    target = tmp_path / "ai-engineering-technician-primary"
    shutil.copytree(SHIPPED, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_import_is_idempotent(app, create_cohort):
    files = load_course(SHIPPED)
    first = import_course(files)
    db.session.commit()
    units = db.session.scalar(select(func.count()).select_from(CourseUnit))
    again = import_course(load_course(SHIPPED))
    db.session.commit()
    assert (first.status, again.status) == ("created", "unchanged")
    assert db.session.scalar(select(func.count()).select_from(CourseUnit)) == units == 63
    assert db.session.scalar(select(func.count()).select_from(CourseVersion)) == 1


def test_changed_content_under_the_same_version_is_refused(app, course_copy):
    import_course(load_course(course_copy))
    db.session.commit()
    _edit(course_copy / "lessons" / "m01-l01-what-ai-is.en.md", "# ", "# Revised: ")
    with pytest.raises(VersionConflict, match="new version string"):
        import_course(load_course(course_copy))


def test_new_version_keeps_progress_on_surviving_units_and_reports_moves(
    app, course_copy, dummy_cohort, people
):
    # The dummy cohort's course has the shipped course's code, so the first import puts it on 2026.1.
    first = import_course(load_course(course_copy))
    assert first.cohorts_moved == [dummy_cohort.code]
    for key in ("m01-l01-what-ai-is", "m01-l02-project-lifecycle"):
        db.session.add(
            UnitProgress(
                user_id=people["trainee"].id,
                cohort_id=dummy_cohort.id,
                unit_key=key,
                status=ProgressStatus.COMPLETED,
                active_seconds=1800,
            )
        )
    db.session.commit()
    # Version 2026.2: one lesson removed, one moved to module 2, one new lesson.
    _edit(course_copy / "course.yaml", 'version: "2026.1"', 'version: "2026.2"')
    m01 = course_copy / "modules" / "m01-ai-foundations.yaml"
    m02 = course_copy / "modules" / "m02-python-data.yaml"
    text = m01.read_text(encoding="utf-8")
    start = text.index("  - id: m01-l02-project-lifecycle")
    end = text.index("  - id: m01-l03-")
    block = text[start:end]
    m01.write_text(text[:start] + text[end:], encoding="utf-8")
    _edit(m02, "units:\n", "units:\n" + block)
    report = import_course(load_course(course_copy))
    db.session.commit()
    assert report.status == "created"
    assert report.moved == [("m01-l02-project-lifecycle", "m01-ai-foundations", "m02-python-data")]
    assert report.cohorts_moved == [dummy_cohort.code]
    assert report.progress_kept == 2 and report.progress_orphaned == 0
    current = db.session.scalar(select(CourseVersion).where(CourseVersion.is_current.is_(True)))
    assert current.version == "2026.2" and dummy_cohort.course_version_id == current.id
    assert any("moved unit m01-l02-project-lifecycle" in line for line in report.lines())


def test_export_round_trips_to_files_that_validate(app, tmp_path):
    import_course(load_course(SHIPPED))
    db.session.commit()
    root = export_course(db.session.scalar(select(CourseVersion)), tmp_path / "out")
    assert validate_course(root) == []
    again = load_course(root)
    original = load_course(SHIPPED)
    assert [u.id for u in again.units()] == [u.id for u in original.units()]
    assert again.assets.keys() == original.assets.keys()
    assert [u.questions for u in again.units()] == [u.questions for u in original.units()]


@pytest.fixture
def cli(app, monkeypatch, tmp_path):
    monkeypatch.setenv("LMS_SECRET_KEY", "cli-test")
    monkeypatch.setenv("LMS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("LMS_BABEL_DEFAULT_LOCALE", "en")
    return CliRunner()


def test_cli_validate_exit_codes(cli, course_copy):
    clean = cli.invoke(main, ["curriculum", "validate", str(SHIPPED)])
    assert clean.exit_code == 0, clean.output
    _edit(
        course_copy / "course.yaml",
        "hours: {total: 64, online: 32, offline: 32}",
        "hours: {total: 64, online: 30, offline: 32}",
    )
    broken = cli.invoke(main, ["curriculum", "validate", str(course_copy)])
    assert broken.exit_code == 1
    assert "ai-engineering-technician-primary/course.yaml:" in broken.output
    assert "hours.online is 30 but the units add up to 32 hours" in broken.output


def test_cli_import_twice_and_export(cli, tmp_path):
    first = cli.invoke(main, ["curriculum", "import", str(SHIPPED)])
    assert first.exit_code == 0, first.output
    assert "imported and now current" in first.output
    second = cli.invoke(main, ["curriculum", "import", str(SHIPPED)])
    assert second.exit_code == 0 and "nothing changed" in second.output
    exported = cli.invoke(main, ["curriculum", "export", "AIET-P", str(tmp_path / "exp")])
    assert exported.exit_code == 0, exported.output
    assert cli.invoke(main, ["curriculum", "validate", str(tmp_path / "exp" / SHIPPED.name)]).exit_code == 0
    unknown = cli.invoke(main, ["curriculum", "export", "NOPE", str(tmp_path / "x")])
    assert unknown.exit_code != 0 and "has been imported" in unknown.output
