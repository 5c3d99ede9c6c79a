"""Every shipped exercise's source notebook, autograded with nbgrader, scores full marks, and its released
student version scores zero on the autograded tests.

One session-scoped fixture builds a scratch nbgrader course directory, runs ``nbgrader generate_assignment``
for every exercise, submits two "students" per exercise (``model-student`` hands in the source notebook with
its solutions, ``released-student`` hands in the released notebook untouched), runs ``nbgrader autograde``
and reads the scores back from the gradebook. nbgrader only ever runs in subprocesses: importing it pulls in
jupyter_server, and its converters ``os.chdir`` the whole process.

Run with ``pytest -s tests/curriculum/test_exercises.py`` to see how long each exercise takes to autograde.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from curriculum.loader import load_course
from curriculum.model import Unit

pytestmark = pytest.mark.content

SHIPPED = Path(__file__).resolve().parents[2] / "curriculum" / "courses" / "ai-engineering-technician-primary"
COURSE_ID = "aiet-p-exercises"
MODEL = "model-student"  # hands in the source notebook, solutions included
RELEASED = "released-student"  # hands in the released notebook without changing anything
STUDENTS = (MODEL, RELEASED)
CELL_TIMEOUT = 120  # seconds per cell (wall clock)
SUBPROCESS_TIMEOUT = 900  # seconds for a whole nbgrader command; a hung kernel must not hang the suite

NBGRADER_CONFIG = """\
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = {db_url!r}
c.ExecutePreprocessor.timeout = {timeout!r}
"""

# Runs in a subprocess (never import nbgrader in the pytest process): prints every notebook's grade cells and
# every submission's grades as JSON.
READ_GRADEBOOK = """\
import json, sys
from nbgrader.api import Gradebook

db_url, course_id = sys.argv[1], sys.argv[2]
out = {}
with Gradebook(db_url, course_id) as gb:
    for assignment in gb.assignments:
        notebooks = {}
        for notebook in assignment.notebooks:
            cells = [
                {"name": c.name, "cell_type": c.cell_type, "max_score": c.max_score}
                for c in list(notebook.grade_cells) + list(notebook.task_cells)
            ]
            submissions = {}
            for submission in notebook.submissions:
                submissions[submission.student.id] = [
                    {
                        "name": g.name,
                        "cell_type": g.cell_type,
                        "auto_score": g.auto_score,
                        "manual_score": g.manual_score,
                        "score": g.score,
                        "max_score": g.max_score,
                        "needs_manual_grade": g.needs_manual_grade,
                    }
                    for g in submission.grades
                ]
            notebooks[notebook.name] = {"cells": cells, "submissions": submissions}
        out[assignment.name] = notebooks
json.dump(out, sys.stdout)
"""


@cache
def exercise_units() -> tuple[Unit, ...]:
    return tuple(unit for unit in load_course(SHIPPED).units() if unit.kind == "exercise")


def exercise_ids() -> list[str]:
    return [unit.id for unit in exercise_units()]


@dataclass(repr=False)  # the gradebook is too long for tracebacks
class Graded:
    """What nbgrader made of every exercise: gradebook contents and autograde wall times."""

    gradebook: dict[str, Any]  # assignment -> notebook -> {"cells": [...], "submissions": {student: [...]}}
    seconds: dict[tuple[str, str], float]  # (exercise id, student) -> autograde wall time
    cell_seconds: dict[tuple[str, str], float]  # (exercise id, student) -> time the kernel spent in cells
    course_dir: Path


def _environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)  # pytest runs under -W error; nbgrader and jupyter are not that strict
    bin_dir = str(Path(sys.executable).parent)  # the venv's bin: the gradebook runs the `alembic` command
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    # Keep stray Jupyter/IPython configuration out, and runtime files in the scratch directory.
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "jupyter-config"),
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = scratch / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env


def _cell_seconds(notebook_path: Path) -> float:
    """Time the kernel spent executing the notebook's cells, from nbclient's per-cell timing metadata."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    total = 0.0
    for cell in notebook["cells"]:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            started = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            finished = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            total += (finished - started).total_seconds()
    return total


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output when it fails."""
    try:
        result = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        # TimeoutExpired carries bytes even with text=True
        out, err = (
            s.decode(errors="replace") if isinstance(s, bytes) else s or "" for s in (exc.stdout, exc.stderr)
        )
        pytest.fail(
            f"{' '.join(args)} did not finish in {SUBPROCESS_TIMEOUT} s\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err}",
            pytrace=False,
        )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited with {result.returncode} (cwd {cwd})\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result


def _nbgrader(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "nbgrader", *args], cwd, env)


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graded]:
    scratch = tmp_path_factory.mktemp("nbgrader")
    course_dir = scratch / "course"
    course_dir.mkdir()
    env = _environment(scratch)
    db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    (course_dir / "nbgrader_config.py").write_text(
        NBGRADER_CONFIG.format(
            root=str(course_dir), course_id=COURSE_ID, db_url=db_url, timeout=CELL_TIMEOUT
        ),
        encoding="utf-8",
    )

    units = exercise_units()
    for unit in units:
        assert unit.notebook_path is not None, unit.id
        target = course_dir / "source" / unit.id / f"{unit.id}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copyfile(SHIPPED / unit.notebook_path, target)

    for unit in units:
        _nbgrader("generate_assignment", unit.id, "--force", cwd=course_dir, env=env)
        released = course_dir / "release" / unit.id / f"{unit.id}.ipynb"
        if not released.is_file():
            pytest.fail(f"nbgrader generate_assignment {unit.id} wrote no {released}", pytrace=False)
        submissions = {MODEL: course_dir / "source" / unit.id, RELEASED: released.parent}
        for student, origin in submissions.items():
            folder = course_dir / "submitted" / student / unit.id
            folder.mkdir(parents=True)
            shutil.copyfile(origin / f"{unit.id}.ipynb", folder / f"{unit.id}.ipynb")

    seconds: dict[tuple[str, str], float] = {}
    cell_seconds: dict[tuple[str, str], float] = {}
    for unit in units:
        for student in STUDENTS:
            started = time.perf_counter()
            _nbgrader("autograde", unit.id, "--student", student, cwd=course_dir, env=env)
            seconds[unit.id, student] = time.perf_counter() - started
            autograded = course_dir / "autograded" / student / unit.id / f"{unit.id}.ipynb"
            if not autograded.is_file():
                pytest.fail(
                    f"nbgrader autograde {unit.id} --student {student} wrote no {autograded}", pytrace=False
                )
            cell_seconds[unit.id, student] = _cell_seconds(autograded)

    result = _run([sys.executable, "-c", READ_GRADEBOOK, db_url, COURSE_ID], course_dir, env)
    gradebook = json.loads(result.stdout)

    print(_timings_table(units, seconds, cell_seconds))
    yield Graded(gradebook=gradebook, seconds=seconds, cell_seconds=cell_seconds, course_dir=course_dir)


def _timings_table(
    units: tuple[Unit, ...], seconds: dict[tuple[str, str], float], cell_seconds: dict[tuple[str, str], float]
) -> str:
    """`autograde`: wall time of one `nbgrader autograde <id> --student <who>` command (nbgrader and kernel
    start-up included); `cells`: time the kernel spent running the notebook's cells."""
    lines = [
        "",
        "Autograde time per exercise notebook, in seconds (solution = source notebook, released = untouched",
        "student version; autograde = whole nbgrader command, cells = kernel time in the notebook's cells):",
        f"{'exercise':<30} {'points':>6} {'solution':>9} {'cells':>6} {'released':>9} {'cells':>6}",
    ]
    for unit in units:
        lines.append(
            f"{unit.id:<30} {unit.points or 0:>6g} {seconds[unit.id, MODEL]:>9.1f} "
            f"{cell_seconds[unit.id, MODEL]:>6.1f} {seconds[unit.id, RELEASED]:>9.1f} "
            f"{cell_seconds[unit.id, RELEASED]:>6.1f}"
        )

    def total(table: dict[tuple[str, str], float], student: str) -> float:
        return sum(value for (_, who), value in table.items() if who == student)

    lines.append(
        f"{'total':<30} {sum(unit.points or 0 for unit in units):>6g} {total(seconds, MODEL):>9.1f} "
        f"{total(cell_seconds, MODEL):>6.1f} {total(seconds, RELEASED):>9.1f} "
        f"{total(cell_seconds, RELEASED):>6.1f}"
    )
    return "\n".join(lines)


def _notebook(graded: Graded, exercise_id: str) -> dict[str, Any]:
    assert exercise_id in graded.gradebook, f"{exercise_id} is not in the gradebook"
    notebooks = graded.gradebook[exercise_id]
    assert list(notebooks) == [exercise_id], f"{exercise_id}: unexpected notebooks {list(notebooks)}"
    return notebooks[exercise_id]


def _grades(graded: Graded, exercise_id: str, student: str) -> list[dict[str, Any]]:
    notebook = _notebook(graded, exercise_id)
    assert student in notebook["submissions"], f"{exercise_id}: no autograded submission for {student}"
    grades = notebook["submissions"][student]
    assert {g["name"] for g in grades} == {c["name"] for c in notebook["cells"]}, (
        f"{exercise_id}/{student}: grades do not cover every graded cell"
    )
    return grades


def _autograded_output(graded: Graded, exercise_id: str, student: str) -> str:
    """The error outputs of the autograded notebook, to explain a failure."""
    path = graded.course_dir / "autograded" / student / exercise_id / f"{exercise_id}.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    errors = []
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "?")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"[{grade_id}] {output.get('ename')}: {output.get('evalue')}")
    return "\n".join(errors) or "(no error outputs)"


def test_every_exercise_notebook_is_a_unit() -> None:
    """Every notebook shipped under exercises/ is an exercise unit, so the tests below cover them all."""
    on_disk = {path.relative_to(SHIPPED).as_posix() for path in (SHIPPED / "exercises").glob("*/*.ipynb")}
    declared = {unit.notebook_path for unit in exercise_units()}
    assert on_disk == declared
    assert declared, "the shipped course has no exercises"


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_source_notebook_scores_full_marks(graded: Graded, exercise_id: str) -> None:
    grades = [g for g in _grades(graded, exercise_id, MODEL) if g["cell_type"] == "code"]
    score = sum(g["auto_score"] or 0 for g in grades)
    maximum = sum(g["max_score"] for g in grades)
    assert maximum > 0, f"{exercise_id} has no autograded tests"
    failing = [
        f"{g['name']}: {g['auto_score']}/{g['max_score']}"
        for g in grades
        if g["auto_score"] != g["max_score"]
    ]
    assert score == maximum and not failing, (
        f"{exercise_id}: the source notebook scores {score:g}/{maximum:g} on the autograded tests; "
        f"failing cells: {', '.join(failing)}\n{_autograded_output(graded, exercise_id, MODEL)}"
    )


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_released_notebook_scores_zero(graded: Graded, exercise_id: str) -> None:
    grades = _grades(graded, exercise_id, RELEASED)
    code = [g for g in grades if g["cell_type"] == "code"]
    assert code, f"{exercise_id} has no autograded tests"
    passing = [f"{g['name']}: {g['auto_score']}/{g['max_score']}" for g in code if g["auto_score"] != 0]
    assert not passing, (
        f"{exercise_id}: autograded tests give points to the untouched released notebook: "
        + ", ".join(passing)
    )
    # An unchanged written answer is also scored 0 by nbgrader, so the whole notebook scores zero.
    assert sum(g["score"] or 0 for g in grades) == 0, f"{exercise_id}: {grades}"


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_graded_cells_add_up_to_declared_points(graded: Graded, exercise_id: str) -> None:
    unit = next(unit for unit in exercise_units() if unit.id == exercise_id)
    cells = _notebook(graded, exercise_id)["cells"]
    in_gradebook = sum(c["max_score"] for c in cells)
    assert unit.notebook is not None
    in_source = sum(
        cell["metadata"]["nbgrader"].get("points", 0)
        for cell in json.loads(unit.notebook)["cells"]
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade")
        or cell.get("metadata", {}).get("nbgrader", {}).get("task")
    )
    assert in_gradebook == in_source == unit.points, (
        f"{exercise_id}: module file declares {unit.points} points, nbgrader's gradebook has {in_gradebook}, "
        f"the source notebook's graded cells add up to {in_source}"
    )
