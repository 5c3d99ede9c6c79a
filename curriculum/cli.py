"""``lms curriculum ...``: validate, import and export course folders."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("curriculum")
def curriculum_group() -> None:
    """Courses as versioned files: validate, import, export."""


@curriculum_group.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
def validate_command(path: Path) -> None:
    """Check a course folder; print every problem as file:line: message (exit 1 when any)."""
    from curriculum.loader import validate_course

    problems = validate_course(path)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{path}: no problems")


@curriculum_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--keep-cohorts", is_flag=True, help="Leave cohorts on the version they follow.")
def import_command(path: Path, keep_cohorts: bool) -> None:
    """Import a course folder as a course version (importing the same version again changes nothing)."""
    from curriculum.importer import VersionConflict, import_course
    from curriculum.loader import CourseInvalid, load_course
    from lms.cli import make_app
    from lms.extensions import db

    try:
        files = load_course(path)
    except CourseInvalid as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"nothing imported: {len(exc.problems)} problem(s)", err=True)
        sys.exit(1)
    app = make_app()
    with app.app_context():
        try:
            report = import_course(files, move_cohorts=not keep_cohorts)
        except VersionConflict as exc:
            db.session.rollback()
            click.echo(f"{path / 'course.yaml'}: {exc}", err=True)
            sys.exit(1)
        db.session.commit()
    for line in report.lines():
        click.echo(line)


@curriculum_group.command("export")
@click.argument("course")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--version", "version_name", default=None, help="Which version (default: the current one).")
def export_command(course: str, directory: Path, version_name: str | None) -> None:
    """Write COURSE (code or slug) to DIRECTORY/<slug> as files that validate."""
    from sqlalchemy import or_, select

    from curriculum.importer import export_course
    from lms.cli import make_app
    from lms.extensions import db
    from lms.models import Course, CourseVersion

    app = make_app()
    with app.app_context():
        query = (
            select(CourseVersion).join(Course).where(or_(Course.code == course, CourseVersion.slug == course))
        )
        query = (
            query.where(CourseVersion.version == version_name)
            if version_name
            else query.where(CourseVersion.is_current.is_(True))
        )
        version = db.session.scalars(query).first()
        if version is None:
            raise click.ClickException(
                f"no {'version ' + version_name + ' of ' if version_name else ''}"
                f"course {course!r} has been imported"
            )
        target = directory / version.slug
        if target.exists():
            raise click.ClickException(f"{target} already exists; choose another directory")
        root = export_course(version, directory)
    click.echo(f"exported {version.course.code} {version.version} to {root}")
