"""Checks of nbgrader source notebooks, pure: JSON text in, (line, message) problems out."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

NBGRADER_KEYS = ("grade", "solution", "locked", "grade_id", "schema_version")
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def _line_of(source: str, needle: str, occurrence: int = 1) -> int:
    """The line of the ``occurrence``-th (1-based) appearance of ``needle``, or 1 when there is none."""
    index = -1
    for _ in range(occurrence):
        index = source.find(needle, index + 1)
        if index < 0:
            return 1
    return source.count("\n", 0, index) + 1


def notebook_problems(source: str, declared_points: float | None) -> list[tuple[int, str]]:
    """What is wrong with an nbgrader source notebook (empty: nothing)."""
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        return [(exc.lineno, f"not valid JSON: {exc.msg}; save the notebook again from Jupyter")]
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        found = data.get("nbformat") if isinstance(data, dict) else None
        return [
            (
                _line_of(source, '"nbformat"'),
                f"nbformat {found} is not supported; save the notebook as nbformat 4",
            )
        ]
    import nbformat
    from nbformat.warnings import DuplicateCellId, MissingIDFieldWarning

    try:
        with warnings.catch_warnings():  # nbformat only warns about (and repairs) missing or repeated ids
            warnings.simplefilter("error", MissingIDFieldWarning)
            warnings.simplefilter("error", DuplicateCellId)
            notebook = nbformat.reads(source, as_version=4)
            nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        return [(1, f"not a valid nbformat 4 notebook: {exc.message}")]
    except MissingIDFieldWarning:
        return [(1, "a cell has no 'id'; open and save the notebook in Jupyter to add cell ids")]
    except DuplicateCellId:
        return [(1, "two cells have the same 'id'; give each cell its own id")]
    problems: list[tuple[int, str]] = []
    grade_ids: dict[str, int] = {}
    occurrences: dict[str, int] = {}  # how often each grade_id has appeared so far, to find this cell's line
    points = 0.0
    solutions = 0
    for index, cell in enumerate(notebook.cells):
        meta: Any = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        name = meta.get("grade_id") if isinstance(meta, dict) else None
        if isinstance(name, str):
            occurrences[name] = occurrences.get(name, 0) + 1
        line = _line_of(source, f'"grade_id": "{name}"', occurrences.get(name, 1)) if name else 1
        where = f"cell {index + 1}" + (f" ({name})" if name else "")
        if not isinstance(meta, dict) or any(key not in meta for key in NBGRADER_KEYS):
            missing = [k for k in NBGRADER_KEYS if not isinstance(meta, dict) or k not in meta]
            problems.append((line, f"{where}: nbgrader metadata lacks {', '.join(missing)}"))
            continue
        if meta["schema_version"] != 3:
            problems.append((line, f"{where}: nbgrader schema_version must be 3"))
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            problems.append((line, f"{where}: grade_id must be letters, digits, '_' or '-'"))
        elif name in grade_ids:
            problems.append(
                (
                    line,
                    f"{where}: grade_id '{name}' is used twice (first in cell "
                    f"{grade_ids[name]}); give each cell its own grade_id",
                )
            )
        else:
            grade_ids[name] = index + 1
        if meta["grade"]:
            value = meta.get("points")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                problems.append((line, f"{where}: a graded cell needs non-negative 'points'"))
            else:
                points += value
        text = cell.source
        if meta["solution"]:
            solutions += 1
            if cell.cell_type == "code" and (BEGIN_SOLUTION not in text or END_SOLUTION not in text):
                problems.append(
                    (
                        line,
                        f"{where}: a code solution cell needs a '{BEGIN_SOLUTION}' … '{END_SOLUTION}' region",
                    )
                )
        if text.count(BEGIN_HIDDEN) != text.count(END_HIDDEN):
            problems.append((line, f"{where}: '{BEGIN_HIDDEN}' and '{END_HIDDEN}' do not pair up"))
    if solutions == 0:
        problems.append((1, "no solution region: mark at least one cell as an nbgrader solution"))
    if declared_points is not None and abs(points - declared_points) > 1e-9 and not problems:
        problems.append(
            (
                1,
                f"the graded cells' points add up to {points:g}, but the unit declares "
                f"{declared_points:g}; change the unit's points or the cells' points",
            )
        )
    return problems
