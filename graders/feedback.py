"""Feedback a trainee may read: the autograded notebook with its hidden tests removed, as one HTML page.

nbgrader's own feedback shows hidden tests (jupyter/nbgrader#917). Here they never reach the page: test
cells are shown as the assignment has them minus their hidden blocks, a failing hidden test says only
"Hidden test failed.", and every other output is scrubbed of hidden lines (a trainee cell that runs after
the tests can print the kernel's input history). The page stands alone: inline CSS, no scripts, nothing
loaded from elsewhere.

Pure apart from flask_babel, which returns the English text outside an app; nbgrader is not imported.
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import jinja2
import nh3
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from nbformat import NotebookNode
from nbformat.v4 import new_output

from lms.markdown import highlight_css, render_markdown

# nbgrader's ClearHiddenTests treats any line containing the delimiter as a marker, so we do too: a looser
# match here could only hide more, a stricter one would show what the release notebook hid.
HIDDEN_BEGIN = re.compile(r"BEGIN HIDDEN TESTS")
HIDDEN_END = re.compile(r"END HIDDEN TESTS")
_SOLUTION_BEGIN = re.compile(r"BEGIN SOLUTION")
_SOLUTION_END = re.compile(r"END SOLUTION")

HIDDEN_PLACEHOLDER = "# hidden tests"
REDACTED = "[hidden]"
HIDDEN_FAILURE_ENAME = "HiddenTestFailed"
#: shorter hidden lines (``)``, ``x=1``) are too common to redact everywhere without mangling outputs
MIN_SECRET_LENGTH = 4
IMAGE_LIMIT = 2 * 1024 * 1024
OUTPUT_TEXT_LIMIT = 100 * 1024

_IMAGE_SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Browsers draw these as nothing, so left in they would split a hidden line past redact() unseen.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TAG = re.compile(r"<[^>]*>")
# IPython >= 8 heads each frame of a traceback with "Cell In[5], line 3" and marks the line with "---->".
_CELL_FRAME = re.compile(r"\s*Cell\s+In\s*\[\s*\d*\s*\]\s*,\s*line\s+(\d+)")
_FRAME_ARROW = re.compile(r"^-+>\s*(\d+)(?: (.*))?$", re.MULTILINE)
# nh3 writes every attribute value double-quoted with '"' escaped, so these cannot overrun an attribute.
_IMG_TAG = re.compile(r"<img\b(?:\s+[^\s\"'>/=]+(?:=\"[^\"]*\")?)*\s*/?>")
_SRC_ATTRIBUTE = re.compile(r"\ssrc=\"[^\"]*\"")

_OUTPUT_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
    "var",
}
_OUTPUT_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}

_STATUS_WORDS = {
    ("tests", "full"): _l("all tests passed"),
    ("tests", "partial"): _l("some tests failed"),
    ("tests", "none"): _l("tests failed"),
    ("answer", "full"): _l("full marks"),
    ("answer", "partial"): _l("partial credit"),
    ("answer", "none"): _l("no points"),
}
_STATUS_ICONS = {"full": "✓", "partial": "◐", "none": "✗", "pending": "…"}


@dataclass(frozen=True)
class CellScore:
    grade_id: str
    max_points: float
    points: float | None  # None: not graded yet (manual cell awaiting a trainer)
    comment: str = ""  # trainer's comment (plain text; may contain newlines)
    needs_manual: bool = False
    kind: str = (
        "tests"  # "tests" (autograder tests), "manual" (manually graded answer), "auto" (autograded answer)
    )


@dataclass(frozen=True)
class FeedbackSummary:
    title: str  # assignment title
    trainee: str  # display name, or a pseudonym in anonymous mode
    submitted_at: str  # already formatted for display
    score: float | None
    max_score: float
    late_penalty: float = 0.0
    extra_credit: float = 0.0
    restored: tuple[str, ...] = ()  # grade ids restored from the assignment (the trainee is told)
    final: bool = True  # False: manual grading still pending (show "provisional")


# --- hidden blocks ----------------------------------------------------------------------------------------

_Role = Literal["visible", "begin", "end", "hidden"]


def _lines(source: str) -> list[str]:
    # nbgrader splits on "\n" alone when it clears hidden tests; any other split could shift a block
    return source.split("\n")


def _roles(lines: Iterable[str]) -> Iterator[tuple[_Role, str]]:
    inside = False
    for line in lines:
        role: _Role
        if HIDDEN_BEGIN.search(line):
            role, inside = "begin", True
        elif HIDDEN_END.search(line):
            role, inside = "end", False
        else:
            role = "hidden" if inside else "visible"
        yield role, line


def _has_hidden(source: str) -> bool:
    return HIDDEN_BEGIN.search(source) is not None


def _cell_source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _nbgrader(cell: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, Mapping) else {}


def _grade_id(cell: Mapping[str, Any]) -> str | None:
    grade_id = _nbgrader(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) and grade_id else None


def _is_test(cell: Mapping[str, Any]) -> bool:
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def hidden_lines(source_notebook: NotebookNode) -> frozenset[str]:
    """Every non-blank stripped line inside hidden-test blocks of the source notebook (min length 4)."""
    hidden: set[str] = set()
    released: set[str] = set()
    for cell in source_notebook.cells:
        text = _cell_source(cell)
        # nbgrader replaces a whole solution cell unless it marks its solution region
        whole_solution = bool(_nbgrader(cell).get("solution")) and (
            cell.get("cell_type") != "code" or not _SOLUTION_BEGIN.search(text)
        )
        in_solution = False
        for role, line in _roles(_lines(text)):
            stripped = line.strip()
            if role == "hidden" and len(stripped) >= MIN_SECRET_LENGTH:
                hidden.add(stripped)
            elif role == "visible":
                if _SOLUTION_BEGIN.search(line):
                    in_solution = True
                elif _SOLUTION_END.search(line):
                    in_solution = False
                elif not in_solution and not whole_solution:
                    released.add(stripped)
    # a line the release notebook shows anyway is no secret, and redacting it would blank visible tests
    return frozenset(hidden - released)


def strip_hidden(source: str) -> str:
    """The cell source with each hidden block replaced by one line '# hidden tests' (indentation kept)."""
    kept: list[str] = []
    inside = False
    for role, line in _roles(_lines(source)):
        if role == "begin" and not inside:
            kept.append(line[: len(line) - len(line.lstrip())] + HIDDEN_PLACEHOLDER)
        elif role == "visible":
            kept.append(line)
        inside = role in ("begin", "hidden")
    return "\n".join(kept)


def redact(text: str, secrets: frozenset[str]) -> str:
    """``text`` with every occurrence of any secret (longest first) replaced by '[hidden]'."""
    # Covering the union of all occurrences is longest-first and more: overlapping secrets become one
    # '[hidden]' instead of leaving the tail of one visible after the other was replaced.
    present = [secret for secret in secrets if secret and secret in text]
    if not present:
        return text
    covered: list[tuple[int, int]] = []
    for secret in present:
        start = text.find(secret)
        while start != -1:
            covered.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    covered.sort()
    pieces: list[str] = []
    position = 0
    run_start, run_end = covered[0]
    for start, end in covered[1:] + [(len(text) + 1, len(text) + 1)]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        pieces.extend((text[position:run_start], REDACTED))
        position = run_end
        run_start, run_end = start, end
    pieces.append(text[position:])
    return "".join(pieces)


def _secret_forms(lines: Iterable[str]) -> frozenset[str]:
    """Each secret as printed raw, inside a Python or JSON string literal, and as HTML text."""
    forms: set[str] = set()
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("\t", "\\t")
        forms.update(
            {
                line,
                escaped,
                escaped.replace("'", "\\'"),
                escaped.replace('"', '\\"'),
                repr(line)[1:-1],
                ascii(line)[1:-1],
                json.dumps(line)[1:-1],
                json.dumps(line, ensure_ascii=False)[1:-1],
                html.escape(line),
                html.escape(line, quote=False),
            }
        )
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


# --- the notebook a trainee may see -----------------------------------------------------------------------


def _plain(text: str) -> str:
    return _CONTROL_CHARACTERS.sub("", _ANSI_ESCAPE.sub("", text))


def _scrub(text: str, secrets: frozenset[str]) -> str:
    return redact(_plain(text), secrets)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return value if isinstance(value, str) else ""


def _image_payload(mime: str, value: Any, secrets: frozenset[str]) -> str | None:
    """The base64 payload without whitespace if it is an image of this type within the limit."""
    payload = "".join(_text(value).split())
    if not payload or len(payload) > (IMAGE_LIMIT + 2) // 3 * 4:
        return None
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) > IMAGE_LIMIT or not data.startswith(_IMAGE_SIGNATURES[mime]):
        return None
    # text chunks of a PNG are readable from the page source too
    if any(secret.encode() in data for secret in secrets):
        return None
    return payload


def _html_reveals(markup: str, secrets: frozenset[str]) -> bool:
    """True if the text a browser shows for ``markup`` contains a secret (e.g. split by empty tags)."""
    shown = _plain(html.unescape(_TAG.sub("", markup)))
    return any(secret in shown for secret in secrets)


def _clean_output(output: Mapping[str, Any], secrets: frozenset[str]) -> NotebookNode | None:
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name")
        text = _scrub(_text(output.get("text")), secrets)
        return new_output("stream", name=name if name in ("stdout", "stderr") else "stdout", text=text)
    if kind == "error":
        traceback = output.get("traceback")
        return new_output(
            "error",
            ename=_scrub(str(output.get("ename", "")), secrets),
            evalue=_scrub(str(output.get("evalue", "")), secrets),
            traceback=[_scrub(str(line), secrets) for line in traceback if isinstance(line, str)]
            if isinstance(traceback, list)
            else [],
        )
    if kind not in ("execute_result", "display_data"):
        return None
    data: dict[str, str] = {}
    bundle = output.get("data")
    for mime, value in (bundle if isinstance(bundle, Mapping) else {}).items():
        if mime in ("text/plain", "text/html"):
            data[mime] = _scrub(_text(value), secrets)
        elif mime in _IMAGE_SIGNATURES and (payload := _image_payload(mime, value, secrets)) is not None:
            data[mime] = payload
    if "text/html" in data and _html_reveals(data["text/html"], secrets):
        del data["text/html"]
    if not data:
        return None
    if kind == "execute_result":
        return new_output(kind, data=data, execution_count=output.get("execution_count"))
    return new_output(kind, data=data)


def _hidden_failure() -> NotebookNode:
    message = _("Hidden test failed.")
    return new_output("error", ename=HIDDEN_FAILURE_ENAME, evalue=message, traceback=[message])


def _fails_on_visible_line(traceback: list[str], executed: str) -> bool:
    """True only if the cell's own frame shows it stopped on a line outside every hidden block."""
    for entry in traceback:
        frame = _CELL_FRAME.match(entry)
        if frame is None:
            continue
        roles = list(_roles(_lines(executed)))
        number = int(frame.group(1))
        if not 1 <= number <= len(roles):
            return False
        role, line = roles[number - 1]
        if role != "visible" or not line.strip():
            return False
        arrow = _FRAME_ARROW.search(entry)
        return arrow is None or (
            int(arrow.group(1)) == number and (arrow.group(2) or "").strip() == line.strip()
        )
    return False


def _test_cell_outputs(
    outputs: Iterable[Mapping[str, Any]], executed: str, secrets: frozenset[str]
) -> tuple[list[Mapping[str, Any]], str | None]:
    """The error outputs a test cell with hidden tests may show, or (``[]``, the error message) if its
    failure would reveal them."""
    # Streams and results go: the trainee's code prints there while hidden tests call it.
    errors = [output for output in outputs if output.get("output_type") == "error"]
    for error in errors:
        traceback = [_plain(str(line)) for line in error.get("traceback") or [] if isinstance(line, str)]
        evalue = _plain(str(error.get("evalue", "")))
        shown = "\n".join([_plain(str(error.get("ename", ""))), evalue, *traceback])
        if any(secret in shown for secret in secrets) or not _fails_on_visible_line(traceback, executed):
            return [], evalue.strip()
    return errors, None


def _outputs_withheld() -> NotebookNode:
    return new_output(
        "stream",
        name="stdout",
        text=_("(Output not shown: this cell ran after hidden tests. Run your notebook to see it.)"),
    )


def feedback_notebook(
    autograded: NotebookNode, source: NotebookNode, *, trusted_reader: bool = False
) -> NotebookNode:
    """A deep copy safe to show a trainee: test cells' sources stripped of hidden blocks (from the SOURCE
    notebook's cell with the same grade_id, so a trainee cannot smuggle text in); a test cell that has hidden
    tests and whose error output mentions any hidden line (or whose ename/evalue/traceback would reveal them)
    gets its outputs replaced by one error output ename 'HiddenTestFailed', evalue 'Hidden test failed.',
    traceback ['Hidden test failed.']; every other output of every cell redacted with redact(); ANSI escape
    codes removed from tracebacks; metadata.nbgrader checksums dropped."""
    notebook = copy.deepcopy(autograded)
    assignment_cells = {grade_id: cell for cell in source.cells if (grade_id := _grade_id(cell))}
    # the autograded copy counts too: its test cells carry the hidden blocks nbgrader ran
    secrets = _secret_forms(hidden_lines(source) | hidden_lines(autograded))
    secrets |= {HIDDEN_BEGIN.pattern, HIDDEN_END.pattern}
    failure_messages: set[str] = set()
    to_scrub: list[NotebookNode] = []
    after_hidden = False
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict):
            meta.pop("checksum", None)
        own = _cell_source(cell)
        original = assignment_cells.get(_grade_id(cell) or "")
        if original is not None and (_is_test(original) or _has_hidden(_cell_source(original))):
            executed = _cell_source(original)
        else:
            executed = own
        cell["source"] = strip_hidden(executed)
        if cell.get("cell_type") != "code":
            continue
        if after_hidden and not trusted_reader and not (original is not None and _is_test(original)):
            # Once hidden tests have run, trainee code may have recorded them (an event or audit hook)
            # and print them in a form no redaction recognises: show none of its output.
            cell["outputs"] = [_outputs_withheld()] if cell.get("outputs") else []
            continue
        if _has_hidden(executed) or _has_hidden(own):
            after_hidden = True
            kept, message = _test_cell_outputs(cell.get("outputs", []), executed, secrets)
            if message is not None:
                cell["outputs"] = [_hidden_failure()]
                failure_messages.add(message)
                continue
            cell["outputs"] = kept
        to_scrub.append(cell)
    # a later cell can print sys.last_value, the hidden assertion's message
    secrets |= _secret_forms(message for message in failure_messages if len(message) >= MIN_SECRET_LENGTH)
    for cell in to_scrub:
        cleaned = (_clean_output(output, secrets) for output in cell.get("outputs", []))
        cell["outputs"] = [output for output in cleaned if output is not None]
    return notebook


# --- the HTML page ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ShownOutput:
    kind: Literal["stream", "text", "html", "image", "error", "hidden"]
    text: str = ""
    markup: Markup = Markup("")
    heading: str = ""  # an error's "ename: evalue"; a stream's name


@dataclass(frozen=True)
class _Badge:
    text: str
    status: Literal["full", "partial", "none", "pending"]
    word: str  # said and shown, so that the colour is not the only cue
    label: str
    icon: str


@dataclass(frozen=True)
class _ShownCell:
    number: int
    cell_type: str
    source: str
    body: Markup
    outputs: tuple[_ShownOutput, ...]
    truncated: bool
    badge: _Badge | None
    comment: str


class _TextBudget:
    """What is left of one cell's allowance of output text, in UTF-8 bytes."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.exhausted = False

    def fits(self, text: str) -> bool:
        return len(text.encode()) <= self.left

    def take(self, text: str) -> str:
        data = text.encode()
        if len(data) <= self.left:
            self.left -= len(data)
            return text
        self.exhausted = True
        kept = data[: self.left].decode("utf-8", "ignore")
        self.left = 0
        return kept


def _settle_carriage_returns(text: str) -> str:
    """Each line as a terminal leaves it: progress bars redraw a line after a bare carriage return."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(next((part for part in reversed(line.split("\r")) if part), "") for line in lines)


def _absolute_links_only(tag: str, attribute: str, value: str) -> str | None:
    # url_schemes lets relative URLs through; in feedback they would point into the LMS itself
    if attribute == "href" and not value.strip().lower().startswith(("http://", "https://")):
        return None
    return value


@cache
def _output_cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_OUTPUT_TAGS,
        clean_content_tags={"script", "style", "template", "noscript", "iframe", "object"},
        attributes=_OUTPUT_ATTRIBUTES,
        attribute_filter=_absolute_links_only,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _shown_output(output: Mapping[str, Any], budget: _TextBudget) -> _ShownOutput | None:
    kind = output.get("output_type")
    if kind == "stream":
        name = str(output.get("name", "stdout"))
        return _ShownOutput(
            "stream", text=budget.take(_settle_carriage_returns(_text(output.get("text")))), heading=name
        )
    if kind == "error":
        if output.get("ename") == HIDDEN_FAILURE_ENAME:
            return _ShownOutput("hidden", text=str(output.get("evalue", "")))
        ename, evalue = str(output.get("ename", "")), str(output.get("evalue", ""))
        heading = budget.take(f"{ename}: {evalue}" if evalue else ename)
        traceback = budget.take("\n".join(str(line) for line in output.get("traceback", [])))
        return _ShownOutput("error", text=traceback, heading=heading)
    data = output.get("data", {})
    for mime in _IMAGE_SIGNATURES:
        if mime in data:
            return _ShownOutput("image", text=f"data:{mime};base64,{data[mime]}")
    plain = data.get("text/plain")
    if "text/html" in data:
        cleaned = _output_cleaner().clean(_text(data["text/html"]))
        if cleaned.strip() and budget.fits(cleaned):
            budget.take(cleaned)
            return _ShownOutput("html", markup=Markup(cleaned))
        if plain is None and cleaned.strip():
            budget.exhausted = True  # markup cannot be cut in half; say it was truncated
            return None
    if plain is not None:
        return _ShownOutput("text", text=budget.take(_settle_carriage_returns(_text(plain))))
    return None


def _shown_outputs(outputs: Iterable[Mapping[str, Any]]) -> tuple[tuple[_ShownOutput, ...], bool]:
    budget = _TextBudget(OUTPUT_TEXT_LIMIT)
    shown: list[_ShownOutput] = []
    for output in outputs:
        item = _shown_output(output, budget)
        if item is not None:
            shown.append(item)
        if budget.exhausted:
            return tuple(shown), True
    return tuple(shown), False


def _number(value: float) -> str:
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _badge(score: CellScore) -> _Badge:
    maximum = _number(score.max_points)
    if score.points is None:
        word = _("awaiting grading")
        label = _("Awaiting grading by a trainer; worth %(max)s points", max=maximum)
        return _Badge(word, "pending", word, label, _STATUS_ICONS["pending"])
    status: Literal["full", "partial", "none"]
    if score.points >= score.max_points:
        status = "full"
    elif score.points <= 0:
        status = "none"
    else:
        status = "partial"
    word = str(_STATUS_WORDS["tests" if score.kind == "tests" else "answer", status])
    points = _number(score.points)
    label = _("%(points)s of %(max)s points: %(status)s", points=points, max=maximum, status=word)
    return _Badge(f"{points} / {maximum}", status, word, label, _STATUS_ICONS[status])


def _no_course_images(path: str) -> str:
    return ""


def _markdown(text: str) -> Markup:
    # render_markdown keeps http(s) image sources; a feedback page loads nothing from elsewhere
    rendered = str(render_markdown(text, _no_course_images))
    return Markup(_IMG_TAG.sub(lambda tag: _SRC_ATTRIBUTE.sub("", tag.group(0)), rendered))


def _shown_cell(number: int, cell: NotebookNode, scores: Mapping[str, CellScore]) -> _ShownCell:
    source = _cell_source(cell)
    cell_type = str(cell.get("cell_type", "raw"))
    outputs: tuple[_ShownOutput, ...] = ()
    truncated = False
    if cell_type == "code":
        outputs, truncated = _shown_outputs(cell.get("outputs", []))
    score = scores.get(_grade_id(cell) or "")
    return _ShownCell(
        number=number,
        cell_type=cell_type,
        source=source,
        body=_markdown(source) if cell_type == "markdown" else Markup(""),
        outputs=outputs,
        truncated=truncated,
        badge=_badge(score) if score is not None else None,
        comment=score.comment.strip() if score is not None else "",
    )


def _document_language() -> str:
    locale = get_locale()
    if locale is None:
        return "en"
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("graders", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # flask_babel looks the locale up on each call, so one environment serves every request and the CLI
    environment.globals.update(_=_, ngettext=ngettext)
    return environment


def render_feedback(
    autograded: NotebookNode,
    source: NotebookNode,
    scores: Mapping[str, CellScore],
    summary: FeedbackSummary,
    *,
    trusted_reader: bool = False,
) -> str:
    """A complete, standalone, sanitised HTML5 document (inline CSS, no scripts, no external URLs).

    ``trusted_reader`` (a trainer, who may read the hidden tests anyway) also sees what trainee code printed
    after hidden tests ran; a trainee does not, since that code may have recorded them.
    """
    notebook = feedback_notebook(autograded, source, trusted_reader=trusted_reader)
    cells = [_shown_cell(number, cell, scores) for number, cell in enumerate(notebook.cells, start=1)]
    template = _environment().get_template("graders/feedback_document.html")
    return template.render(
        lang=_document_language(),
        summary=summary,
        total=None if summary.score is None else f"{_number(summary.score)} / {_number(summary.max_score)}",
        late_penalty=_number(summary.late_penalty) if summary.late_penalty else None,
        extra_credit=_number(summary.extra_credit) if summary.extra_credit else None,
        cells=cells,
        code_css=Markup(highlight_css()),
    )
