"""Upload checks and structure repair (graders.repair): pure functions, no app, no database."""

from __future__ import annotations

import codecs
import copy
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from graders.repair import UploadRejected, check_assignment, read_upload, repair

MB = 1_000_000
EX01 = (
    Path(__file__).resolve().parents[2]
    / "curriculum/courses/ai-engineering-technician-primary/exercises"
    / "ex01-platform-sizing/ex01-platform-sizing.ipynb"
)
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def nbgrader(
    grade_id: str,
    *,
    solution: bool = False,
    grade: bool = False,
    locked: bool = False,
    points: float | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade_id": grade_id,
        "solution": solution,
        "grade": grade,
        "locked": locked,
        "schema_version": 3,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def release_notebook() -> nbformat.NotebookNode:
    """A release notebook like nbgrader's: a locked intro, two answers with their tests, a manual answer."""
    return new_notebook(
        cells=[
            new_markdown_cell("# Exercise\nWrite two functions.", metadata=nbgrader("intro", locked=True)),
            new_code_cell(f"def add(a, b):\n    {STUB}", metadata=nbgrader("sol-add", solution=True)),
            new_code_cell(
                "assert add(1, 2) == 3", metadata=nbgrader("test-add", grade=True, locked=True, points=2)
            ),
            new_code_cell(f"def mul(a, b):\n    {STUB}", metadata=nbgrader("sol-mul", solution=True)),
            new_code_cell(
                "assert mul(2, 3) == 6", metadata=nbgrader("test-mul", grade=True, locked=True, points=3)
            ),
            new_markdown_cell(
                "YOUR ANSWER HERE", metadata=nbgrader("answer", solution=True, grade=True, points=2)
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "lms": {"assignment": "ex04"},
        },
    )


def answered(release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What a trainee hands back: the release with its answers written (and some outputs)."""
    submitted = copy.deepcopy(release)
    answers = {
        "sol-add": "def add(a, b):\n    return a + b",
        "sol-mul": "def mul(a, b):\n    return a * b",
        "answer": "Because it is cheaper.",
    }
    for cell in submitted.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            cell.execution_count = 1
    return submitted


def cell_with(notebook: nbformat.NotebookNode, grade_id: str) -> Any:
    return next(
        cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )


def grade_ids(notebook: nbformat.NotebookNode) -> list[str | None]:
    return [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells]


def as_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def notebook_bytes(cells: int = 3) -> bytes:
    return nbformat.writes(new_notebook(cells=[new_code_cell(f"x = {n}") for n in range(cells)])).encode()


# --- read_upload ---------------------------------------------------------------------------------------


def _without_source() -> bytes:
    document = json.loads(notebook_bytes())
    del document["cells"][2]["source"]
    return as_bytes(document)


def _bad_output() -> bytes:
    document = json.loads(notebook_bytes())
    document["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout"}]
    return as_bytes(document)


def _nested(levels: int) -> bytes:
    document = json.loads(notebook_bytes())
    document["metadata"]["deep"] = json.loads("[" * levels + "]" * levels)
    return as_bytes(document)


NOTEBOOK_3 = as_bytes(
    {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {"name": "old"},
        "worksheets": [
            {"cells": [{"cell_type": "code", "input": "x = 1", "outputs": [], "language": "python"}]}
        ],
    }
)
TEN_THOUSAND_CELLS = as_bytes(
    {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "raw"}] * 10_000}
)
GBK = '{"nbformat": 4, "cells": [], "note": "练习"}'.encode("gbk")


@pytest.mark.parametrize(
    ("data", "max_bytes", "max_cells", "code", "says"),
    [
        (b"", 20 * MB, 2000, "empty", "The file is empty."),
        (b"x" * 25 * MB, 20 * MB, 2000, "too_large", "The file is 25 MB; the limit is 20 MB."),
        (b"x" * 52_400_000, 20 * MB, 2000, "too_large", "The file is 52.4 MB; the limit is 20 MB."),
        # One byte over still reads as over the limit, not "20 MB; the limit is 20 MB".
        (b"x" * (20 * MB + 1), 20 * MB, 2000, "too_large", "The file is 20,000,001 bytes; the limit is"),
        # Size comes first: nothing is decoded before it is checked.
        (b"\xff" * 21 * MB, 20 * MB, 2000, "too_large", "The file is 21 MB"),
        (b"\xff\xfe garbage", 20 * MB, 2000, "not_utf8", "byte offset 0"),
        (b"\x00\x00\xff garbage", 20 * MB, 2000, "not_utf8", "the byte at offset 2 is not valid UTF-8"),
        (GBK, 20 * MB, 2000, "not_utf8", "is not valid UTF-8. A Jupyter notebook is always UTF-8"),
        (notebook_bytes()[:-40], 20 * MB, 2000, "not_json", "This file is not valid JSON (line "),
        (b'{"cells": [1, 2,]}', 20 * MB, 2000, "not_json", "(line 1, column 17): Expecting value."),
        (b"1" * 5000, 20 * MB, 2000, "not_json", "number too long"),
        (b"[1, 2, 3]", 20 * MB, 2000, "not_notebook", "not a Jupyter notebook"),
        (b'{"cells": []}', 20 * MB, 2000, "not_notebook", "no format version ('nbformat')"),
        (b'{"nbformat": "4", "cells": []}', 20 * MB, 2000, "not_notebook", "no format version"),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
            20 * MB,
            2000,
            "not_notebook",
            "no list of cells",
        ),
        (b"[" * 5000 + b"]" * 5000, 20 * MB, 2000, "not_notebook", "levels deep"),
        (_nested(150), 20 * MB, 2000, "not_notebook", "more than 100 levels deep"),
        (NOTEBOOK_3, 20 * MB, 2000, "old_format", "old format 3. Open it in Jupyter and save it"),
        (b'{"nbformat": 5, "nbformat_minor": 0, "cells": []}', 20 * MB, 2000, "new_format", "format 5"),
        (
            TEN_THOUSAND_CELLS,
            20 * MB,
            2000,
            "too_many_cells",
            "The notebook has 10,000 cells; the limit is 2,000.",
        ),
        (_without_source(), 20 * MB, 2000, "invalid_notebook", "(cell 3: 'source' is missing)"),
        (_bad_output(), 20 * MB, 2000, "invalid_notebook", "(cell 2, output 1: 'text' is missing)"),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, '
            b'"cells": [{"cell_type": "sql", "source": ""}]}',
            20 * MB,
            2000,
            "invalid_notebook",
            "(cell 1: unknown cell type 'sql')",
        ),
        (
            b'{"nbformat": 4, "metadata": {}, "cells": []}',
            20 * MB,
            2000,
            "invalid_notebook",
            "(the notebook: 'nbformat_minor' is missing)",
        ),
    ],
)
def test_uploads_that_cannot_be_graded_are_rejected_with_a_precise_reason(
    data, max_bytes, max_cells, code, says
):
    with pytest.raises(UploadRejected) as caught:
        read_upload(data, max_bytes=max_bytes, max_cells=max_cells)
    assert caught.value.code == code
    assert says in caught.value.message
    assert str(caught.value) == caught.value.message


def test_gbk_offset_points_at_the_first_chinese_byte():
    with pytest.raises(UploadRejected) as caught:
        read_upload(GBK, max_bytes=MB, max_cells=10)
    first_bad = next(index for index, byte in enumerate(GBK) if byte >= 0x80)
    assert f"offset {first_bad} " in caught.value.message


def test_schema_errors_stay_short():
    document = json.loads(notebook_bytes())
    document["cells"][0]["metadata"] = "x" * 100_000
    with pytest.raises(UploadRejected) as caught:
        read_upload(as_bytes(document), max_bytes=MB, max_cells=10)
    assert caught.value.code == "invalid_notebook"
    assert "cell 1: 'metadata' has the wrong type" in caught.value.message
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("prefix", [b"", codecs.BOM_UTF8])
def test_a_normal_notebook_is_read_with_or_without_a_byte_order_mark(prefix):
    notebook = read_upload(prefix + notebook_bytes(3), max_bytes=MB, max_cells=3)
    assert [cell.source for cell in notebook.cells] == ["x = 0", "x = 1", "x = 2"]
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 5)
    nbformat.validate(notebook)


def test_format_4_0_cells_get_ids_and_split_sources_are_joined():
    document = {
        "nbformat": 4,
        "nbformat_minor": 0,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "text"]},
            {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [], "execution_count": None},
        ],
    }
    notebook = read_upload(as_bytes(document), max_bytes=MB, max_cells=10)
    assert notebook.nbformat_minor == 5
    assert notebook.cells[0].source == "# Title\ntext"
    assert len({cell.id for cell in notebook.cells}) == 2
    nbformat.validate(notebook)


def test_duplicate_and_malformed_cell_ids_are_replaced():
    document = json.loads(notebook_bytes(4))
    document["cells"][1]["id"] = document["cells"][0]["id"]
    document["cells"][2]["id"] = "not a valid id!"
    original_first = document["cells"][0]["id"]
    notebook = read_upload(as_bytes(document), max_bytes=MB, max_cells=10)
    ids = [cell.id for cell in notebook.cells]
    assert ids[0] == original_first
    assert len(set(ids)) == 4
    assert ids[2] != "not a valid id!"
    nbformat.validate(notebook)


# --- check_assignment ----------------------------------------------------------------------------------

OWN = frozenset({"sol-add", "test-add", "sol-mul", "test-mul", "answer"})


def notebook_with(ids: list[str], assignment: str | None = None) -> nbformat.NotebookNode:
    metadata = {"lms": {"assignment": assignment}} if assignment else {}
    return new_notebook(
        cells=[new_code_cell("", metadata=nbgrader(grade_id)) for grade_id in ids], metadata=metadata
    )


@pytest.mark.parametrize(
    ("ids", "claimed", "others", "says"),
    [
        (sorted(OWN), "ex04", {}, None),
        (sorted(OWN), None, {}, None),
        # The trainee deleted most cells, and no other assignment fits better: repair handles it.
        (["sol-add", "scratch"], None, {"ex03": frozenset({"sol-x"})}, None),
        # Half is enough even when another assignment shares more ids.
        (["sol-add", "test-add", "sol-mul", "shared"], None, {"ex05": OWN | {"shared"}}, None),
        (sorted(OWN), "ex03", {}, "This notebook is for assignment 'ex03', not 'ex04'."),
        (["intro", "other"], None, {}, "none of the graded cells of assignment 'ex04'"),
        (
            ["sol-add", "sol-p", "test-p", "sol-q"],
            None,
            {"ex02": frozenset({"sol-z"}), "ex03": frozenset({"sol-p", "test-p", "sol-q", "test-q"})},
            "seems to be for assignment 'ex03', not 'ex04'",
        ),
    ],
)
def test_a_notebook_for_another_assignment_is_recognised(ids, claimed, others, says):
    notebook = notebook_with(ids, claimed)
    if says is None:
        assert check_assignment(notebook, slug="ex04", graded_ids=OWN, others=others) is None
        return
    with pytest.raises(UploadRejected) as caught:
        check_assignment(notebook, slug="ex04", graded_ids=OWN, others=others)
    assert caught.value.code == "wrong_assignment"
    assert says in caught.value.message


# --- repair --------------------------------------------------------------------------------------------


def test_an_untouched_submission_is_graded_as_handed_in():
    release = release_notebook()
    submitted = answered(release)
    result = repair(submitted, release)
    assert (result.restored, result.stripped, result.missing_answers) == ((), (), ())
    assert grade_ids(result.notebook) == grade_ids(release)
    assert cell_with(result.notebook, "sol-add").source == "def add(a, b):\n    return a + b"
    assert cell_with(result.notebook, "answer").source == "Because it is cheaper."
    assert result.notebook.metadata == release.metadata
    nbformat.validate(result.notebook)


def test_a_deleted_test_cell_is_restored_and_reported():
    release = release_notebook()
    submitted = answered(release)
    submitted.cells = [cell for cell in submitted.cells if cell.metadata.nbgrader.grade_id != "test-mul"]
    result = repair(submitted, release)
    assert result.restored == ("test-mul",)
    assert cell_with(result.notebook, "test-mul") == cell_with(release, "test-mul")
    assert grade_ids(result.notebook) == grade_ids(release)


@pytest.mark.parametrize(
    ("edit", "grade_id"),
    [
        (lambda cell: setattr(cell, "source", "assert True"), "test-add"),
        (lambda cell: cell.metadata.nbgrader.update(points=100), "test-add"),
        (lambda cell: cell.metadata.nbgrader.update(grade=False), "test-mul"),
        (lambda cell: setattr(cell, "cell_type", "raw"), "intro"),
        (lambda cell: setattr(cell, "source", "# My notes"), "intro"),
    ],
)
def test_an_altered_assignment_cell_comes_back_from_the_release(edit, grade_id):
    release = release_notebook()
    submitted = answered(release)
    edit(cell_with(submitted, grade_id))
    result = repair(submitted, release)
    assert result.restored == (grade_id,)
    assert cell_with(result.notebook, grade_id) == cell_with(release, grade_id)
    nbformat.validate(result.notebook)


def test_edited_points_on_an_answer_earn_nothing_but_the_answer_is_kept():
    release = release_notebook()
    submitted = answered(release)
    edited = cell_with(submitted, "answer")
    edited.metadata.nbgrader.update(points=100, checksum="forged")
    result = repair(submitted, release)
    graded = cell_with(result.notebook, "answer")
    assert result.restored == ("answer",)
    assert graded.metadata.nbgrader == release.cells[5].metadata.nbgrader
    assert graded.source == "Because it is cheaper."


def test_an_answer_turned_into_markdown_stays_code():
    release = release_notebook()
    submitted = answered(release)
    cell = cell_with(submitted, "sol-add")
    submitted.cells[1] = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata, id=cell.id)
    result = repair(submitted, release)
    graded = cell_with(result.notebook, "sol-add")
    assert (graded.cell_type, graded.source, graded.outputs) == (
        "code",
        "def add(a, b):\n    return a + b",
        [],
    )
    assert result.restored == ("sol-add",)


def test_a_deleted_answer_comes_back_empty_from_the_release():
    release = release_notebook()
    submitted = answered(release)
    submitted.cells = [cell for cell in submitted.cells if cell.metadata.nbgrader.grade_id != "sol-mul"]
    result = repair(submitted, release)
    assert result.missing_answers == ("sol-mul",)
    assert result.restored == ()
    assert cell_with(result.notebook, "sol-mul").source == f"def mul(a, b):\n    {STUB}"


def test_the_trainees_own_cells_stay_where_they_were():
    release = release_notebook()
    submitted = answered(release)
    submitted.cells.insert(0, new_code_cell("import math"))
    submitted.cells.insert(4, new_code_cell("print(add(2, 2))"))  # after intro, sol-add and test-add
    submitted.cells.append(new_markdown_cell("My notes"))
    result = repair(submitted, release)
    sources = [cell.source for cell in result.notebook.cells]
    assert sources[0] == "import math"
    assert sources[sources.index("assert add(1, 2) == 3") + 1] == "print(add(2, 2))"
    assert sources[-1] == "My notes"
    assert result.restored == result.stripped == ()
    nbformat.validate(result.notebook)


def test_a_fake_grade_cell_is_stripped_and_earns_nothing():
    release = release_notebook()
    submitted = answered(release)
    bonus = new_code_cell("assert True", metadata=nbgrader("bonus", grade=True, locked=True, points=100))
    submitted.cells.insert(5, bonus)
    result = repair(submitted, release)
    assert result.stripped == ("bonus",)
    kept = next(cell for cell in result.notebook.cells if cell.source == "assert True")
    assert "nbgrader" not in kept.metadata
    assert "bonus" not in grade_ids(result.notebook)
    points = [cell.metadata.get("nbgrader", {}).get("points", 0) for cell in result.notebook.cells]
    assert sum(points) == 7
    assert bonus.metadata.nbgrader.points == 100  # the input is untouched


def test_a_duplicated_grade_id_counts_once():
    release = release_notebook()
    submitted = answered(release)
    copy_of_answer = copy.deepcopy(cell_with(submitted, "sol-add"))
    copy_of_answer.source = "def add(a, b):\n    return 0"
    copy_of_answer.id = "second-copy"
    submitted.cells.append(copy_of_answer)
    result = repair(submitted, release)
    assert result.stripped == ("sol-add",)
    assert grade_ids(result.notebook).count("sol-add") == 1
    assert cell_with(result.notebook, "sol-add").source == "def add(a, b):\n    return a + b"
    assert result.notebook.cells[-1].source == "def add(a, b):\n    return 0"
    assert "nbgrader" not in result.notebook.cells[-1].metadata


def test_the_order_follows_the_release():
    release = release_notebook()
    submitted = answered(release)
    submitted.cells.reverse()
    result = repair(submitted, release)
    assert grade_ids(result.notebook) == grade_ids(release)
    assert cell_with(result.notebook, "sol-mul").source == "def mul(a, b):\n    return a * b"


def test_cells_of_the_release_without_nbgrader_metadata_appear_once():
    release = release_notebook()
    release.cells.insert(1, new_markdown_cell("Read the manual first."))
    submitted = answered(release)
    submitted.cells.insert(2, new_code_cell("help(len)"))
    result = repair(submitted, release)
    sources = [cell.source for cell in result.notebook.cells]
    assert sources.count("Read the manual first.") == 1
    assert sources.index("help(len)") == sources.index("Read the manual first.") + 1


def test_ids_are_unique_and_trainee_metadata_is_dropped():
    release = release_notebook()
    submitted = answered(release)
    submitted.metadata["lms"] = {"assignment": "ex99"}
    submitted.metadata["kernelspec"] = {"name": "evil", "display_name": "Evil"}
    clash = new_code_cell("x = 1")
    clash.id = release.cells[0].id
    submitted.cells.append(clash)
    before = copy.deepcopy(submitted)
    result = repair(submitted, release)
    ids = [cell.id for cell in result.notebook.cells]
    assert len(set(ids)) == len(ids)
    assert ids[0] == release.cells[0].id
    assert result.notebook.metadata == release.metadata
    assert submitted == before
    nbformat.validate(result.notebook)


def test_repair_of_the_real_ex01_notebook():
    release = read_upload(EX01.read_bytes(), max_bytes=20 * MB, max_cells=2000)
    original = copy.deepcopy(release)
    submitted = copy.deepcopy(release)
    cell_with(submitted, "sol-peak").source = "def peak_qps(requests_per_day, peak_factor):\n    return 0"
    cell_with(submitted, "test-workers").source = "assert True"
    cell_with(submitted, "answer-choice").metadata.nbgrader["points"] = 30
    submitted.cells = [cell for cell in submitted.cells if cell.metadata.nbgrader.grade_id != "test-storage"]
    submitted.cells = [cell for cell in submitted.cells if cell.metadata.nbgrader.grade_id != "sol-cost"]

    result = repair(submitted, release)

    assert result.restored == ("test-workers", "test-storage", "answer-choice")
    assert result.missing_answers == ("sol-cost",)
    assert result.stripped == ()
    assert grade_ids(result.notebook) == grade_ids(release)
    assert cell_with(result.notebook, "sol-peak").source.endswith("return 0")
    assert cell_with(result.notebook, "answer-choice").metadata.nbgrader["points"] == 3
    assert release == original
    nbformat.validate(result.notebook)
