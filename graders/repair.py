"""Upload checks and structure repair for trainees' notebooks. Pure: no Flask app, no database.

We never trust an upload: ``read_upload`` turns bytes into a valid nbformat 4.5 notebook or says precisely
why it cannot, ``check_assignment`` catches a notebook handed in for the wrong assignment, and ``repair``
rebuilds the notebook on the release's structure so that graded and test cells always come from the
assignment and edited nbgrader metadata earns nothing.
"""

from __future__ import annotations

import codecs
import copy
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nbformat
from flask_babel import gettext as _
from nbformat.v4.rwbase import rejoin_lines, strip_transient
from nbformat.validator import iter_validate

NOTEBOOK_MAJOR = 4
NOTEBOOK_MINOR = nbformat.v4.nbformat_minor
# Real notebooks nest a few levels (widget state, JSON outputs: a few dozen at most); the JSON parser, the
# schema validator and deepcopy all recurse, so a hostile file nested hundreds deep would crash them.
MAX_NESTING = 100
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# Names from the upload shown back to the trainee are cut short: a hostile file may use a megabyte-long key.
SHOWN_NAME_LENGTH = 40


class UploadRejected(Exception):
    """The upload cannot be graded; ``message`` says why in the trainee's words (translated)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Repaired:
    notebook: nbformat.NotebookNode  # what gets graded
    restored: tuple[str, ...]  # grade_ids of assignment cells put back because missing or altered
    stripped: tuple[str, ...]  # grade_ids claimed by trainee cells that earn nothing (metadata removed)
    missing_answers: tuple[str, ...]  # solution cells the trainee deleted (restored empty from the release)


# --- reading an upload ---------------------------------------------------------------------------------


def read_upload(data: bytes, *, max_bytes: int, max_cells: int) -> nbformat.NotebookNode:
    """The uploaded bytes as a valid nbformat 4.5 notebook; raises UploadRejected saying what is wrong."""
    if not data:
        raise UploadRejected("empty", _("The file is empty. Upload the notebook (.ipynb) you worked on."))
    if len(data) > max_bytes:
        size, limit = human_sizes(len(data), max_bytes)
        raise UploadRejected(
            "too_large", _("The file is %(size)s; the limit is %(limit)s.", size=size, limit=limit)
        )
    document = _parse_json(_decode(data))
    cells = _check_notebook_shape(document, max_cells=max_cells)
    _give_cells_unique_ids(cells)
    # Cell ids are the only difference between 4.0–4.4 and 4.5, and every cell has one now.
    document["nbformat_minor"] = NOTEBOOK_MINOR
    _validate(document)
    notebook = nbformat.from_dict(document)
    rejoin_lines(notebook)
    strip_transient(notebook)
    return notebook


def human_sizes(size: int, limit: int) -> tuple[str, str]:
    """``size`` and ``limit`` in decimal units, with just enough decimals that they read differently."""
    for decimals in (1, 2, 3):
        shown = (_human_size(size, decimals), _human_size(limit, decimals))
        if shown[0] != shown[1]:
            return shown
    return _("%(count)s bytes", count=f"{size:,}"), _("%(count)s bytes", count=f"{limit:,}")


def _human_size(count: int, decimals: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            number = f"{count / scale:.{decimals}f}".rstrip("0").rstrip(".")
            return f"{number} {unit}"
    return _("%(count)s bytes", count=f"{count:,}")


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UploadRejected(
            "not_utf8",
            _(
                "This file is saved as UTF-16 text (byte offset 0 holds a UTF-16 marker); a Jupyter notebook "
                "is always UTF-8. Upload the .ipynb file that Jupyter saved."
            ),
        )
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UploadRejected(
            "not_utf8",
            _(
                "This file is not UTF-8 text: the byte at offset %(offset)s is not valid UTF-8. A Jupyter "
                "notebook is always UTF-8; upload the .ipynb file that Jupyter saved.",
                offset=f"{skipped + exc.start:,}",
            ),
        ) from None


def _parse_json(text: str) -> Any:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UploadRejected(
            "not_json",
            _(
                "This file is not valid JSON (line %(line)s, column %(column)s): %(reason)s. It may not be a "
                "Jupyter notebook: upload the .ipynb file you worked on.",
                line=f"{exc.lineno:,}",
                column=f"{exc.colno:,}",
                reason=exc.msg,
            ),
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        # Python refuses integers of thousands of digits; no notebook has one.
        raise UploadRejected(
            "not_json",
            _("This file holds a number too long to read. It is not a Jupyter notebook."),
        ) from None
    if _nesting(document) > MAX_NESTING:
        raise _too_deep()
    return document


def _too_deep() -> UploadRejected:
    return UploadRejected(
        "not_notebook",
        _(
            "This file nests its data more than %(levels)s levels deep, which a Jupyter notebook never does. "
            "Upload the .ipynb file you worked on.",
            levels=MAX_NESTING,
        ),
    )


def _nesting(document: Any) -> int:
    """How deep lists and objects nest in ``document`` (walked without recursion)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _check_notebook_shape(document: Any, *, max_cells: int) -> list[Any]:
    """The notebook's cells, once it is an object of format 4 with a list of at most ``max_cells`` cells."""
    # The format version is checked before the cells: a format 3 notebook keeps its cells in "worksheets",
    # and "save it again in Jupyter" helps its owner more than "not a notebook".
    if not isinstance(document, dict):
        raise UploadRejected(
            "not_notebook",
            _(
                "This file is JSON but not a Jupyter notebook: a notebook is a JSON object with a list "
                "of cells."
            ),
        )
    version = document.get("nbformat")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UploadRejected(
            "not_notebook",
            _("This file is JSON but not a Jupyter notebook: it has no format version ('nbformat')."),
        )
    if version < NOTEBOOK_MAJOR:
        raise UploadRejected(
            "old_format",
            _(
                "This notebook is in the old format %(version)s. Open it in Jupyter and save it (Jupyter "
                "saves format 4), then upload it again.",
                version=version,
            ),
        )
    if version > NOTEBOOK_MAJOR:
        raise UploadRejected(
            "new_format",
            _(
                "This notebook is in format %(version)s, newer than the format 4 this site reads. Save it "
                "as a format 4 notebook and upload it again.",
                version=version,
            ),
        )
    cells = document.get("cells")
    if not isinstance(cells, list):
        raise UploadRejected(
            "not_notebook",
            _("This file is JSON but not a Jupyter notebook: it has no list of cells."),
        )
    if len(cells) > max_cells:
        raise UploadRejected(
            "too_many_cells",
            _(
                "The notebook has %(count)s cells; the limit is %(limit)s.",
                count=f"{len(cells):,}",
                limit=f"{max_cells:,}",
            ),
        )
    minor = document.get("nbformat_minor")
    if not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
        raise _invalid(_("the notebook"), _("'%(field)s' is missing", field="nbformat_minor"))
    return cells


def _give_cells_unique_ids(cells: list[Any]) -> None:
    """Fresh ids for cells whose id is missing, malformed or already taken (4.0–4.4 cells have none)."""
    taken: set[str] = set()
    for cell in cells:
        if not isinstance(cell, dict):
            continue  # the validator names it
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id) or cell_id in taken:
            cell_id = cell["id"] = _fresh_id(taken)
        taken.add(cell_id)


def _fresh_id(taken: set[str]) -> str:
    while True:
        cell_id = uuid.uuid4().hex[:8]
        if cell_id not in taken:
            return cell_id


def _validate(document: dict[str, Any]) -> None:
    # iter_validate neither normalises nor warns (nbformat.validate/reads may warn about ids or log errors).
    error = next(iter_validate(document, version=NOTEBOOK_MAJOR, version_minor=NOTEBOOK_MINOR), None)
    if error is not None:
        where, problem = _describe(error)
        raise _invalid(where, problem)


def _invalid(where: str, problem: str) -> UploadRejected:
    return UploadRejected(
        "invalid_notebook",
        _(
            "This notebook does not follow the Jupyter notebook format (%(where)s: %(problem)s). Open it in "
            "Jupyter, save it and upload it again.",
            where=where,
            problem=problem,
        ),
    )


def _describe(error: Any) -> tuple[str, str]:
    """Where a schema error is, and what is wrong there, in a few words (never the whole jsonschema dump)."""
    path = list(error.relative_path)
    where, rest, in_cell, in_output = _("the notebook"), path, False, False
    if len(path) >= 2 and path[0] == "cells" and isinstance(path[1], int):
        where, rest, in_cell = _("cell %(number)s", number=path[1] + 1), path[2:], True
        if len(rest) >= 2 and rest[0] == "outputs" and isinstance(rest[1], int):
            where = _("cell %(number)s, output %(output)s", number=path[1] + 1, output=rest[1] + 1)
            rest, in_output = rest[2:], True
    instance, validator = error.instance, error.validator
    if validator == "required" and isinstance(instance, dict):
        missing = next((name for name in error.validator_value if name not in instance), "")
        return where, _("'%(field)s' is missing", field=_field(rest + [missing]))
    if validator == "additionalProperties" and isinstance(instance, dict):
        unexpected = next((name for name in instance if not _allowed(name, error.schema)), "")
        return where, _("'%(field)s' is not allowed here", field=_field(rest + [unexpected]))
    if validator in ("oneOf", "anyOf") and isinstance(instance, dict) and not rest:
        if in_output:
            kind = instance.get("output_type")
            if kind is None:
                return where, _("'%(field)s' is missing", field="output_type")
            return where, _("unknown output type '%(kind)s'", kind=_shown(kind))
        if in_cell:
            kind = instance.get("cell_type")
            if kind is None:
                return where, _("'%(field)s' is missing", field="cell_type")
            return where, _("unknown cell type '%(kind)s'", kind=_shown(kind))
    if not rest:
        return where, _("it has the wrong form")
    if validator == "type":
        return where, _("'%(field)s' has the wrong type", field=_field(rest))
    return where, _("'%(field)s' has an invalid value", field=_field(rest))


def _allowed(name: str, schema: Mapping[str, Any]) -> bool:
    if name in schema.get("properties", {}):
        return True
    return any(re.search(pattern, name) for pattern in schema.get("patternProperties", {}))


def _field(path: list[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + _shown(part)
    return text


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SHOWN_NAME_LENGTH else text[: SHOWN_NAME_LENGTH - 1] + "…"


# --- which assignment ----------------------------------------------------------------------------------


def check_assignment(
    notebook: nbformat.NotebookNode,
    *,
    slug: str,
    graded_ids: frozenset[str],
    others: Mapping[str, frozenset[str]],
) -> None:
    """Raise UploadRejected ("wrong_assignment") when the notebook belongs to another assignment."""
    metadata = notebook.get("metadata")
    lms = metadata.get("lms") if isinstance(metadata, Mapping) else None
    claimed = lms.get("assignment") if isinstance(lms, Mapping) else None
    if claimed is not None and claimed != slug:
        raise UploadRejected(
            "wrong_assignment",
            _(
                "This notebook is for assignment '%(found)s', not '%(expected)s'.",
                found=_shown(claimed),
                expected=slug,
            ),
        )
    if not graded_ids:
        return  # nothing to recognise the assignment by
    present = {grade_id for cell in notebook.get("cells", []) if (grade_id := _grade_id(cell)) is not None}
    matched = len(graded_ids & present)
    if matched == 0:
        raise UploadRejected(
            "wrong_assignment",
            _(
                "This notebook has none of the graded cells of assignment '%(expected)s'. Download the "
                "assignment's notebook again, or check that you chose the right assignment.",
                expected=slug,
            ),
        )
    if 2 * matched >= len(graded_ids):
        return
    # Sorted, so that a tie always names the same assignment.
    best_other, best_count = None, matched
    for other_slug in sorted(others):
        count = len(others[other_slug] & present)
        if count > best_count:
            best_other, best_count = other_slug, count
    if best_other is not None:
        raise UploadRejected(
            "wrong_assignment",
            _(
                "This notebook seems to be for assignment '%(found)s', not '%(expected)s'.",
                found=best_other,
                expected=slug,
            ),
        )


# --- structure repair ----------------------------------------------------------------------------------

START = -1  # anchor of trainee cells that come before any cell of the assignment


def repair(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> Repaired:
    """The submission rebuilt on the release's structure: only the trainee's answers come from the upload."""
    release_cells = list(release.get("cells", []))
    keyed: dict[str, int] = {}  # grade_id → index of its (first) release cell
    plain_sources: dict[str, int] = {}  # source of a release cell without a grade_id → its index
    for index, cell in enumerate(release_cells):
        grade_id = _grade_id(cell)
        if grade_id is not None and grade_id not in keyed:
            keyed[grade_id] = index
        else:
            plain_sources.setdefault(_source(cell), index)

    matched: dict[int, Any] = {}  # release index → the trainee's cell with that grade_id
    extras: defaultdict[int, list[Any]] = defaultdict(list)  # release index → trainee cells to follow it
    stripped: list[str] = []
    anchor = START
    for cell in submitted.get("cells", []):
        grade_id = _grade_id(cell)
        if grade_id is not None and grade_id in keyed and keyed[grade_id] not in matched:
            anchor = keyed[grade_id]
            matched[anchor] = cell
        elif "nbgrader" in _metadata(cell):
            # An id the assignment lacks, a second copy of one, or a claim without an id: it earns nothing.
            if grade_id is not None and grade_id not in stripped:
                stripped.append(grade_id)
            extras[anchor].append(_ordinary_copy(cell))
        elif _source(cell) in plain_sources:
            anchor = plain_sources[_source(cell)]  # the trainee's copy of a release cell: the release's wins
        else:
            extras[anchor].append(_ordinary_copy(cell))

    restored: list[str] = []
    missing_answers: list[str] = []
    from_release: list[Any] = []
    for index, release_cell in enumerate(release_cells):
        grade_id = _grade_id(release_cell)
        cell = copy.deepcopy(release_cell)
        if grade_id is not None and keyed[grade_id] == index:
            trainee_cell = matched.get(index)
            if trainee_cell is None:
                (missing_answers if _is_solution(release_cell) else restored).append(grade_id)
            elif _is_solution(release_cell):
                cell = _answer(release_cell, trainee_cell)
                if _structure_differs(trainee_cell, release_cell):
                    restored.append(grade_id)
            elif _structure_differs(trainee_cell, release_cell) or _source(trainee_cell) != _source(
                release_cell
            ):
                restored.append(grade_id)
        from_release.append(cell)

    # Release cells keep their ids; the trainee's own cells give way on a clash.
    taken: set[str] = set()
    for cell in from_release:
        _claim_id(cell, taken)
    cells = list(extras[START])
    for index, cell in enumerate(from_release):
        cells.append(cell)
        cells.extend(extras[index])
    for followers in extras.values():
        for extra in followers:
            _claim_id(extra, taken)

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.from_dict(cell) for cell in cells],
        metadata=copy.deepcopy(release.get("metadata", {})),
    )
    return Repaired(
        notebook=notebook,
        restored=tuple(restored),
        stripped=tuple(stripped),
        missing_answers=tuple(missing_answers),
    )


def _answer(release_cell: Any, trainee_cell: Any) -> Any:
    """The release's solution cell holding the trainee's answer: type and metadata stay the release's."""
    cell = copy.deepcopy(release_cell)
    cell["source"] = _source(trainee_cell)
    if cell.get("cell_type") == "code":
        # Grading runs the cell again; stored outputs would only carry whatever the trainee put there.
        cell["outputs"] = []
        cell["execution_count"] = None
    elif trainee_cell.get("cell_type") == cell.get("cell_type") and trainee_cell.get("attachments"):
        cell["attachments"] = copy.deepcopy(trainee_cell["attachments"])  # images pasted into an answer
    return cell


def _ordinary_copy(cell: Any) -> Any:
    """A trainee's own cell as it goes into the graded notebook: no nbgrader metadata, no stale outputs."""
    copied = copy.deepcopy(cell)
    copied.get("metadata", {}).pop("nbgrader", None)
    if copied.get("cell_type") == "code":
        copied["outputs"] = []
        copied["execution_count"] = None
    return copied


def _claim_id(cell: Any, taken: set[str]) -> None:
    cell_id = cell.get("id")
    if not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id) or cell_id in taken:
        cell_id = cell["id"] = _fresh_id(taken)
    taken.add(cell_id)


def _structure_differs(trainee_cell: Any, release_cell: Any) -> bool:
    """Whether the trainee changed a cell's type or its nbgrader metadata (points, grade flags, checksum)."""
    return trainee_cell.get("cell_type") != release_cell.get("cell_type") or _nbgrader(
        trainee_cell
    ) != _nbgrader(release_cell)


def _metadata(cell: Any) -> Mapping[str, Any]:
    metadata = cell.get("metadata") if isinstance(cell, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def _nbgrader(cell: Any) -> Mapping[str, Any] | None:
    nbgrader = _metadata(cell).get("nbgrader")
    return nbgrader if isinstance(nbgrader, Mapping) else None


def _grade_id(cell: Any) -> str | None:
    grade_id = (_nbgrader(cell) or {}).get("grade_id")
    return grade_id if isinstance(grade_id, str) and grade_id else None


def _is_solution(cell: Any) -> bool:
    return bool((_nbgrader(cell) or {}).get("solution"))


def _source(cell: Any) -> str:
    source = cell.get("source", "") if isinstance(cell, Mapping) else ""
    if isinstance(source, list):
        return "".join(part for part in source if isinstance(part, str))
    return source if isinstance(source, str) else ""
