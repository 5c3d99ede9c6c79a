"""``lms grade``: the nbgrader drop-in commands on a real course directory (real nbgrader, the bubblewrap
sandbox, nbgrader's own ``export`` to read the result) and a cohort's LMS grades as an nbgrader gradebook."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner, Result

import lms.cli
from graders import nbgrader_backend, runs, sandbox, services
from graders.cli import read_course_settings
from lms.extensions import db
from lms.services import cohorts
from lms.timeutil import utcnow
from tests.graders.conftest import HIDDEN_SECRET, answer, small_source

NBGRADER = Path(sys.executable).parent / "nbgrader"
LIMITS = {"max_bytes": 20_000_000, "max_cells": 2000}
ANSWERS = {
    "alice": {},  # the source's own solutions
    "bob": {"sol-add": "def add(a, b):\n    return 0"},  # fails the visible test of add
    "carol": {"sol-add": "def add(a, b):\n    return 3"},  # passes it, fails the hidden one
}


def run(*args: object) -> Result:
    return CliRunner().invoke(lms.cli.main, [str(arg) for arg in args])


def exported(course: Path) -> dict[str, dict[str, str]]:
    """``nbgrader export`` of a course directory, run by nbgrader itself: student id → CSV row."""
    subprocess.run([str(NBGRADER), "export"], cwd=course, check=True, capture_output=True, timeout=120)
    with open(course / "grades.csv", newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def scores(course: Path) -> dict[str, float]:
    return {student: float(row["score"]) for student, row in exported(course).items()}


def submission(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The release notebook with the solutions filled in (the source's, unless ``answers`` says)."""
    source = {c.metadata["nbgrader"]["grade_id"]: c.source for c in small_source().cells}
    notebook = nbformat.from_dict(release)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers.get(grade_id, source[grade_id])
    return notebook


@pytest.fixture(scope="module")
def released_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An nbgrader course directory as a course run on nbgrader has it: config, source, release, gradebook
    and three students' submissions, not graded yet."""
    root = tmp_path_factory.mktemp("released") / "course"
    (root / "source" / "ps1").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "demo"\n')
    nbformat.write(small_source(), root / "source" / "ps1" / "ps1.ipynb")
    nbgrader_backend.generate_assignment(nbgrader_backend.course_config(root, "demo"), "ps1")
    release = nbformat.read(root / "release" / "ps1" / "ps1.ipynb", as_version=4)
    for student, answers in ANSWERS.items():
        folder = root / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(submission(release, answers), folder / "ps1.ipynb")
        (folder / "timestamp.txt").write_text("2024-05-01 10:00:00.000000 UTC")
    return root


@pytest.fixture
def course(released_course: Path, tmp_path: Path) -> Path:
    """A fresh copy of the released course for one test."""
    return Path(shutil.copytree(released_course, tmp_path / "course"))


@pytest.fixture(scope="module")
def graded_course(released_course: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """The course autograded once by ``lms grade autograde --jobs 1``, and what the command printed."""
    root = Path(shutil.copytree(released_course, tmp_path_factory.mktemp("graded") / "course"))
    return root, run("grade", "autograde", root, "ps1", "--jobs", 1)


# --- autograde -----------------------------------------------------------------------------------------


def test_autograde_writes_what_nbgrader_export_reads(graded_course: tuple[Path, Result]) -> None:
    root, result = graded_course
    assert result.exit_code == 0, result.output
    for student in ANSWERS:
        notebook = root / "autograded" / student / "ps1" / "ps1.ipynb"
        assert notebook.is_file()
        assert f"{student}: ok (" in result.output
    assert "graded 3 notebooks in" in result.output and "/min)" in result.output
    rows = exported(root)
    # the manual cell is not graded yet: it counts 0 of its 2 points
    assert {student: float(row["score"]) for student, row in rows.items()} == {
        "alice": 5.0,
        "bob": 3.0,
        "carol": 3.0,
    }
    assert {row["max_score"] for row in rows.values()} == {"7.0"}
    assert rows["alice"]["timestamp"].startswith("2024-05-01 10:00:00")


def test_autograded_notebook_ran_in_the_sandbox(graded_course: tuple[Path, Result]) -> None:
    root, _ = graded_course
    notebook = nbformat.read(root / "autograded" / "bob" / "ps1" / "ps1.ipynb", as_version=4)
    test_add = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-add")
    assert [output.get("ename") for output in test_add.outputs] == ["AssertionError"]


def test_parallel_grading_gives_the_same_scores(graded_course: tuple[Path, Result], course: Path) -> None:
    result = run("grade", "autograde", course, "ps1", "--jobs", 2)
    assert result.exit_code == 0, result.output
    assert sorted(line.split(":")[0] for line in result.output.splitlines()[:3]) == sorted(ANSWERS)
    assert scores(course) == scores(graded_course[0])


def outputs_by_cell(course: Path, student: str) -> dict[str, list[tuple[str, str]]]:
    notebook = nbformat.read(course / "autograded" / student / "ps1" / "ps1.ipynb", as_version=4)
    return {
        cell.metadata.get("nbgrader", {}).get("grade_id", str(index)): [
            (output.output_type, output.get("ename", "") or output.get("text", "")) for output in cell.outputs
        ]
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    }


def test_one_worker_runs_the_next_submission_ahead_with_the_same_result(
    released_course: Path, course: Path, tmp_path: Path
) -> None:
    parallel = Path(shutil.copytree(released_course, tmp_path / "parallel"))
    assert run("grade", "autograde", parallel, "ps1", "--jobs", 2).exit_code == 0
    result = run("grade", "autograde", course, "ps1", "--jobs", 1)
    assert result.exit_code == 0, result.output
    # the first submission runs when nbgrader asks; each later one had run ahead, and was taken
    assert (runs.counts.taken, runs.counts.discarded) == (len(ANSWERS) - 1, 0)
    for student in ANSWERS:
        assert outputs_by_cell(course, student) == outputs_by_cell(parallel, student)
    assert scores(course) == scores(parallel)


def test_a_run_ahead_that_guessed_wrong_is_run_again(course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # bob's cells are predicted from a notebook that is not the one nbgrader then grades
    real = nbgrader_backend._predicted_run

    def wrong_guess(path: Path, *args: object) -> object:
        predicted = real(path, *args)  # type: ignore[arg-type]
        if predicted is not None and "bob" in path.parts:
            cells, files = predicted
            return [runs.CellRequest("print('not bob')", False), *cells[1:]], files
        return predicted

    monkeypatch.setattr(nbgrader_backend, "_predicted_run", wrong_guess)
    result = run("grade", "autograde", course, "ps1", "--jobs", 1)
    assert result.exit_code == 0, result.output
    assert (runs.counts.taken, runs.counts.discarded) == (1, 1)
    assert scores(course) == {"alice": 5.0, "bob": 3.0, "carol": 3.0}
    assert "not bob" not in str(outputs_by_cell(course, "bob"))


def test_only_the_chosen_students_are_graded(course: Path) -> None:
    result = run("grade", "autograde", course, "ps1", "--student", "bob", "--jobs", 4)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (course / "autograded").iterdir()) == ["bob"]
    assert "graded 1 notebooks in" in result.output


def test_a_broken_submission_fails_alone_and_the_command_exits_non_zero(course: Path) -> None:
    (course / "submitted" / "bob" / "ps1" / "ps1.ipynb").write_text("{ not json")
    result = run("grade", "autograde", course, "ps1", "--jobs", 2)
    assert result.exit_code == 1
    assert "bob: failed (" in result.output
    assert "alice: ok (" in result.output and "carol: ok (" in result.output
    assert "grading failed for 1 of 3: bob" in result.output
    assert scores(course)["alice"] == 5.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/course", "ps1"], "does not exist"),
        (["{course}", "ps9"], "'ps9' is not an assignment of"),
        (["{course}", "ps1", "--student", "dave"], "no submissions of 'ps1' by dave"),
        (["{course}", "ps1", "--jobs", "0"], "Invalid value for '--jobs'"),
    ],
)
def test_bad_arguments_are_clear_errors(course: Path, args: list[str], message: str) -> None:
    result = run("grade", "autograde", *(arg.format(course=course) for arg in args))
    assert result.exit_code != 0
    assert message in result.output
    assert not (course / "autograded").exists()


def test_a_course_without_gradebook_is_left_untouched(course: Path) -> None:
    (course / "gradebook.db").unlink()
    result = run("grade", "autograde", course, "ps1")
    assert result.exit_code != 0
    assert "there is no gradebook at" in result.output and "nbgrader generate_assignment ps1" in result.output
    assert not (course / "gradebook.db").exists()


def test_without_bubblewrap_grading_is_refused(course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "bubblewrap_path", lambda: None)
    result = run("grade", "autograde", course, "ps1")
    assert result.exit_code != 0
    assert "bubblewrap is not installed" in result.output and "--unsafe" in result.output
    assert not (course / "autograded").exists()


def test_unsafe_mode_grades_with_a_warning(course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "bubblewrap_path", lambda: None)
    result = run("grade", "autograde", course, "ps1", "--student", "alice", "--unsafe")
    assert result.exit_code == 0, result.output
    assert "without the sandbox" in result.stderr
    assert scores(course)["alice"] == 5.0


@pytest.mark.parametrize(
    ("config", "course_id", "cell_timeout"),
    [
        (None, "", 60),  # no nbgrader_config.py: nbgrader's own course id, our default timeout
        ('c.CourseDirectory.course_id = "ml-2024"', "ml-2024", 60),
        ("c.Execute.timeout = 300", "", 300),
        ("c.ExecutePreprocessor.timeout = 90", "", 90),
        ("c.ExecutePreprocessor.timeout = 90\nc.Execute.timeout = 45", "", 45),  # nbgrader's class wins
        ("c.Execute.timeout = None", "", 900),  # no per-cell limit: the notebook's total limit applies
        ("c.Execute.timeout = -1", "", 900),
    ],
)
def test_course_settings_come_from_nbgrader_config(
    tmp_path: Path, config: str | None, course_id: str, cell_timeout: int
) -> None:
    if config is not None:
        (tmp_path / "nbgrader_config.py").write_text(f"c = get_config()\n{config}\n")
    settings = read_course_settings(tmp_path, "bwrap")
    assert (settings.course_id, settings.cell_timeout) == (course_id, cell_timeout)
    cfg = settings.config()
    assert cfg.Execute.timeout == cell_timeout
    assert cfg.CourseDirectory.db_url == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}?timeout=120"


def test_a_gradebook_elsewhere_in_the_config_is_kept(tmp_path: Path) -> None:
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.db_url = 'sqlite:///{tmp_path}/grades/gb.sqlite'\n"
    )
    cfg = read_course_settings(tmp_path, "bwrap").config()
    assert cfg.CourseDirectory.db_url == f"sqlite:///{tmp_path}/grades/gb.sqlite?timeout=120"


def test_an_unreadable_config_is_a_clear_error(course: Path) -> None:
    (course / "nbgrader_config.py").write_text("c = get_config(\n")
    result = run("grade", "autograde", course, "ps1")
    assert result.exit_code != 0
    assert "nbgrader_config.py: cannot read it" in result.output


# --- feedback ------------------------------------------------------------------------------------------


@pytest.fixture
def feedback_course(
    graded_course: tuple[Path, Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy of the graded course, on a machine with no LMS instance (so the page is in English)."""
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(tmp_path / "no-instance"))
    monkeypatch.delenv("LMS_SECRET_KEY", raising=False)
    return Path(shutil.copytree(graded_course[0], tmp_path / "course"))


def test_feedback_is_written_where_nbgrader_puts_it_without_hidden_tests(feedback_course: Path) -> None:
    result = run("grade", "feedback", feedback_course, "ps1")
    assert result.exit_code == 0, result.output
    pages = {}
    for student in ANSWERS:
        folder = feedback_course / "feedback" / student / "ps1"
        pages[student] = (folder / "ps1.html").read_text()
        assert (folder / "timestamp.txt").read_text().startswith("2024-05-01 10:00:00")
        assert f"{student}: wrote 1 feedback file(s)" in result.output
    for page in pages.values():
        assert HIDDEN_SECRET not in page
        assert "BEGIN HIDDEN TESTS" not in page and "assert add(20, 22)" not in page
    assert "Hidden test failed" in pages["carol"]
    assert "Hidden test failed" in pages["bob"]
    assert "Hidden test failed" not in pages["alice"]


def test_feedback_shows_the_gradebook_scores(feedback_course: Path) -> None:
    result = run("grade", "feedback", feedback_course, "ps1", "--student", "bob")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (feedback_course / "feedback").iterdir()) == ["bob"]
    page = (feedback_course / "feedback" / "bob" / "ps1" / "ps1.html").read_text()
    assert '<html lang="en"' in page
    assert "<dd>bob</dd>" in page and "2024-05-01 10:00 UTC" in page
    assert "3 / 7" in page and "0 / 2" in page and "3 / 3" in page
    assert "Provisional" in page  # the written answer still waits for a trainer
    assert "awaiting grading" in page


def test_feedback_speaks_the_language_of_the_lms_instance(
    feedback_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text("SECRET_KEY = 'feedback-test'\nBABEL_DEFAULT_LOCALE = 'zh_CN'\n")
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(instance))
    result = run("grade", "feedback", feedback_course, "ps1", "--student", "alice")
    assert result.exit_code == 0, result.output
    page = (feedback_course / "feedback" / "alice" / "ps1" / "ps1.html").read_text()
    assert '<html lang="zh' in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ps9"], "'ps9' is not an assignment of"),
        (["ps1", "--student", "dave"], "no autograded submissions of 'ps1' by dave"),
    ],
)
def test_feedback_argument_errors(feedback_course: Path, args: list[str], message: str) -> None:
    result = run("grade", "feedback", feedback_course, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert not (feedback_course / "feedback").exists()


def test_feedback_before_autograding_is_a_clear_error(course: Path) -> None:
    result = run("grade", "feedback", course, "ps1")
    assert result.exit_code != 0
    assert "no autograded submissions of 'ps1'" in result.output


# --- a cohort's LMS grades as an nbgrader gradebook ----------------------------------------------------


@pytest.fixture
def cli_environment(app, monkeypatch: pytest.MonkeyPatch) -> None:
    """``lms`` commands build their own app from the environment: point it at the test database."""
    monkeypatch.setenv("LMS_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("LMS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LMS_INSTANCE_PATH", app.instance_path)


def test_gradebook_export_matches_the_lms_scores(
    cli_environment, create_assignment, create_user, dummy_cohort, people, grade_pending, tmp_path: Path
) -> None:
    due = utcnow() - timedelta(hours=30)  # two started days late: 20 % of 7 points
    assignment = create_assignment(due_at=due)
    late_but_good = people["trainee"]
    all_wrong = create_user(username="trainee-wrong", real_name="王五")
    absent = create_user(username="trainee-absent", real_name="赵六")
    for trainee in (all_wrong, absent):
        cohorts.enroll(trainee, dummy_cohort)
    wrong = {"sol-add": "def add(a, b):\n    return 0", "sol-mul": "def mul(a, b):\n    return 0"}
    good, _ = services.submit(assignment, late_but_good, answer(assignment), **LIMITS)
    bad, _ = services.submit(assignment, all_wrong, answer(assignment, wrong), **LIMITS)
    assert grade_pending() == ["autograded", "autograded"]
    services.grade_cell(good, "answer", people["trainer"], points=1.5, comment="Clear.", extra_credit=0.5)
    services.grade_cell(bad, "answer", people["trainer"], points=0, comment="", extra_credit=0.5)
    db.session.commit()
    assert good.late_penalty == pytest.approx(1.4)
    # the LMS takes the penalty off before extra credit, and never below zero
    assert good.score == pytest.approx(5.0 + 1.5 - 1.4 + 0.5)
    assert bad.score == pytest.approx(0.5)

    out = tmp_path / "gradebook"
    result = run("grade", "gradebook", dummy_cohort.code, out)
    assert result.exit_code == 0, result.output
    assert "1 assignment(s), 3 trainee(s), 2 submission(s)" in result.output
    assert f"c.CourseDirectory.course_id = {dummy_cohort.code!r}" in (out / "nbgrader_config.py").read_text()
    assert (out / "source" / "small" / "small.ipynb").read_text() == assignment.source_notebook

    rows = exported(out)
    assert set(rows) == {late_but_good.username, all_wrong.username, absent.username}
    assert float(rows[late_but_good.username]["score"]) == pytest.approx(good.score)
    assert float(rows[all_wrong.username]["score"]) == pytest.approx(bad.score)
    assert float(rows[absent.username]["score"]) == 0.0 and rows[absent.username]["timestamp"] == ""
    assert float(rows[late_but_good.username]["late_submission_penalty"]) == pytest.approx(1.4)
    assert rows[late_but_good.username]["duedate"].startswith(due.strftime("%Y-%m-%d %H:%M:%S"))
    assert rows[late_but_good.username]["timestamp"].startswith(good.submitted_at.strftime("%Y-%m-%d %H:%M"))
    assert rows[all_wrong.username]["last_name"] == "王五"
    assert {row["max_score"] for row in rows.values()} == {"7.0"}

    grades = nbgrader_backend.read_submission_grades(
        nbgrader_backend.course_config(out, dummy_cohort.code), "small", late_but_good.username
    )
    (notebook,) = grades.notebooks
    by_cell = {cell.grade_id: cell for cell in notebook.cells}
    assert by_cell["answer"].manual_points == 1.5 and by_cell["answer"].extra_credit == 0.5
    assert by_cell["test-add"].auto_points == 2.0 and not by_cell["test-add"].needs_manual
    assert notebook.comments["answer"] == "Clear."


def test_gradebook_refuses_a_non_empty_directory_and_an_unknown_cohort(
    cli_environment, dummy_cohort, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    refused = run("grade", "gradebook", dummy_cohort.code, taken)
    assert refused.exit_code != 0 and "is not empty" in refused.output
    assert sorted(path.name for path in taken.iterdir()) == ["notes.txt"]
    unknown = run("grade", "gradebook", "NO-SUCH-COHORT", tmp_path / "out")
    assert unknown.exit_code != 0 and "no cohort 'NO-SUCH-COHORT'" in unknown.output
    assert not (tmp_path / "out").exists()
