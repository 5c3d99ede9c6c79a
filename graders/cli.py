"""``lms grade``: nbgrader drop-in commands on an existing course directory (autograde with the sandbox,
sanitised feedback) and a cohort's LMS grades written out as an nbgrader gradebook.

The course directory commands need no LMS instance: they read the course's own ``nbgrader_config.py``
(only that file) and write where nbgrader would, so nbgrader's tools keep working on the result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from flask import Flask
    from traitlets.config import Config

    from graders.feedback import CellScore
    from graders.nbgrader_backend import (
        GradebookAssignment,
        GradebookCell,
        GradebookStudent,
        GradebookSubmission,
        NotebookGrades,
        SubmissionGrades,
    )

# Parallel graders take turns writing the SQLite gradebook; a turn is short, so waiting long is safe.
GRADEBOOK_BUSY_SECONDS = 120
LOCKED_RETRIES = 2


@click.group("grade")
def grade_group() -> None:
    """nbgrader course directories: sandboxed autograde, sanitised feedback, a cohort's LMS gradebook."""


# --- reading a course directory ------------------------------------------------------------------------


@dataclass(frozen=True)
class CourseSettings:
    """What the commands take from a course directory and its ``nbgrader_config.py`` (picklable, so a
    grading process can rebuild the nbgrader configuration itself)."""

    root: Path
    course_id: str
    cell_timeout: int
    sandbox_mode: str
    db_url: str | None = None  # the course's own gradebook URL when its config sets one
    engine: str = "warm"
    preload: tuple[str, ...] = ()  # what the warm sandbox imports: the assignment's libraries

    def config(self) -> Config:
        """The nbgrader configuration for this course, executing in the sandbox (read once per process)."""
        cached = _CONFIGS.get(self)
        if cached is not None:
            return cached
        from graders import nbgrader_backend
        from graders.sandbox import Limits

        base = nbgrader_backend.read_course_config(self.root)
        cfg = nbgrader_backend.course_config(
            self.root,
            self.course_id,
            limits=Limits(cell_timeout=self.cell_timeout),
            sandbox_mode=self.sandbox_mode,
            base=base,
            engine=self.engine,
            preload=self.preload,
        )
        cfg.CourseDirectory.db_url = _with_busy_timeout(self.db_url or cfg.CourseDirectory.db_url)
        _CONFIGS[self] = cfg
        return cfg


_CONFIGS: dict[CourseSettings, Config] = {}


_UNSET = object()


def _setting(config: Config, section: str, key: str) -> Any:
    """The value the config sets, or _UNSET (None can be a setting: "no timeout")."""
    # Looking a missing section up on a traitlets Config creates it: test membership first.
    if section in config and key in config[section]:
        return config[section][key]
    return _UNSET


def _with_busy_timeout(db_url: str) -> str:
    if not db_url.startswith("sqlite:") or "?" in db_url:
        return db_url
    return f"{db_url}?timeout={GRADEBOOK_BUSY_SECONDS}"


def read_course_settings(root: Path, sandbox_mode: str) -> CourseSettings:
    """Course id, per-cell timeout and gradebook of a course directory; ClickException if unreadable."""
    from graders import nbgrader_backend
    from graders.sandbox import Limits

    try:
        base = nbgrader_backend.read_course_config(root)
    except Exception as error:  # the file is Python: anything can go wrong in it
        raise click.ClickException(f"{root / 'nbgrader_config.py'}: cannot read it: {error}") from error
    timeout = _setting(base, "Execute", "timeout")  # nbgrader's own class wins over nbconvert's
    if timeout is _UNSET:
        timeout = _setting(base, "ExecutePreprocessor", "timeout")
    if timeout is _UNSET:
        cell_timeout = Limits().cell_timeout
    elif timeout is None or int(timeout) <= 0:  # "no per-cell limit": the notebook's total limit holds
        cell_timeout = Limits().total_timeout
    else:
        cell_timeout = int(timeout)
    # nbgrader's own default course id is "": keep it, so an existing gradebook gains no extra course
    course_id = _setting(base, "CourseDirectory", "course_id")
    db_url = _setting(base, "CourseDirectory", "db_url")
    return CourseSettings(
        root=root.resolve(),
        course_id="" if course_id is _UNSET or course_id is None else str(course_id),
        cell_timeout=cell_timeout,
        sandbox_mode=sandbox_mode,
        db_url=str(db_url) if db_url is not _UNSET and db_url else None,
    )


def _students_with(folder: Path, assignment: str) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        path.name
        for path in folder.iterdir()
        if not path.name.startswith(".") and (path / assignment).is_dir()
    )


def _choose_students(folder: Path, assignment: str, requested: Sequence[str], what: str) -> list[str]:
    available = _students_with(folder, assignment)
    if not requested:
        if not available:
            raise click.ClickException(f"no {what} of {assignment!r}: nothing in {folder}/*/{assignment}")
        return available
    missing = [student for student in requested if student not in available]
    if missing:
        raise click.ClickException(
            f"no {what} of {assignment!r} by {', '.join(missing)} (looked in {folder}/<student>/{assignment})"
        )
    return list(dict.fromkeys(requested))


def _assignment_preload(root: Path, assignment: str) -> tuple[str, ...]:
    """The libraries the assignment's source (else release) notebooks import."""
    import json

    from graders.warm import preload_modules

    for stage in ("source", "release"):
        paths = sorted((root / stage / assignment).glob("*.ipynb"))
        if paths:
            notebooks = []
            for path in paths:
                try:
                    notebooks.append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    continue  # nbgrader itself reports an unreadable notebook
            return preload_modules(notebooks)
    return ()


def _known_notebooks(settings: CourseSettings, assignment: str) -> list[str]:
    from graders.nbgrader_backend import NotInGradebook, assignment_notebooks

    try:
        return assignment_notebooks(settings.config(), assignment)
    except NotInGradebook as error:
        raise click.ClickException(
            f"{assignment!r} is not an assignment of {settings.root}: {error} "
            f"(run `nbgrader generate_assignment {assignment}` there first)"
        ) from error


# --- autograde -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentOutcome:
    """How grading one student's submission went."""

    student: str
    ok: bool
    seconds: float
    notebooks: int = 0
    message: str = ""


def grade_student(settings: CourseSettings, assignment: str, student: str) -> StudentOutcome:
    """Autograde one student's submission (in a worker process: nbgrader changes the working directory)."""
    from graders.nbgrader_backend import GradingFailed, autograde

    started = time.monotonic()
    for attempt in range(LOCKED_RETRIES + 1):
        try:
            autograde(settings.config(), assignment, student)
        except GradingFailed as error:
            if "database is locked" in str(error) and attempt < LOCKED_RETRIES:
                continue
            return StudentOutcome(student, False, time.monotonic() - started, message=str(error))
        except Exception as error:  # one student's failure must not stop the others
            return StudentOutcome(
                student, False, time.monotonic() - started, message=f"{type(error).__name__}: {error}"
            )
        break
    graded = settings.root / "autograded" / student / assignment
    return StudentOutcome(
        student, True, time.monotonic() - started, notebooks=len(list(graded.glob("*.ipynb")))
    )


def prestart_sandbox(settings: CourseSettings) -> None:
    """Launch the warm sandbox of a grading process now, so its imports overlap nbgrader's."""
    if settings.engine != "warm":
        return
    from graders import warm
    from graders.sandbox import Limits

    warm.prestart(
        warm.WarmKey(
            limits=Limits(cell_timeout=settings.cell_timeout),
            preload=settings.preload,
            mode=settings.sandbox_mode,
        )
    )


def _grade_in_parallel(
    settings: CourseSettings, assignment: str, students: list[str], jobs: int
) -> Iterator[StudentOutcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Processes, never threads: nbgrader changes the working directory of the whole process. "spawn"
    # gives each a clean interpreter (no copied locks or open gradebook connections).
    context = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=prestart_sandbox, initargs=(settings,)
    ) as pool:
        futures = {pool.submit(grade_student, settings, assignment, student): student for student in students}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as error:  # the worker process itself died
                    yield StudentOutcome(
                        futures[future],
                        False,
                        time.monotonic() - started,
                        message=f"the grading process failed: {type(error).__name__}: {error}",
                    )
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _graded_in_turn(
    settings: CourseSettings, assignment: str, students: list[str]
) -> Iterator[StudentOutcome]:
    from graders import runs

    try:
        for student in students:
            yield grade_student(settings, assignment, student)
    finally:
        runs.plan([])


def _echo_outcome(outcome: StudentOutcome) -> None:
    if outcome.ok:
        click.echo(f"{outcome.student}: ok ({outcome.seconds:.1f} s)")
        return
    first, *rest = outcome.message.splitlines() or ["unknown error"]
    click.echo(f"{outcome.student}: failed ({outcome.seconds:.1f} s): {first}")
    for line in rest:
        click.echo(f"    {line}")


@grade_group.command("autograde")
@click.argument("course_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("assignment")
@click.option(
    "--student", "students", multiple=True, metavar="ID", help="Grade only this student (repeatable)."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Students graded at the same time, each in its own process (default: the number of cores).",
)
@click.option("--unsafe", is_flag=True, help="Run trainee code WITHOUT the sandbox (trusted code only).")
@click.option(
    "--engine",
    type=click.Choice(["warm", "kernel"]),
    default="warm",
    show_default=True,
    help="warm: a fresh run per submission forked in a warm sandbox; kernel: a new Jupyter kernel each.",
)
def autograde_command(
    course_dir: Path, assignment: str, students: tuple[str, ...], jobs: int | None, unsafe: bool, engine: str
) -> None:
    """Autograde submitted/<student>/ASSIGNMENT of an nbgrader course directory, in the sandbox."""
    from graders.sandbox import BUBBLEWRAP, UNSAFE, SandboxUnavailable, check_mode

    try:
        mode = check_mode(UNSAFE if unsafe else BUBBLEWRAP)
    except SandboxUnavailable as error:
        raise click.ClickException(f"{error} (for this command: --unsafe)") from error
    if unsafe:
        click.echo(
            "warning: --unsafe: trainee code runs without the sandbox, with this user's rights, network "
            "and files. Use it only for code you trust.",
            err=True,
        )
    settings = replace(
        read_course_settings(course_dir, mode),
        engine=engine,
        preload=_assignment_preload(course_dir, assignment),
    )
    if (jobs or os.cpu_count() or 1) == 1:
        prestart_sandbox(settings)  # while nbgrader is imported
    _known_notebooks(settings, assignment)
    chosen = _choose_students(settings.root / "submitted", assignment, students, "submissions")
    workers = min(jobs or os.cpu_count() or 1, len(chosen))
    started = time.monotonic()
    outcomes: Iterator[StudentOutcome]
    if workers == 1:
        prestart_sandbox(settings)
        if settings.engine == "warm":
            from graders.nbgrader_backend import plan_runs_ahead
            from graders.sandbox import Limits

            plan_runs_ahead(settings.config(), assignment, chosen, Limits().disk_bytes)
        outcomes = _graded_in_turn(settings, assignment, chosen)
    else:
        outcomes = _grade_in_parallel(settings, assignment, chosen, workers)
    failed = []
    notebooks = 0
    for outcome in outcomes:
        _echo_outcome(outcome)
        notebooks += outcome.notebooks
        if not outcome.ok:
            failed.append(outcome.student)
    elapsed = time.monotonic() - started
    rate = notebooks / elapsed * 60 if elapsed > 0 else 0.0
    click.echo(f"graded {notebooks} notebooks in {elapsed:.1f} s ({rate:.1f}/min)")
    if failed:
        raise click.ClickException(f"grading failed for {len(failed)} of {len(chosen)}: {', '.join(failed)}")


# --- feedback ------------------------------------------------------------------------------------------


def _cell_scores(grades: NotebookGrades) -> dict[str, CellScore]:
    from graders.feedback import CellScore

    scores = {}
    for cell in grades.cells:
        points = cell.manual_points if cell.manual_points is not None else cell.auto_points
        scores[cell.grade_id] = CellScore(
            grade_id=cell.grade_id,
            max_points=cell.max_points,
            points=points,
            comment=grades.comments.get(cell.grade_id, ""),
            needs_manual=points is None,  # a trainer has not graded it yet
            kind=cell.kind,
        )
    return scores


def _feedback_html(settings: CourseSettings, submission: SubmissionGrades, grades: NotebookGrades) -> str:
    import nbformat

    from graders.feedback import FeedbackSummary, render_feedback

    folder = f"{submission.student}/{submission.assignment}/{grades.notebook}.ipynb"
    autograded = settings.root / "autograded" / folder
    source = settings.root / "source" / submission.assignment / f"{grades.notebook}.ipynb"
    for path in (autograded, source):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
    scores = _cell_scores(grades)
    earned = sum(cell.points or 0.0 for cell in scores.values())
    extra = sum(cell.extra_credit for cell in grades.cells)
    summary = FeedbackSummary(
        title=f"{submission.assignment} / {grades.notebook}",
        trainee=submission.student,
        submitted_at=f"{submission.submitted_at:%Y-%m-%d %H:%M} UTC" if submission.submitted_at else "",
        score=max(0.0, earned + extra - grades.late_penalty),
        max_score=sum(cell.max_points for cell in grades.cells),
        late_penalty=grades.late_penalty,
        extra_credit=extra,
        final=not any(cell.needs_manual for cell in scores.values()),
    )
    return render_feedback(
        nbformat.read(autograded, as_version=4), nbformat.read(source, as_version=4), scores, summary
    )


def write_feedback(settings: CourseSettings, assignment: str, student: str) -> int:
    """Write feedback/<student>/<assignment>/<notebook>.html for each notebook; how many were written."""
    from graders.nbgrader_backend import read_submission_grades

    submission = read_submission_grades(settings.config(), assignment, student)
    target = settings.root / "feedback" / student / assignment
    target.mkdir(parents=True, exist_ok=True)
    for grades in submission.notebooks:
        html = _feedback_html(settings, submission, grades)
        (target / f"{grades.notebook}.html").write_text(html, encoding="utf-8")
    # nbgrader's release_feedback matches feedback to a submission by this file
    stamp = settings.root / "autograded" / student / assignment / "timestamp.txt"
    if stamp.is_file():
        (target / "timestamp.txt").write_text(stamp.read_text())
    return len(submission.notebooks)


def _instance_app() -> Flask | None:
    """An app for the LMS instance of this machine, if there is one (for its language), else None."""
    from lms import default_instance_path
    from lms.cli import make_app

    if not (default_instance_path() / "config.py").is_file() and not os.environ.get("LMS_SECRET_KEY"):
        return None
    try:
        return make_app()
    except click.ClickException:  # an instance that cannot start still lets feedback render in English
        return None


@contextmanager
def _translations() -> Iterator[None]:
    from flask import has_app_context

    app = None if has_app_context() else _instance_app()
    if app is None:  # outside an app, gettext returns the English text
        yield
        return
    with app.app_context():
        yield


@grade_group.command("feedback")
@click.argument("course_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("assignment")
@click.option("--student", "students", multiple=True, metavar="ID", help="Only this student (repeatable).")
def feedback_command(course_dir: Path, assignment: str, students: tuple[str, ...]) -> None:
    """Write sanitised feedback HTML (hidden tests removed) for ASSIGNMENT's autograded submissions."""
    from graders.nbgrader_backend import NotInGradebook

    settings = read_course_settings(course_dir, "bwrap")  # no trainee code runs here
    _known_notebooks(settings, assignment)
    chosen = _choose_students(settings.root / "autograded", assignment, students, "autograded submissions")
    failed = []
    with _translations():
        for student in chosen:
            try:
                count = write_feedback(settings, assignment, student)
            except (NotInGradebook, OSError, ValueError) as error:
                failed.append(student)
                click.echo(f"{student}: failed: {error}")
                continue
            click.echo(f"{student}: wrote {count} feedback file(s)")
    if failed:
        raise click.ClickException(f"no feedback for {len(failed)} of {len(chosen)}: {', '.join(failed)}")


# --- an LMS cohort as an nbgrader course directory -----------------------------------------------------


@dataclass
class _CohortExport:
    course_id: str
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  # (slug, notebook) → source JSON
    assignments: list[GradebookAssignment] = field(default_factory=list)
    students: list[GradebookStudent] = field(default_factory=list)
    submissions: list[GradebookSubmission] = field(default_factory=list)


def _collect_cohort(cohort_code: str) -> _CohortExport:
    """The cohort's assignments, trainees and latest submissions as plain data (needs an app context)."""
    from graders import nbgrader_backend as backend
    from graders import services
    from lms.services.cohorts import get_cohort_by_code

    cohort = get_cohort_by_code(cohort_code)
    if cohort is None:
        raise click.ClickException(f"no cohort {cohort_code!r}")
    assignments, rows = services.cohort_gradebook(cohort)
    export = _CohortExport(course_id=cohort.code)
    for assignment in assignments:
        export.sources[(assignment.slug, assignment.notebook)] = assignment.source_notebook
        export.assignments.append(backend.GradebookAssignment(assignment.slug, assignment.due_at))
    for row in rows:
        trainee = row.trainee
        # real names are not split into given and family name: the whole name goes in last_name
        export.students.append(
            backend.GradebookStudent(trainee.username, last_name=trainee.real_name, email=trainee.email or "")
        )
        for submission in row.cells.values():
            cells: list[GradebookCell] = [
                backend.GradebookCell(
                    grade_id=cell.grade_id,
                    auto_points=cell.auto_points,
                    manual_points=cell.manual_points,
                    extra_credit=cell.extra_credit,
                    comment=cell.comment,
                )
                for cell in submission.cells
            ]
            if cells and submission.extra_credit:  # nbgrader has extra credit per cell only
                cells[0] = replace(cells[0], extra_credit=cells[0].extra_credit + submission.extra_credit)
            export.submissions.append(
                backend.GradebookSubmission(
                    assignment=submission.assignment.slug,
                    notebook=submission.assignment.notebook,
                    student=trainee.username,
                    submitted_at=submission.submitted_at,
                    late_penalty=submission.late_penalty,
                    cells=cells,
                )
            )
    return export


@grade_group.command("gradebook")
@click.argument("cohort_code")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def gradebook_command(cohort_code: str, out_dir: Path) -> None:
    """Write a cohort's assignments and LMS grades as an nbgrader course directory (for nbgrader export)."""
    from lms.cli import make_app

    if out_dir.exists() and any(out_dir.iterdir()):
        raise click.ClickException(f"{out_dir} is not empty: give a new or empty directory")
    app = make_app()
    with app.app_context():
        export = _collect_cohort(cohort_code)
    _write_course(out_dir, export)
    click.echo(
        f"wrote {out_dir}: {len(export.assignments)} assignment(s), {len(export.students)} trainee(s), "
        f"{len(export.submissions)} submission(s) (course id {export.course_id!r})"
    )


def _write_course(root: Path, export: _CohortExport) -> None:
    from graders import nbgrader_backend as backend

    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821  (written by `lms grade gradebook`)\n"
        f"c.CourseDirectory.course_id = {export.course_id!r}\n",
        encoding="utf-8",
    )
    for (slug, notebook), source in export.sources.items():
        folder = root / "source" / slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{notebook}.ipynb").write_text(source, encoding="utf-8")
    cfg = backend.course_config(root.resolve(), export.course_id)
    try:
        for assignment in export.assignments:
            # nbgrader puts the notebooks and grade cells in the gradebook (no trainee code runs)
            backend.generate_assignment(cfg, assignment.name)
    except backend.GradingFailed as error:
        raise click.ClickException(f"nbgrader could not generate an assignment: {error}") from error
    backend.write_grades(cfg, export.assignments, export.students, export.submissions)
