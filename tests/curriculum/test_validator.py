"""The course validator: a small valid course built in tmp_path, a corpus of broken variants of it (each must
be rejected with the right file, line and an actionable message), and checks of the shipped course."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from curriculum.loader import CourseInvalid, Problem, load_course, validate_course

SHIPPED = Path(__file__).resolve().parents[2] / "curriculum" / "courses" / "ai-engineering-technician-primary"
SLUG = "tiny-course"

# ---------------------------------------------------------------------------------------------------------
# The small valid course. Line numbers matter: the variants below point at them.
# ---------------------------------------------------------------------------------------------------------

COURSE_YAML = """\
schema_version: 1
slug: tiny-course
code: TINY-1
version: "2026.1"
level: primary
title: {zh_CN: "微型课程", en: "Tiny course"}
summary: {zh_CN: "只用于测试", en: "For tests only"}
standard:
  code: "2-02-10-09"
  edition: 2021
  title: {zh_CN: "标准", en: "Standard"}
  work_functions:
    - id: wf-build
      title: {zh_CN: "构建", en: "Build"}
hours:
  total: 4
  online: 1
  offline: 3
competencies:
  - id: python-data
    title: {zh_CN: "Python 数据处理", en: "Python data handling"}
modules:
  - modules/m01-basics.yaml
  - modules/m02-practice.yaml
"""

MODULE_1 = """\
id: m01-basics
title: {zh_CN: "基础", en: "Basics"}
summary: {zh_CN: "基础知识", en: "The basics"}
work_functions: [wf-build]
units:
  - id: m01-l01-intro
    kind: lesson
    title: {zh_CN: "引言", en: "Introduction"}
    minutes: 30
    content:
      zh_CN: lessons/m01-l01-intro.zh_CN.md
      en: lessons/m01-l01-intro.en.md
    competencies: [python-data]
  - id: m01-quiz
    kind: quiz
    title: {zh_CN: "测验", en: "Quiz"}
    minutes: 30
    questions: quizzes/m01-quiz.yaml
    pass_mark: 60
    competencies: [python-data]
"""

MODULE_2 = """\
id: m02-practice
title: {zh_CN: "实践", en: "Practice"}
summary: {zh_CN: "动手实践", en: "Hands-on practice"}
work_functions: [wf-build]
units:
  - id: m02-lab
    kind: lab
    title: {zh_CN: "实验", en: "Lab"}
    minutes: 180
    plan:
      zh_CN: labs/m02-lab.zh_CN.md
      en: labs/m02-lab.en.md
    exercises: [ex01-double]
    competencies: [python-data]
  - id: ex01-double
    kind: exercise
    title: {zh_CN: "加倍", en: "Doubling"}
    notebook: exercises/ex01-double/ex01-double.ipynb
    points: 3
    due_days: 14
    competencies: [python-data]
"""

QUIZ = """\
questions:
  - id: q1
    type: single
    prompt: {zh_CN: "哪个是偶数？", en: "Which number is even?"}
    options:
      - {id: a, text: {zh_CN: "三", en: "Three"}}
      - {id: b, text: {zh_CN: "四", en: "Four"}}
    answer: b
    explanation: {zh_CN: "四能被二整除。", en: "Four is divisible by two."}
  - id: q2
    type: multiple
    prompt: {zh_CN: "哪些是质数？", en: "Which numbers are prime?"}
    options:
      - {id: a, text: {zh_CN: "二", en: "Two"}}
      - {id: b, text: {zh_CN: "四", en: "Four"}}
      - {id: c, text: {zh_CN: "五", en: "Five"}}
    answer: [a, c]
    explanation: {zh_CN: "二和五都只有两个因数。", en: "Two and five have exactly two divisors."}
  - id: q3
    type: true_false
    prompt: {zh_CN: "零是偶数。", en: "Zero is even."}
    answer: true
    explanation:
      zh_CN: "零能被二整除。"
      en: "Zero is divisible by two."
  - id: q4
    type: fill
    prompt: {zh_CN: "二加二等于几？", en: "What is two plus two?"}
    answer: {zh_CN: ["四", "4"], en: ["four", "4"]}
    explanation: {zh_CN: "二加二等于四。", en: "Two plus two is four."}
"""

LESSON = {
    "zh_CN": "# 引言\n\n把数 $x$ 加倍得到 $2x$。\n\n![加倍示意图](images/doubling.svg)\n",
    "en": "# Introduction\n\nDoubling a number $x$ gives $2x$.\n\n![Doubling diagram](images/doubling.svg)\n",
}
LAB = {
    "zh_CN": "# 实验\n\n两人一组完成练习 `ex01-double`。\n",
    "en": "# Lab\n\nWork through exercise `ex01-double` in pairs.\n",
}
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n'

NOTEBOOK = "exercises/ex01-double/ex01-double.ipynb"


def _nbgrader(
    grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade": grade,
        "solution": solution,
        "locked": locked,
        "grade_id": grade_id,
        "schema_version": 3,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def tiny_notebook() -> str:
    """An nbgrader source notebook: instructions, a solution, a graded test with hidden tests (2 points),
    and a manually graded markdown answer (1 point): 3 points in all."""
    cells = [
        new_markdown_cell(
            "# Exercise 1: doubling\n\nWrite `double(x)`.",
            id="intro",
            metadata=_nbgrader("intro", grade=False, solution=False, locked=True),
        ),
        new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            id="solution",
            metadata=_nbgrader("double-solution", grade=False, solution=True, locked=False),
        ),
        new_code_cell(
            "assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n### END HIDDEN TESTS",
            id="tests",
            metadata=_nbgrader("double-tests", grade=True, solution=False, locked=True, points=2),
        ),
        new_markdown_cell(
            "Why is doubling linear?",
            id="question",
            metadata=_nbgrader("why-question", grade=False, solution=False, locked=True),
        ),
        new_markdown_cell(
            "Because 2(a + b) = 2a + 2b.",
            id="answer",
            metadata=_nbgrader("why-answer", grade=True, solution=True, locked=False, points=1),
        ),
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = new_notebook(cells=cells, metadata={"kernelspec": kernel})
    return nbformat.writes(notebook)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / SLUG
    _write(root / "course.yaml", COURSE_YAML)
    _write(root / "modules/m01-basics.yaml", MODULE_1)
    _write(root / "modules/m02-practice.yaml", MODULE_2)
    _write(root / "quizzes/m01-quiz.yaml", QUIZ)
    for locale in ("zh_CN", "en"):
        _write(root / f"lessons/m01-l01-intro.{locale}.md", LESSON[locale])
        _write(root / f"labs/m02-lab.{locale}.md", LAB[locale])
    _write(root / "images/doubling.svg", SVG)
    _write(root / NOTEBOOK, tiny_notebook())
    return root


@pytest.fixture
def course(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the small valid course, free to break."""
    root = tmp_path / SLUG
    shutil.copytree(template, root)
    return root


# ---------------------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------------------

Mutation = Callable[[Path], None]


def sub(relative: str, old: str, new: str) -> Mutation:
    """Replace the one occurrence of ``old`` in a course file."""

    def mutate(root: Path) -> None:
        path = root / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} must occur exactly once in {relative}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    return mutate


def write(relative: str, text: str) -> Mutation:
    return lambda root: _write(root / relative, text)


def delete(relative: str) -> Mutation:
    return lambda root: (root / relative).unlink()


def both(*mutations: Mutation) -> Mutation:
    def mutate(root: Path) -> None:
        for mutation in mutations:
            mutation(root)

    return mutate


def notebook(edit: Callable[[dict[str, Any]], None]) -> Mutation:
    """Edit the exercise notebook's JSON; written back the way nbformat writes it."""

    def mutate(root: Path) -> None:
        path = root / NOTEBOOK
        data = json.loads(path.read_text(encoding="utf-8"))
        edit(data)
        text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")

    return mutate


def cell(data: dict[str, Any], grade_id: str) -> dict[str, Any]:
    return next(c for c in data["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _strip_solution_markers(data: dict[str, Any]) -> None:
    c = cell(data, "double-solution")
    c["source"] = "def double(x):\n    return 2 * x\n"


def _no_solution_cells(data: dict[str, Any]) -> None:
    for c in data["cells"]:
        if "nbgrader" in c["metadata"]:
            c["metadata"]["nbgrader"]["solution"] = False


def _drop_points(data: dict[str, Any]) -> None:
    del cell(data, "double-tests")["metadata"]["nbgrader"]["points"]


def _duplicate_grade_id(data: dict[str, Any]) -> None:
    cell(data, "why-answer")["metadata"]["nbgrader"]["grade_id"] = "double-tests"


def _unpair_hidden_tests(data: dict[str, Any]) -> None:
    c = cell(data, "double-tests")
    c["source"] = "".join(c["source"]).replace("### END HIDDEN TESTS", "")


def _drop_cell_id(data: dict[str, Any]) -> None:
    del data["cells"][3]["id"]


@dataclass(frozen=True)
class At:
    """A line found in the expected file: the ``nth`` line containing ``needle`` (for generated notebooks)."""

    needle: str
    nth: int = 1

    def resolve(self, path: Path) -> int:
        text = path.read_text(encoding="utf-8")
        index = -1
        for _ in range(self.nth):
            index = text.index(self.needle, index + 1)
        return text.count("\n", 0, index) + 1


NOT_JSON = '{\n "cells": [\n  {"cell_type": "code",,}\n ]\n}\n'
NBFORMAT_3 = '{\n "metadata": {},\n "nbformat_minor": 0,\n "nbformat": 3,\n "worksheets": []\n}\n'

M1 = "modules/m01-basics.yaml"
M2 = "modules/m02-practice.yaml"
QZ = "quizzes/m01-quiz.yaml"
LESSON_EN = "lessons/m01-l01-intro.en.md"
LAB_ZH = "labs/m02-lab.zh_CN.md"
TESTS_CELL = At('"grade_id": "double-tests"')

# (id, mutation, expected file (relative to the course folder), expected line, expected message fragments:
#  what is wrong and what to do)
VARIANTS: list[tuple[str, Mutation, str, int | At, tuple[str, ...]]] = [
    # YAML itself
    (
        "yaml-syntax-course",
        sub("course.yaml", "code: TINY-1", "code: TINY: 1"),
        "course.yaml",
        3,
        ("YAML syntax: mapping values are not allowed here", "check the indentation"),
    ),
    (
        "yaml-syntax-tab-in-module",
        sub(M2, "    minutes: 180", "\tminutes: 180"),
        M2,
        9,
        ("YAML syntax", "check the indentation, quotes and brackets"),
    ),
    (
        "yaml-duplicate-key",
        sub(
            M1,
            "    competencies: [python-data]\n  - id: m01-quiz",
            "    competencies: [python-data]\n    minutes: 45\n  - id: m01-quiz",
        ),
        M1,
        14,
        ("duplicate key 'minutes' (first at line 9)", "keep only one"),
    ),
    (
        "yaml-key-is-a-list",
        sub("course.yaml", "  - modules/m02-practice.yaml\n", "  - modules/m02-practice.yaml\n[a, b]: 1\n"),
        "course.yaml",
        25,
        ("a key must be a plain name", "not a list or mapping"),
    ),
    (
        "yaml-unknown-tag",
        sub("course.yaml", 'version: "2026.1"', 'version: !custom "2026.1"'),
        "course.yaml",
        4,
        ("!custom", "remove the '!' tag"),
    ),
    # schema_version
    (
        "schema-version-too-new",
        sub("course.yaml", "schema_version: 1", "schema_version: 2"),
        "course.yaml",
        1,
        ("schema_version 2 is too new", "upgrade the LMS"),
    ),
    (
        "schema-version-too-old",
        sub("course.yaml", "schema_version: 1", "schema_version: 0"),
        "course.yaml",
        1,
        ("schema_version 0 is too old", "convert the course with a release"),
    ),
    (
        "schema-version-missing",
        sub("course.yaml", "schema_version: 1\n", ""),
        "course.yaml",
        1,
        ("schema_version is missing", "add e.g. 'schema_version: 1' at the top"),
    ),
    (
        "schema-version-not-number",
        sub("course.yaml", "schema_version: 1", 'schema_version: "1"'),
        "course.yaml",
        1,
        ("not a whole number", "add e.g. 'schema_version: 1'", "reads schema_version 1 to 1"),
    ),
    # schema: unknown keys, missing locales
    (
        "unknown-key-course",
        sub(
            "course.yaml", "  - modules/m02-practice.yaml\n", "  - modules/m02-practice.yaml\ncolour: blue\n"
        ),
        "course.yaml",
        25,
        ("unknown key(s) 'colour' in the file", "allowed: code, competencies"),
    ),
    (
        "unknown-key-unit",
        sub(
            M1,
            "    competencies: [python-data]\n  - id: m01-quiz",
            "    competencies: [python-data]\n    duration: 30\n  - id: m01-quiz",
        ),
        M1,
        14,
        ("unknown key(s) 'duration' in units.0", "allowed: competencies, content, id, kind, minutes, title"),
    ),
    (
        "missing-locale-course-title",
        sub("course.yaml", 'title: {zh_CN: "微型课程", en: "Tiny course"}', 'title: {zh_CN: "微型课程"}'),
        "course.yaml",
        6,
        ("title: missing locale en", "every text needs zh_CN and en"),
    ),
    (
        "missing-locale-quiz-explanation",
        sub(QZ, '      en: "Zero is divisible by two."\n', ""),
        QZ,
        23,
        ("questions.2.explanation: missing locale en", "every text needs zh_CN and en"),
    ),
    # files named by the course
    (
        "missing-module-file",
        sub("course.yaml", "  - modules/m02-practice.yaml", "  - modules/m03-missing.yaml"),
        "course.yaml",
        24,
        ("file 'modules/m03-missing.yaml' does not exist", "create it or fix the path"),
    ),
    (
        "missing-lesson-file",
        delete(LESSON_EN),
        M1,
        12,
        ("file 'lessons/m01-l01-intro.en.md' does not exist", "create it or fix the path"),
    ),
    (
        "path-escapes-course",
        both(
            write("../outside.en.md", "# Outside\n"),
            sub(M1, "en: lessons/m01-l01-intro.en.md", "en: ../outside.en.md"),
        ),
        M1,
        12,
        ("'../outside.en.md' points outside the course folder", "use a path relative to and inside"),
    ),
    (
        "path-absolute",
        sub(M2, "en: labs/m02-lab.en.md", "en: /etc/hostname"),
        M2,
        12,
        ("'/etc/hostname' points outside the course folder", "use a path relative to and inside"),
    ),
    # ids and references
    (
        "duplicate-unit-id-across-modules",
        sub(M2, "  - id: m02-lab", "  - id: m01-l01-intro"),
        M2,
        6,
        (f"duplicate id 'm01-l01-intro' (first used at {SLUG}/{M1}:6)", "ids must be unique in the course"),
    ),
    (
        "undeclared-competency",
        sub(
            M1,
            "    competencies: [python-data]\n  - id: m01-quiz",
            "    competencies: [python-data, ghost-skill]\n  - id: m01-quiz",
        ),
        M1,
        13,
        (
            "competency 'ghost-skill' is not declared in course.yaml competencies",
            "declare it there or fix the id",
        ),
    ),
    (
        "undeclared-work-function",
        sub(M2, "work_functions: [wf-build]", "work_functions: [wf-build, wf-ghost]"),
        M2,
        4,
        (
            "work function 'wf-ghost' is not declared in course.yaml standard.work_functions",
            "declare it there or fix the id",
        ),
    ),
    (
        "lab-practises-unknown-exercise",
        sub(M2, "exercises: [ex01-double]", "exercises: [ex99-missing]"),
        M2,
        13,
        (
            "lab 'm02-lab' practises 'ex99-missing', which is not an exercise unit",
            "list only ids of exercise units",
        ),
    ),
    (
        "lab-practises-a-lesson",
        sub(M2, "exercises: [ex01-double]", "exercises: [ex01-double, m01-l01-intro]"),
        M2,
        13,
        ("practises 'm01-l01-intro', which is not an exercise unit", "list only ids of exercise units"),
    ),
    # hours
    (
        "hours-online-wrong",
        sub("course.yaml", "  online: 1", "  online: 2"),
        "course.yaml",
        17,
        ("hours.online is 2 but the units add up to 1 hours (60 minutes)", "change the declaration"),
    ),
    (
        "hours-total-wrong",
        sub("course.yaml", "  total: 4", "  total: 5"),
        "course.yaml",
        16,
        ("hours.total is 5 but the units add up to 4 hours (240 minutes)", "change the declaration"),
    ),
    (
        "hours-lab-minutes-changed",
        sub(M2, "minutes: 180", "minutes: 150"),
        "course.yaml",
        18,
        ("hours.offline is 3 but the units add up to 2.5 hours (150 minutes)", "or the units' minutes"),
    ),
    # quizzes
    (
        "quiz-answer-names-no-option",
        sub(QZ, "    answer: b", "    answer: z"),
        QZ,
        8,
        ("question 'q1': answer 'z' names no option", "options are a, b"),
    ),
    (
        "quiz-multiple-one-bad-id",
        sub(QZ, "answer: [a, c]", "answer: [a, x]"),
        QZ,
        17,
        ("question 'q2': answer 'x' names no option", "options are a, b, c"),
    ),
    # Markdown
    (
        "image-missing",
        sub(LESSON_EN, "(images/doubling.svg)", "(images/nope.svg)"),
        LESSON_EN,
        5,
        ("image 'images/nope.svg' does not exist", "add it to images/ or fix the path"),
    ),
    (
        "image-remote-url",
        sub(LESSON_EN, "(images/doubling.svg)", "(https://example.com/doubling.png)"),
        LESSON_EN,
        5,
        ("image 'https://example.com/doubling.png' is not a course file", "put it in images/"),
    ),
    (
        "image-outside-images-in-lab-plan",
        sub(LAB_ZH, "两人一组", "![图](../doubling.svg)\n两人一组"),
        LAB_ZH,
        3,
        ("image '../doubling.svg'", "must be a file under images/"),
    ),
    # notebooks
    (
        "notebook-not-json",
        write(NOTEBOOK, NOT_JSON),
        NOTEBOOK,
        3,
        ("not valid JSON", "save the notebook again from Jupyter"),
    ),
    (
        "notebook-nbformat-3",
        write(NOTEBOOK, NBFORMAT_3),
        NOTEBOOK,
        4,
        ("nbformat 3 is not supported", "save the notebook as nbformat 4"),
    ),
    (
        "notebook-no-solution-region",
        notebook(_strip_solution_markers),
        NOTEBOOK,
        At('"grade_id": "double-solution"'),
        ("cell 2 (double-solution): a code solution cell needs a '### BEGIN SOLUTION'", "region"),
    ),
    (
        "notebook-no-solution-cell",
        notebook(_no_solution_cells),
        NOTEBOOK,
        1,
        ("no solution region", "mark at least one cell as an nbgrader solution"),
    ),
    (
        "notebook-graded-cell-without-points",
        notebook(_drop_points),
        NOTEBOOK,
        TESTS_CELL,
        ("cell 3 (double-tests): a graded cell needs", "non-negative 'points'"),
    ),
    (
        "notebook-duplicate-grade-id",
        notebook(_duplicate_grade_id),
        NOTEBOOK,
        At('"grade_id": "double-tests"', nth=2),
        (
            "cell 5 (double-tests): grade_id 'double-tests' is used twice (first in cell 3)",
            "give each cell its own grade_id",
        ),
    ),
    (
        "notebook-hidden-tests-unpaired",
        notebook(_unpair_hidden_tests),
        NOTEBOOK,
        TESTS_CELL,
        ("'### BEGIN HIDDEN TESTS' and '### END HIDDEN TESTS' do not pair up",),
    ),
    (
        "notebook-cell-without-id",
        notebook(_drop_cell_id),
        NOTEBOOK,
        1,
        ("a cell has no 'id'", "open and save the notebook in Jupyter"),
    ),
    (
        "points-mismatch",
        sub(M2, "points: 3", "points: 5"),
        NOTEBOOK,
        1,
        (
            "the graded cells' points add up to 3, but the unit declares 5",
            "change the unit's points or the cells' points",
        ),
    ),
]


def test_the_corpus_is_big_enough_and_ids_are_unique() -> None:
    ids = [variant[0] for variant in VARIANTS]
    assert len(ids) >= 18
    assert len(set(ids)) == len(ids)


def test_the_small_course_is_clean(course: Path) -> None:
    assert validate_course(course) == []
    files = load_course(course)
    assert [m.id for m in files.modules] == ["m01-basics", "m02-practice"]
    assert [u.kind for u in files.units()] == ["lesson", "quiz", "lab", "exercise"]
    assert (files.hours.online, files.hours.offline, files.hours.total) == (1, 3, 4)
    assert set(files.assets) == {"images/doubling.svg"}


@pytest.mark.parametrize(
    ("mutate", "suffix", "line", "fragments"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS]
)
def test_a_broken_course_is_rejected_with_file_line_and_advice(
    course: Path, mutate: Mutation, suffix: str, line: int | At, fragments: tuple[str, ...]
) -> None:
    mutate(course)
    problems = validate_course(course)
    assert problems, "the broken course was accepted"
    assert problems == sorted(problems), "problems must come sorted by file and line"
    assert all(isinstance(p, Problem) for p in problems)
    expected_line = line.resolve(course / suffix) if isinstance(line, At) else line
    if isinstance(line, At):
        assert expected_line > 1, "the notebook line must point into the file, not at its top"
    listing = "\n".join(map(str, problems))
    matching = [
        p for p in problems if p.file.endswith(f"{SLUG}/{suffix}") and all(f in p.message for f in fragments)
    ]
    assert len(matching) == 1, f"expected exactly one {suffix} problem saying {fragments}; got:\n{listing}"
    assert matching[0].line == expected_line, f"expected line {expected_line}; got:\n{listing}"


def test_load_course_raises_with_the_same_problems(course: Path) -> None:
    sub("course.yaml", "  online: 1", "  online: 2")(course)
    with pytest.raises(CourseInvalid) as raised:
        load_course(course)
    assert raised.value.problems == validate_course(course)


def test_problem_renders_as_file_colon_line() -> None:
    assert str(Problem("tiny-course/course.yaml", 3, "bad")) == "tiny-course/course.yaml:3: bad"


# ---------------------------------------------------------------------------------------------------------
# The shipped course
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Any:
    return load_course(SHIPPED)


def test_shipped_course_shape(shipped: Any) -> None:
    assert len(shipped.modules) == 8
    assert shipped.hours.online == 32
    assert shipped.hours.offline == 32
    units = shipped.units()
    assert sum(u.minutes for u in units if u.kind in ("lesson", "quiz")) == 32 * 60
    assert sum(u.minutes for u in units if u.kind == "lab") == 32 * 60


def test_shipped_quizzes_have_enough_explained_questions(shipped: Any) -> None:
    quizzes = [u for u in shipped.units() if u.kind == "quiz"]
    assert quizzes
    for quiz in quizzes:
        assert len(quiz.questions) >= 6, quiz.id
        for question in quiz.questions:
            assert question.explanation.zh_CN.strip(), (quiz.id, question.id)
            assert question.explanation.en.strip(), (quiz.id, question.id)


def test_shipped_notebooks_have_hidden_tests_and_a_manually_graded_answer(shipped: Any) -> None:
    exercises = [u for u in shipped.units() if u.kind == "exercise"]
    assert len(exercises) >= 1
    for unit in exercises:
        cells = nbformat.reads(unit.notebook, as_version=4).cells
        meta = [(c, c.metadata.get("nbgrader", {})) for c in cells]
        hidden = [
            c
            for c, m in meta
            if c.cell_type == "code"
            and m.get("grade")
            and "### BEGIN HIDDEN TESTS" in c.source
            and "### END HIDDEN TESTS" in c.source
        ]
        manual = [c for c, m in meta if c.cell_type == "markdown" and m.get("grade") and m.get("solution")]
        assert hidden, f"{unit.id}: no hidden-test block"
        assert manual, f"{unit.id}: no manually graded markdown answer"


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    import time

    from curriculum.yamlfile import YamlSyntaxError, read_yaml

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(YamlSyntaxError, match="aliases"):
        read_yaml(bomb)
    assert time.perf_counter() - started < 5
