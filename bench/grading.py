"""Grading speed: stock `nbgrader autograde` against `lms grade autograde`, and the floor.

    .venv/bin/python bench/grading.py [--submissions 40] [--repeats 3] [--quick] [--unsafe] [--keep]

Two nbgrader course directories are built in a temporary folder from exercises generated here:
  sklearn  a scikit-learn exercise (16 cells: split, pipeline, metrics, cross-validation, grid search;
           data from sklearn.datasets generators), 5 graded test cells with hidden tests, 1 manual answer
  python   a pure-Python exercise of the same shape (word counts, ranking, run-length code, a sieve,
           matrix product)
Each gets `nbgrader generate_assignment` (the stock command) and N submissions made from the release
notebook: mostly correct, some partly wrong, some raising errors, exactly one endless loop (the 10 s cell
timeout of the course's nbgrader_config.py stops it).

Every repeat grades all submissions of both exercises, alternating exercises and methods, each method
on a fresh copy of the course directory:
  (a) `nbgrader autograde ASSIGNMENT --force` (stock nbgrader, all students in one command)
  (b) `lms grade autograde COURSE ASSIGNMENT --jobs 1` (the sandbox)
  (c) `lms grade autograde COURSE ASSIGNMENT --jobs <cores>`
  (d) the floor: one Python process imports numpy and scikit-learn once, then execs each submission's
      code cells (test cells from the source, as nbgrader does) in a fresh namespace, 10 s alarm per cell
plus `--jobs` 2..cores-1 for the throughput curve. Seconds per notebook are medians over the repeats
(the floor's are its warm loop only: start-up and imports excluded); peak memory is the largest sum of
the PSS of the grading process and all its descendants, sampled every 0.5 s (PSS, proportional set
size, divides each shared page among the processes sharing it, so a zygote's pages shared with its
forks, or a library mapped by several processes, count once).

Exit status 1 only when a student's per-cell scores differ between (a), (b) and (c) (or between
repeats); missed targets are reported, not failed: this is a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CELL_TIMEOUT = 10
# Reading PSS walks every page table of every process in the tree: at 0.1 s the sampler itself slowed the
# measured runs by ~4% on two cores. The peaks are plateaus (warm sandboxes live for the whole run).
SAMPLE_SECONDS = 0.5
MIB = 1024**2
SUBMITTED_AT = "2025-03-10 09:00:00.000000 UTC"  # nbgrader's timestamp.txt format
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
MANUAL_POINTS = 2

# The targets (issue 6): ratios of median seconds per notebook, and memory with two jobs.
TARGET_STOCK_OVER_PARALLEL = 5.0
TARGET_STOCK_OVER_SERIAL = 2.5
TARGET_SERIAL_OVER_FLOOR = 1.5
TARGET_PEAK_TWO_JOBS = 1024 * MIB


# --- the exercises -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One graded task: an answer cell and the test cell after it."""

    grade_id: str
    instruction: str  # a comment above the answer, kept in the release notebook
    solution: str
    tests: str
    hidden_tests: str
    wrong: str  # runs, passes the visible tests, fails a hidden one
    raising: str  # raises when the answer or its tests run
    points: int = 2

    @property
    def test_id(self) -> str:
        """The grade id of the task's test cell."""
        return f"{self.grade_id}_tests"


@dataclass(frozen=True)
class Exercise:
    """An nbgrader assignment of one notebook, and what the floor interpreter imports up front."""

    key: str
    title: str
    intro: str
    setup: str
    parts: tuple[tuple[str, tuple[Task, ...]], ...]  # (markdown heading, tasks)
    question: str
    answer: str
    preload: tuple[str, ...]

    @property
    def course_id(self) -> str:
        """The nbgrader course id of the exercise's course directory."""
        return f"bench-{self.key}"

    @property
    def assignment(self) -> str:
        """Assignment name (also the notebook's name)."""
        return f"{self.key}_exercise"

    @property
    def tasks(self) -> tuple[Task, ...]:
        """Every task in notebook order."""
        return tuple(task for _heading, tasks in self.parts for task in tasks)


SKLEARN_SETUP = """\
import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = make_classification(
    n_samples=2000, n_features=12, n_informative=6, weights=[0.7, 0.3], random_state=7
)
print(X.shape, y.mean().round(3))"""

SKLEARN_TASKS_CLASSIFY = (
    Task(
        grade_id="split",
        instruction="# Hold out 25% of the rows for testing, keeping the class balance; random_state=0.",
        solution="X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=0.25, stratify=y, random_state=0\n)",
        tests="assert X_train.shape == (1500, 12) and X_test.shape == (500, 12)",
        hidden_tests="assert abs(y_test.mean() - y.mean()) < 0.005\n"
        "assert abs(y_train.mean() - y.mean()) < 0.005",
        wrong="X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=1)",
        raising="X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1.25, random_state=0)",
    ),
    Task(
        grade_id="pipeline",
        instruction="# A pipeline `model`: standardise the features, then logistic regression; fit it.",
        solution="model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))\n"
        "model.fit(X_train, y_train)",
        tests="assert hasattr(model, 'predict')\nassert model.score(X_train, y_train) > 0.75",
        hidden_tests="assert isinstance(model[0], StandardScaler)\n"
        "assert np.allclose(model[0].mean_, X_train.mean(axis=0))",
        wrong="model = make_pipeline(LogisticRegression(max_iter=1000))\nmodel.fit(X_train, y_train)",
        raising="model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))\n"
        "model.fit(X_train, y_train[:100])",
    ),
    Task(
        grade_id="metrics",
        instruction="# `test_accuracy` and `test_f1` of the model on the held-out rows.",
        solution="y_pred = model.predict(X_test)\n"
        "test_accuracy = accuracy_score(y_test, y_pred)\n"
        "test_f1 = f1_score(y_test, y_pred)",
        tests="assert 0.5 < test_accuracy <= 1.0 and 0.0 < test_f1 <= 1.0",
        hidden_tests="assert abs(test_accuracy - model.score(X_test, y_test)) < 1e-12\n"
        "assert abs(test_f1 - f1_score(y_test, model.predict(X_test))) < 1e-12",
        wrong="y_pred = model.predict(X_train)\n"
        "test_accuracy = accuracy_score(y_train, y_pred)\n"
        "test_f1 = f1_score(y_train, y_pred)",
        raising="test_accuracy = accuracy_score(y_test, model.predict(X_train))\n"
        "test_f1 = f1_score(y_test, model.predict(X_train))",
    ),
    Task(
        grade_id="cross_validation",
        instruction="# `cv_accuracy(estimator, features, labels, folds=5)`: shuffled stratified k-fold\n"
        "# accuracies (random_state=0); `cv_scores` for the model on all rows.",
        solution="def cv_accuracy(estimator, features, labels, folds=5):\n"
        "    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)\n"
        "    return cross_val_score(estimator, features, labels, cv=splitter, scoring='accuracy')\n\n\n"
        "cv_scores = cv_accuracy(model, X, y)",
        tests="assert len(cv_scores) == 5\nassert cv_scores.mean() > 0.65",
        hidden_tests="assert len(cv_accuracy(model, X, y, folds=3)) == 3\n"
        "expected = cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))\n"
        "assert np.allclose(cv_scores, expected)",
        wrong="def cv_accuracy(estimator, features, labels, folds=5):\n"
        "    splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)\n"
        "    return cross_val_score(estimator, features, labels, cv=splitter)\n\n\n"
        "cv_scores = cv_accuracy(model, X, y)",
        raising="def cv_accuracy(estimator, features, labels, folds=5):\n"
        "    return cross_val_score(estimator, features, labels, cv=folds - 4)\n\n\n"
        "cv_scores = cv_accuracy(model, X, y)",
    ),
)

SKLEARN_TASKS_REGRESS = (
    Task(
        grade_id="grid_search",
        instruction="# 300 rows, 8 features, noise 10 (random_state=3) from make_regression; choose Ridge's\n"
        "# alpha among 0.01, 0.1, 1, 10, 100 by 5-fold grid search on R²: `search`, `best_alpha`.",
        solution="X_reg, y_reg = make_regression(n_samples=300, n_features=8, noise=10.0, random_state=3)\n"
        "search = GridSearchCV(Ridge(), {'alpha': [0.01, 0.1, 1.0, 10.0, 100.0]}, cv=5, scoring='r2')\n"
        "search.fit(X_reg, y_reg)\n"
        "best_alpha = search.best_params_['alpha']",
        tests="assert best_alpha in (0.01, 0.1, 1.0, 10.0, 100.0)",
        hidden_tests="assert search.n_splits_ == 5\nassert search.best_score_ > 0.9\n"
        "assert X_reg.shape == (300, 8)",
        wrong="X_reg, y_reg = make_regression(n_samples=300, n_features=8, noise=10.0, random_state=3)\n"
        "search = GridSearchCV(Ridge(), {'alpha': [0.01, 0.1, 1.0, 10.0, 100.0]}, cv=3, scoring='r2')\n"
        "search.fit(X_reg, y_reg)\n"
        "best_alpha = search.best_params_['alpha']",
        raising="X_reg, y_reg = make_regression(n_samples=300, n_features=8, noise=10.0, random_state=3)\n"
        "search = GridSearchCV(Ridge(), {'alpha': [0.01, 0.1, 1.0, 10.0, 100.0]}, cv=5)\n"
        "search.fit(X_reg, y_reg.reshape(-1, 2))\n"
        "best_alpha = search.best_params_['alpha']",
    ),
)

SKLEARN = Exercise(
    key="sklearn",
    title="scikit-learn exercise",
    intro="# Predicting equipment faults\n\nA classifier for fault / no fault from 12 sensor features, then "
    "a regression model with a tuned regularisation strength.",
    setup=SKLEARN_SETUP,
    parts=(
        ("## Part 1: classification", SKLEARN_TASKS_CLASSIFY),
        ("## Part 2: regression", SKLEARN_TASKS_REGRESS),
    ),
    question="**Question (2 points).** Why must the scaler be fitted on the training rows only?",
    answer="Fitting it on every row lets statistics of the test rows leak into training, so the test "
    "score overstates how the model does on new data.",
    preload=(
        "numpy",
        "sklearn.datasets",
        "sklearn.linear_model",
        "sklearn.metrics",
        "sklearn.model_selection",
        "sklearn.pipeline",
        "sklearn.preprocessing",
    ),
)

PYTHON_SETUP = """\
import random
import re
from collections import Counter

REPORT = (
    "Line 3 stopped twice. The pump on line 3 was replaced; line 2 ran, line 1 ran. "
    "Operators on line 3 logged the stop, the pump, the valve and the stop again."
)
print(len(REPORT))"""

PYTHON_TASKS_TEXT = (
    Task(
        grade_id="word_counts",
        instruction="# `word_counts(text)`: a Counter of the lower-cased words\n"
        "# (letters, digits and apostrophes).",
        solution='def word_counts(text):\n    return Counter(re.findall(r"[a-z0-9\']+", text.lower()))',
        tests="assert word_counts('a b a')['a'] == 2",
        hidden_tests="assert word_counts('Stop. stop, STOP!')['stop'] == 3\n"
        "assert word_counts(REPORT)['line'] == 5",
        wrong="def word_counts(text):\n    return Counter(text.split())",
        raising="def word_counts(text):\n    return Counter(text.lower().split()) + 1",
    ),
    Task(
        grade_id="top_words",
        instruction="# `top_words(counts, n)`: the n most frequent (word, count) pairs;\n"
        "# ties in alphabetical order.",
        solution="def top_words(counts, n):\n"
        "    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]",
        tests="assert top_words(Counter({'x': 3, 'y': 1}), 1) == [('x', 3)]",
        hidden_tests="ranked = top_words(Counter({'b': 2, 'a': 2, 'c': 5}), 3)\n"
        "assert ranked == [('c', 5), ('a', 2), ('b', 2)]\n"
        "assert top_words(word_counts(REPORT), 3) == [('line', 5), ('the', 5), ('3', 3)]",
        wrong="def top_words(counts, n):\n    return counts.most_common(n)",
        raising="def top_words(counts, n):\n"
        "    return sorted(counts, key=lambda word: counts[word] - '1')[:n]",
    ),
    Task(
        grade_id="run_length",
        instruction="# `run_length(text)`: the runs of equal characters as (character, length) pairs.",
        solution="def run_length(text):\n"
        "    runs = []\n"
        "    for char in text:\n"
        "        if runs and runs[-1][0] == char:\n"
        "            runs[-1] = (char, runs[-1][1] + 1)\n"
        "        else:\n"
        "            runs.append((char, 1))\n"
        "    return runs",
        tests="assert run_length('aaab') == [('a', 3), ('b', 1)]",
        hidden_tests="assert run_length('') == []\n"
        "assert run_length('abba') == [('a', 1), ('b', 2), ('a', 1)]\n"
        "rng = random.Random(1)\n"
        "for _ in range(4000):\n"
        "    text = ''.join(rng.choice('aab') for _ in range(rng.randint(1, 40)))\n"
        "    runs = run_length(text)\n"
        "    assert ''.join(char * size for char, size in runs) == text\n"
        "    assert all(left[0] != right[0] for left, right in zip(runs, runs[1:]))",
        wrong="def run_length(text):\n"
        "    runs, count = [], 1\n"
        "    for left, right in zip(text, text[1:]):\n"
        "        if left == right:\n"
        "            count += 1\n"
        "        else:\n"
        "            runs.append((left, count))\n"
        "            count = 1\n"
        "    return runs + [(text[-1:], count)]",
        raising="def run_length(text):\n"
        "    head = text[0]\n"
        "    size = len(text) - len(text.lstrip(head))\n"
        "    return [(head, size)] + run_length(text[size:])",
    ),
)

PYTHON_TASKS_NUMBERS = (
    Task(
        grade_id="primes",
        instruction="# `primes_below(n)`: every prime p < n, by the sieve of Eratosthenes.",
        solution="def primes_below(n):\n"
        "    if n < 3:\n"
        "        return []\n"
        "    sieve = [True] * n\n"
        "    sieve[0] = sieve[1] = False\n"
        "    for p in range(2, int(n**0.5) + 1):\n"
        "        if sieve[p]:\n"
        "            sieve[p * p :: p] = [False] * len(range(p * p, n, p))\n"
        "    return [p for p, prime in enumerate(sieve) if prime]",
        tests="assert primes_below(20) == [2, 3, 5, 7, 11, 13, 17, 19]",
        hidden_tests="assert primes_below(2) == []\nassert primes_below(13) == [2, 3, 5, 7, 11]\n"
        "assert len(primes_below(100_000)) == 9592\n"
        "assert primes_below(20_000) == [\n"
        "    p for p in range(2, 20_000) if all(p % d for d in range(2, int(p**0.5) + 1))\n"
        "]",
        wrong="def primes_below(n):\n"
        "    return [p for p in range(2, n + 1) if all(p % d for d in range(2, int(p**0.5) + 1))]",
        raising="def primes_below(n):\n    return sieve_of(n)",
    ),
    Task(
        grade_id="matmul",
        instruction="# `matmul(a, b)`: the product of two matrices given as lists of rows; ValueError when\n"
        "# the shapes do not fit.",
        solution="def matmul(a, b):\n"
        "    if not a or not b or len(a[0]) != len(b):\n"
        "        raise ValueError('shapes do not fit')\n"
        "    columns = list(zip(*b))\n"
        "    return [[sum(x * y for x, y in zip(row, column)) for column in columns] for row in a]",
        tests="assert matmul([[1, 2], [3, 4]], [[1, 0], [0, 1]]) == [[1, 2], [3, 4]]",
        hidden_tests="assert matmul([[1, 2, 3]], [[1], [2], [3]]) == [[14]]\n"
        "rng = random.Random(2)\n"
        "a = [[rng.randint(-9, 9) for _ in range(70)] for _ in range(60)]\n"
        "b = [[rng.randint(-9, 9) for _ in range(50)] for _ in range(70)]\n"
        "product = matmul(a, b)\n"
        "assert [len(product), len(product[0])] == [60, 50]\n"
        "assert all(\n"
        "    product[i][j] == sum(a[i][k] * b[k][j] for k in range(70))\n"
        "    for i in range(60)\n"
        "    for j in range(50)\n"
        ")\n"
        "try:\n    matmul([[1, 2]], [[1, 2]])\nexcept ValueError:\n    pass\n"
        "else:\n    raise AssertionError('no ValueError')",
        wrong="def matmul(a, b):\n"
        "    n = len(a)\n"
        "    return [[sum(a[i][k] * b[k][j] for k in range(n)) for j in range(n)] for i in range(n)]",
        raising="def matmul(a, b):\n    return [[sum(a[i][k] * b[k][j] for k in range(len(b[0]))) for j in "
        "range(len(b))] for i in range(len(a))]\n\n\nmatmul([[1, 2, 3]], [[1], [2], [3]])",
    ),
)

PYTHON = Exercise(
    key="python",
    title="pure-Python exercise",
    intro="# Reading shift reports\n\nCount and rank the words of a shift report, compress a signal, and "
    "two small numeric routines.",
    setup=PYTHON_SETUP,
    parts=(("## Part 1: text", PYTHON_TASKS_TEXT), ("## Part 2: numbers", PYTHON_TASKS_NUMBERS)),
    question="**Question (2 points).** How does the running time of your sieve grow with n, and why?",
    answer="About n log log n: each composite is crossed out once per prime factor below its square root.",
    preload=("re", "collections"),
)

EXERCISES = (SKLEARN, PYTHON)


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, points: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade_id": grade_id,
        "solution": solution,
        "grade": grade,
        "locked": not solution,
        "schema_version": 3,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook(exercise: Exercise) -> Any:
    """The nbgrader source notebook of an exercise (solutions and hidden tests marked)."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [
        new_markdown_cell(exercise.intro, metadata=_meta("intro")),
        new_code_cell(exercise.setup, metadata=_meta("setup")),
    ]
    for heading, tasks in exercise.parts:
        cells.append(new_markdown_cell(heading, metadata=_meta(f"heading_{len(cells)}")))
        for task in tasks:
            answer = f"{task.instruction}\n### BEGIN SOLUTION\n{task.solution}\n### END SOLUTION"
            tests = f"{task.tests}\n### BEGIN HIDDEN TESTS\n{task.hidden_tests}\n### END HIDDEN TESTS"
            cells.append(new_code_cell(answer, metadata=_meta(task.grade_id, solution=True)))
            cells.append(new_code_cell(tests, metadata=_meta(task.test_id, grade=True, points=task.points)))
    cells.append(new_markdown_cell(exercise.question, metadata=_meta("question")))
    cells.append(
        new_markdown_cell(
            exercise.answer, metadata=_meta("explain", solution=True, grade=True, points=MANUAL_POINTS)
        )
    )
    for cell in cells:  # fixed ids: the same notebook bytes on every run
        cell["id"] = cell.metadata["nbgrader"]["grade_id"].replace("_", "-")
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


# --- submissions ---------------------------------------------------------------------------------------

CORRECT = "correct"
PARTLY_WRONG = "partly wrong"
RAISING = "raises"
ENDLESS = "endless loop"
KINDS = (CORRECT, PARTLY_WRONG, RAISING, ENDLESS)


def submission_kinds(count: int) -> list[str]:
    """The deterministic mix: mostly correct, every 5th partly wrong, every 7th raising, one endless loop."""
    endless_at = min(3, count - 1)
    kinds = []
    for index in range(count):
        if index == endless_at:
            kinds.append(ENDLESS)
        elif index % 7 == 5:
            kinds.append(RAISING)
        elif index % 5 == 2:
            kinds.append(PARTLY_WRONG)
        else:
            kinds.append(CORRECT)
    return kinds


def student_answers(exercise: Exercise, kind: str, rng: random.Random) -> dict[str, str]:
    """Answer cell code by grade id for a submission of the given kind."""
    tasks = exercise.tasks
    answers = {task.grade_id: task.solution for task in tasks}
    if kind == PARTLY_WRONG:
        for task in rng.sample(tasks, rng.choice((1, 2))):
            answers[task.grade_id] = task.wrong
    elif kind == RAISING:
        task = rng.choice(tasks)
        answers[task.grade_id] = task.raising
    elif kind == ENDLESS:
        # The trainee's loop never ends before the answer: the cell times out with nothing defined.
        task = tasks[len(tasks) // 2]
        answers[task.grade_id] = f"while True:\n    pass\n{task.solution}"
    return answers


def write_submissions(exercise: Exercise, course: Path, count: int) -> dict[str, str]:
    """Write ``count`` submissions made from the release notebook; the kind of each student's submission."""
    import nbformat

    release = course / "release" / exercise.assignment / f"{exercise.assignment}.ipynb"
    kinds: dict[str, str] = {}
    for index, kind in enumerate(submission_kinds(count)):
        student = f"s{index + 1:03d}"
        kinds[student] = kind
        answers = student_answers(exercise, kind, random.Random(f"{exercise.key}-{index}"))
        notebook = nbformat.read(release, as_version=4)
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("solution"):
                continue
            if cell.cell_type == "markdown":
                cell.source = exercise.answer
            else:
                cell.source = cell.source.replace(CODE_STUB, answers[meta["grade_id"]])
        folder = course / "submitted" / student / exercise.assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{exercise.assignment}.ipynb")
        (folder / "timestamp.txt").write_text(SUBMITTED_AT)
    return kinds


def tool_environment(bindir: Path) -> dict[str, str]:
    """The environment for nbgrader and lms: the venv's bin first (nbgrader runs `alembic`)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bindir), env.get("PATH", "")])
    return env


def build_course(exercise: Exercise, root: Path, count: int, bindir: Path) -> dict[str, str]:
    """An nbgrader course directory with the released assignment and its submissions; their kinds."""
    import nbformat

    root.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {exercise.course_id!r}\n"
        f"c.Execute.timeout = {CELL_TIMEOUT}\n",
        encoding="utf-8",
    )
    source = root / "source" / exercise.assignment
    source.mkdir(parents=True)
    nbformat.write(source_notebook(exercise), source / f"{exercise.assignment}.ipynb")
    done = subprocess.run(
        [str(bindir / "nbgrader"), "generate_assignment", exercise.assignment, "--force"],
        cwd=root,
        env=tool_environment(bindir),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"nbgrader generate_assignment failed for {exercise.key}:\n{done.stdout}\n{done.stderr}")
    return write_submissions(exercise, root, count)


# --- the floor: one warm interpreter -------------------------------------------------------------------


class CellTimedOut(Exception):
    """The cell ran longer than the per-cell timeout."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise CellTimedOut()


def _nbgrader_meta(cell: dict[str, Any]) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def run_floor(spec: dict[str, Any]) -> None:
    """The floor worker: exec every submission's code cells in this one process; write scores and time."""
    import importlib

    for module in spec["preload"]:
        importlib.import_module(module)
    course = Path(spec["course"])
    assignment, timeout = spec["assignment"], int(spec["timeout"])
    source = json.loads((course / "source" / assignment / f"{assignment}.ipynb").read_text())
    # Test cells come from the source (hidden tests included), as nbgrader's autograde restores them.
    tests = {
        meta["grade_id"]: (_cell_text(cell), float(meta.get("points", 0)))
        for cell in source["cells"]
        if cell["cell_type"] == "code"
        and (meta := _nbgrader_meta(cell)).get("grade")
        and not meta.get("solution")
    }
    signal.signal(signal.SIGALRM, _on_alarm)
    scores: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for folder in sorted((course / "submitted").iterdir()):
        notebook = json.loads((folder / assignment / f"{assignment}.ipynb").read_text())
        namespace: dict[str, Any] = {"__name__": "__main__"}
        student_scores = scores.setdefault(folder.name, {})
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            grade_id = _nbgrader_meta(cell).get("grade_id", "")
            text, points = tests.get(grade_id, (_cell_text(cell), 0.0))
            passed = True
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    exec(compile(text, f"<{folder.name} cell {index}>", "exec"), namespace)
            except Exception:  # the trainee's error: the cell fails, the next one runs, as in nbgrader
                passed = False
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if grade_id in tests:
                student_scores[grade_id] = points if passed else 0.0
    seconds = time.perf_counter() - started
    Path(spec["out"]).write_text(json.dumps({"seconds": seconds, "scores": scores}))


# --- measuring a run -----------------------------------------------------------------------------------


def _pss(pid: int) -> int:
    """Proportional set size: private pages plus each shared page divided among its sharers (so pages a
    zygote shares with its forks, or libraries shared by processes, count once in a sum)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> int:
    """Memory (summed PSS) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields start after the last ")"
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        total += _pss(current)
    return total


@dataclass(frozen=True)
class RunResult:
    """One timed run of one method on one exercise."""

    seconds: float
    peak_bytes: int
    returncode: int
    log: Path


def run_measured(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> RunResult:
    """Run a command to its end, sampling the memory (PSS) of its process tree every SAMPLE_SECONDS."""
    read_rss = tree_memory
    peak = 0
    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        finished = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not finished.is_set():
                peak = max(peak, read_rss(process.pid))
                finished.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = process.wait()
        seconds = time.perf_counter() - started
        finished.set()
        sampler.join()
    return RunResult(seconds, peak, returncode, log)


# --- methods -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A way of grading a course directory's submissions."""

    key: str
    label: str
    kind: str  # "nbgrader" | "lms" | "floor"
    jobs: int = 1


# per student, per grade cell: (automatic points, manual points)
Gradebook = dict[str, dict[str, tuple[float | None, float | None]]]


@dataclass
class Measurements:
    """Everything measured for one exercise, by method key."""

    seconds_per_notebook: dict[str, list[float]] = field(default_factory=dict)
    peak_bytes: dict[str, list[int]] = field(default_factory=dict)
    floor_process_seconds: list[float] = field(default_factory=list)
    scores: dict[str, list[Gradebook]] = field(default_factory=dict)  # per repeat
    problems: list[str] = field(default_factory=list)

    def median(self, key: str) -> float:
        """Median seconds per notebook of a method."""
        return statistics.median(self.seconds_per_notebook[key])

    def peak(self, key: str) -> int:
        """Largest peak memory of a method over the repeats."""
        return max(self.peak_bytes[key])


def methods_for(cores: int) -> list[Method]:
    """(a)-(d) and the extra job counts of the throughput curve (2 is always measured: a target)."""
    methods = [
        Method("a", "nbgrader autograde", "nbgrader"),
        Method("b", "lms grade autograde --jobs 1", "lms", 1),
        Method("c", f"lms grade autograde --jobs {cores}", "lms", cores),
        Method("d", "warm interpreter (floor)", "floor"),
    ]
    for jobs in range(2, max(cores, 2) + 1):
        if jobs != cores:
            methods.append(Method(f"j{jobs}", f"lms grade autograde --jobs {jobs}", "lms", jobs))
    return methods


@dataclass(frozen=True)
class Bench:
    """What every run needs: where the tools are and how to call them."""

    bindir: Path
    workdir: Path
    unsafe: bool
    count: int

    def command(self, method: Method, exercise: Exercise, course: Path, spec_path: Path) -> list[str]:
        """The command line that grades ``course`` with ``method``."""
        if method.kind == "nbgrader":
            return [str(self.bindir / "nbgrader"), "autograde", exercise.assignment, "--force"]
        if method.kind == "lms":
            argv = [str(self.bindir / "lms"), "grade", "autograde", str(course), exercise.assignment]
            return [*argv, "--jobs", str(method.jobs), *(["--unsafe"] if self.unsafe else [])]
        return [sys.executable, str(Path(__file__).resolve()), "--floor-worker", str(spec_path)]


def read_gradebook(exercise: Exercise, course: Path, students: list[str]) -> Gradebook:
    """Per student, per grade cell: (auto points, manual points) as the course's gradebook holds them."""
    from graders.nbgrader_backend import NotInGradebook, course_config, read_submission_grades

    cfg = course_config(course.resolve(), exercise.course_id)
    found: Gradebook = {}
    for student in students:
        try:
            grades = read_submission_grades(cfg, exercise.assignment, student)
        except NotInGradebook:
            continue  # reported as a difference
        found[student] = {
            cell.grade_id: (cell.auto_points, cell.manual_points)
            for notebook in grades.notebooks
            for cell in notebook.cells
        }
    return found


def grade_once(
    bench: Bench, method: Method, exercise: Exercise, prepared: Path, repeat: int, results: Measurements
) -> None:
    """Grade a fresh copy of the course directory with one method and record time, memory and scores."""
    course = bench.workdir / "runs" / f"{exercise.key}-{method.key}-{repeat}"
    shutil.copytree(prepared, course)
    log = bench.workdir / "logs" / f"{course.name}.log"
    spec_path = course.parent / f"{course.name}-floor.json"
    out_path = course.parent / f"{course.name}-floor-result.json"
    if method.kind == "floor":
        spec = {
            "course": str(course),
            "assignment": exercise.assignment,
            "timeout": CELL_TIMEOUT,
            "preload": list(exercise.preload),
            "out": str(out_path),
        }
        spec_path.write_text(json.dumps(spec))
    argv = bench.command(method, exercise, course, spec_path)
    run = run_measured(argv, course, tool_environment(bench.bindir), log)
    label = f"{exercise.key} ({method.key}) repeat {repeat + 1}"
    if run.returncode != 0:
        tail = "\n    ".join(log.read_text(errors="replace").splitlines()[-15:])
        results.problems.append(f"{label}: exit status {run.returncode}; log {log}:\n    {tail}")
    seconds = run.seconds
    if method.kind == "floor":
        if out_path.is_file():
            floor = json.loads(out_path.read_text())
            seconds = float(floor["seconds"])
            scores: Gradebook = {
                student: {grade_id: (points, None) for grade_id, points in cells.items()}
                for student, cells in floor["scores"].items()
            }
            results.scores.setdefault(method.key, []).append(scores)
        results.floor_process_seconds.append(run.seconds)
    else:
        students = sorted(path.name for path in (course / "submitted").iterdir())
        graded = list((course / "autograded").glob(f"*/{exercise.assignment}/*.ipynb"))
        if len(graded) != len(students):
            results.problems.append(f"{label}: {len(graded)} of {len(students)} notebooks autograded")
        results.scores.setdefault(method.key, []).append(read_gradebook(exercise, course, students))
    results.seconds_per_notebook.setdefault(method.key, []).append(seconds / bench.count)
    results.peak_bytes.setdefault(method.key, []).append(run.peak_bytes)
    print(
        f"  {label:<28} {seconds:7.1f} s  {seconds / bench.count:6.2f} s/notebook  "
        f"peak {run.peak_bytes / MIB:6.0f} MiB{'' if run.returncode == 0 else '  (FAILED, see below)'}",
        flush=True,
    )
    shutil.rmtree(course)
    for leftover in (spec_path, out_path):
        leftover.unlink(missing_ok=True)


# --- reporting -----------------------------------------------------------------------------------------


def _rate(seconds_per_notebook: float) -> float:
    return 60.0 / seconds_per_notebook if seconds_per_notebook > 0 else float("inf")


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom > 0 else float("inf")


def table_rows(methods: list[Method], results: Measurements) -> list[tuple[str, str, str, str, str]]:
    """Rows of the per-exercise table: method, s/notebook, notebooks/min, peak MiB, every repeat."""
    rows = []
    for method in methods:
        if method.key not in results.seconds_per_notebook:
            continue
        median = results.median(method.key)
        name = f"({method.key}) {method.label}" if len(method.key) == 1 else f"    {method.label}"
        rows.append(
            (
                name,
                f"{median:.2f}",
                f"{_rate(median):.1f}",
                f"{results.peak(method.key) / MIB:.0f}",
                " ".join(f"{value:.2f}" for value in results.seconds_per_notebook[method.key]),
            )
        )
    return rows


HEADERS = ("method", "s/notebook (median)", "notebooks/min", "peak MiB", "repeats (s/notebook)")


def _aligned(cells: tuple[str, ...], widths: list[int]) -> str:
    # the method column reads left to right, the figures line up on the right
    return "  " + "  ".join(
        cell.ljust(width) if column == 0 else cell.rjust(width)
        for column, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    """The table as aligned text."""
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(HEADERS)]
    print(_aligned(HEADERS, widths))
    for row in rows:
        print(_aligned(row, widths))


def markdown_table(sections: list[tuple[Exercise, list[tuple[str, str, str, str, str]]]]) -> list[str]:
    """Both exercises' tables as one Markdown table (for the README)."""
    lines = [
        "| exercise | " + " | ".join(HEADERS[:4]) + " |",
        "|---|---|---:|---:|---:|",
    ]
    for exercise, rows in sections:
        for row in rows:
            lines.append(f"| {exercise.key} | {row[0].strip()} | {row[1]} | {row[2]} | {row[3]} |")
    return lines


@dataclass(frozen=True)
class Check:
    """A target of the issue, and whether this run met it."""

    text: str
    value: str
    met: bool


def target_checks(results: dict[str, Measurements], two_jobs_key: str) -> list[Check]:
    """The issue's targets, per exercise where they are ratios."""
    checks = []
    for key, measured in results.items():
        a, b, c, d = (measured.median(method) for method in "abcd")
        checks.append(
            Check(
                f"{key}: (a)/(c) >= {TARGET_STOCK_OVER_PARALLEL:g}",
                f"{_ratio(a, c):.2f}",
                _ratio(a, c) >= TARGET_STOCK_OVER_PARALLEL,
            )
        )
        checks.append(
            Check(
                f"{key}: (a)/(b) >= {TARGET_STOCK_OVER_SERIAL:g}",
                f"{_ratio(a, b):.2f}",
                _ratio(a, b) >= TARGET_STOCK_OVER_SERIAL,
            )
        )
        checks.append(
            Check(
                f"{key}: (b)/(d) <= {TARGET_SERIAL_OVER_FLOOR:g}",
                f"{_ratio(b, d):.2f}",
                _ratio(b, d) <= TARGET_SERIAL_OVER_FLOOR,
            )
        )
    peak = max(measured.peak(two_jobs_key) for measured in results.values())
    checks.append(
        Check("peak memory with --jobs 2 < 1024 MiB", f"{peak / MIB:.0f} MiB", peak < TARGET_PEAK_TWO_JOBS)
    )
    return checks


def score_differences(exercise: Exercise, measured: Measurements, compared: list[str]) -> list[str]:
    """Every per-cell score that differs from the first stock nbgrader run, over every run of ``compared``."""
    reference = measured.scores["a"][0]
    differences = []
    for key in compared:
        for repeat, scores in enumerate(measured.scores.get(key, [])):
            if key == "a" and repeat == 0:
                continue
            for student in sorted(set(reference) | set(scores)):
                expected, found = reference.get(student), scores.get(student)
                if expected is None or found is None:
                    missing = "(a) run 1" if expected is None else f"({key}) run {repeat + 1}"
                    differences.append(f"{exercise.key} {student}: not in the gradebook of {missing}")
                    continue
                for grade_id in sorted(set(expected) | set(found)):
                    if expected.get(grade_id) != found.get(grade_id):
                        differences.append(
                            f"{exercise.key} {student} {grade_id}: (a) run 1 {expected.get(grade_id)}, "
                            f"({key}) run {repeat + 1} {found.get(grade_id)}"
                        )
    return differences


def floor_agreement(exercise: Exercise, measured: Measurements) -> list[str]:
    """Test cells where the floor scored differently from stock nbgrader (information, not a failure)."""
    reference = measured.scores["a"][0]
    differences = []
    for scores in measured.scores.get("d", [])[:1]:
        for student, cells in sorted(scores.items()):
            for grade_id, (points, _manual) in sorted(cells.items()):
                stock = reference.get(student, {}).get(grade_id, (None, None))[0]
                if stock != points:
                    differences.append(
                        f"{exercise.key} {student} {grade_id}: nbgrader {stock}, floor {points}"
                    )
    return differences


def score_summary(exercise: Exercise, measured: Measurements, kinds: dict[str, str], key: str) -> str:
    """Mean automatic points per kind of submission in the first run of a method."""
    scores = measured.scores.get(key, [])
    if not scores:
        return "no scores"
    most = sum(task.points for task in exercise.tasks)
    parts = []
    for kind in KINDS:
        totals = [
            sum(auto or 0.0 for auto, _manual in scores[0].get(student, {}).values())
            for student, student_kind in kinds.items()
            if student_kind == kind
        ]
        if totals:
            parts.append(f"{kind} {statistics.mean(totals):.1f}/{most} (x{len(totals)})")
    return ", ".join(parts)


def print_curve(methods: list[Method], results: dict[str, Measurements], cores: int) -> None:
    """Notebooks per minute against --jobs, with speed-up and efficiency against one job."""
    by_jobs = {method.jobs: method.key for method in methods if method.kind == "lms"}
    print(f"\nThroughput with --jobs (lms grade autograde, notebooks/min; {cores} cores):")
    for key, measured in results.items():
        one = _rate(measured.median(by_jobs[1]))
        cells = []
        for jobs in sorted(by_jobs):
            rate = _rate(measured.median(by_jobs[jobs]))
            cells.append(f"{jobs}: {rate:.1f} (x{rate / one:.2f}, {rate / one / jobs:.0%} of linear)")
        print(f"  {key:<8} " + "; ".join(cells))


def machine_line(cores: int) -> str:
    """Cores, CPU model, load and versions (the machine may be shared with other work)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in ("nbgrader", "scikit-learn", "numpy", "ipykernel"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{cores} cores ({model}); load average {load}; Python {sys.version.split()[0]}; " + ", ".join(
        versions
    )


# --- main ----------------------------------------------------------------------------------------------


def rotated(methods: list[Method], repeat: int) -> Iterator[Method]:
    """The methods in a different order each repeat, so no method always runs first or last."""
    shift = repeat % len(methods)
    yield from methods[shift:] + methods[:shift]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=None, help="per exercise (default 40; --quick 6)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3; --quick 1")
    parser.add_argument("--quick", action="store_true", help="6 submissions, 1 repeat: a check that it runs")
    parser.add_argument("--unsafe", action="store_true", help="lms grades without the sandbox (no bwrap)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--floor-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker:
        run_floor(json.loads(Path(args.floor_worker).read_text()))
        return 0
    count = args.submissions or (6 if args.quick else 40)
    repeats = args.repeats or (1 if args.quick else 3)
    if count < 2 or repeats < 1:
        parser.error("--submissions must be at least 2 and --repeats at least 1")
    bindir = Path(sys.executable).parent
    for tool in ("nbgrader", "lms", "alembic"):
        if not (bindir / tool).is_file():
            parser.error(f"{bindir / tool} not found: run this with the project's .venv/bin/python")
    cores = os.cpu_count() or 1
    methods = methods_for(cores)
    workdir = Path(tempfile.mkdtemp(prefix="lms-grading-bench-"))
    (workdir / "logs").mkdir()
    (workdir / "runs").mkdir()
    print(
        f"grading bench: {count} submissions per exercise, {repeats} repeat(s), cell timeout {CELL_TIMEOUT} s"
    )
    print(f"machine: {machine_line(cores)}")
    print("(a shared machine: other jobs may have run at the same time; compare ratios, not seconds)")
    try:
        kinds: dict[str, dict[str, str]] = {}
        for exercise in EXERCISES:
            kinds[exercise.key] = build_course(exercise, workdir / "courses" / exercise.key, count, bindir)
        mix = ", ".join(f"{kind} {list(kinds[SKLEARN.key].values()).count(kind)}" for kind in KINDS)
        print(f"submissions per exercise: {mix}\n")
        bench = Bench(bindir=bindir, workdir=workdir, unsafe=args.unsafe, count=count)
        results = {exercise.key: Measurements() for exercise in EXERCISES}
        started = time.monotonic()
        for repeat in range(repeats):
            for exercise in EXERCISES:
                for method in rotated(methods, repeat):
                    grade_once(
                        bench,
                        method,
                        exercise,
                        workdir / "courses" / exercise.key,
                        repeat,
                        results[exercise.key],
                    )
        print(
            f"\nall runs: {(time.monotonic() - started) / 60:.1f} min; load average now "
            + ", ".join(f"{value:.2f}" for value in os.getloadavg())
        )
        return report(methods, results, kinds, cores, repeats, count)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(
    methods: list[Method],
    results: dict[str, Measurements],
    kinds: dict[str, dict[str, str]],
    cores: int,
    repeats: int,
    count: int,
) -> int:
    """Print tables, targets, the curve and the score checks; the exit status."""
    sections = []
    for exercise in EXERCISES:
        measured = results[exercise.key]
        rows = table_rows(methods, measured)
        sections.append((exercise, rows))
        cells = len(source_notebook(exercise).cells)
        print(
            f"\n{exercise.title} ({cells} cells, {len(exercise.tasks)} graded test cells with hidden tests, "
            f"1 manual answer; {count} submissions, median of {repeats})"
        )
        print_table(rows)
        a, b, c, d = (measured.median(key) for key in "abcd")
        print(
            f"  ratios: (a)/(b) {_ratio(a, b):.2f}   (a)/(c) {_ratio(a, c):.2f}   (b)/(d) {_ratio(b, d):.2f}"
        )
        print(
            f"  floor process with start-up and imports: "
            f"{statistics.median(measured.floor_process_seconds) / count:.2f} s/notebook"
        )
        print(f"  scores (a): {score_summary(exercise, measured, kinds[exercise.key], 'a')}")
        print(f"  scores (d): {score_summary(exercise, measured, kinds[exercise.key], 'd')}")
    two_jobs = next(method.key for method in methods if method.kind == "lms" and method.jobs == 2)
    print("\nTargets (issue 6):")
    for check in target_checks(results, two_jobs):
        print(f"  {check.text:<38} {check.value:>10}   {'met' if check.met else 'NOT met'}")
    print_curve(methods, results, cores)

    compared = [method.key for method in methods if method.kind in ("nbgrader", "lms")]
    differences = []
    floor_notes = []
    for exercise in EXERCISES:
        differences += score_differences(exercise, results[exercise.key], compared)
        floor_notes += floor_agreement(exercise, results[exercise.key])
    runs = sum(len(results[exercise.key].scores.get(key, [])) for exercise in EXERCISES for key in compared)
    print(f"\nPer-cell scores, every student, {runs} gradebooks of nbgrader and lms runs:")
    if differences:
        print(f"  {len(differences)} DIFFERENCES:")
        for line in differences:
            print(f"    {line}")
    else:
        print("  identical in every run: met")
    if floor_notes:
        print("  the floor scored these test cells differently (information only):")
        for line in floor_notes:
            print(f"    {line}")
    else:
        print("  the floor's test-cell scores agree with nbgrader's")
    problems = [problem for exercise in EXERCISES for problem in results[exercise.key].problems]
    if problems:
        print("\nProblems:")
        for problem in problems:
            print(f"  {problem}")

    print("\nMarkdown:\n")
    print("\n".join(markdown_table(sections)))
    print()
    for check in target_checks(results, two_jobs):
        print(f"- {check.text}: {check.value} ({'met' if check.met else 'NOT met'})")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
