"""Feedback HTML: hidden tests never reach a trainee (sources, tracebacks, other cells' outputs), and the
page is sanitised and standalone."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import flask_babel
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from graders.feedback import (
    CellScore,
    FeedbackSummary,
    feedback_notebook,
    hidden_lines,
    redact,
    render_feedback,
    strip_hidden,
)
from tests.graders.conftest import cell_meta

SECRET = "SECRET-EXPECTED"
HIDDEN_ASSERT = f'assert answer == 41_999, "{SECRET}"'
TEST_ANSWER = f"assert isinstance(answer, int)\n### BEGIN HIDDEN TESTS\n{HIDDEN_ASSERT}\n### END HIDDEN TESTS"
LEAKS = (SECRET, "41_999", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
EX01 = (
    Path(__file__).parents[2]
    / "curriculum/courses/ai-engineering-technician-primary/exercises/ex01-platform-sizing"
    / "ex01-platform-sizing.ipynb"
)


def ipython_traceback(number: int, source: str, line: int, ename: str, evalue: str) -> list[str]:
    """An error's traceback as IPython 8 writes it: coloured, listing the whole cell, arrow on ``line``."""
    listing = ""
    for index, text in enumerate(source.split("\n"), start=1):
        text = text.replace("assert", "\x1b[38;5;28;01massert\x1b[39;00m")  # colours split the line
        prefix = (
            f"\x1b[32m----> \x1b[39m\x1b[32m{index}\x1b[39m"
            if index == line
            else f"\x1b[32m{index:>7}\x1b[39m"
        )
        listing += f"{prefix} {text}\n"
    return [
        "\x1b[31m" + "-" * 75 + "\x1b[39m",
        f"\x1b[31m{ename}\x1b[39m                            Traceback (most recent call last)",
        f"\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[{number}]\x1b[39m"
        f"\x1b[32m, line {line}\x1b[39m\n{listing}",
        f"\x1b[31m{ename}\x1b[39m: {evalue}",
    ]


def error(traceback: list[str], ename: str = "AssertionError", evalue: str = "") -> Any:
    return new_output("error", ename=ename, evalue=evalue, traceback=traceback)


def stream(text: str, name: str = "stdout") -> Any:
    return new_output("stream", name=name, text=text)


def display(data: dict[str, str]) -> Any:
    return new_output("display_data", data=data)


def source_notebook() -> Any:
    """An assignment: a test cell with a hidden block, a visible-only test cell and a written answer."""
    return new_notebook(
        cells=[
            new_markdown_cell("# Answers", metadata=cell_meta("intro", locked=True)),
            new_code_cell(
                "### BEGIN SOLUTION\nanswer = 41_999\n### END SOLUTION",
                metadata=cell_meta("sol-answer", solution=True),
            ),
            new_code_cell(TEST_ANSWER, metadata=cell_meta("test-answer", grade=True, locked=True, points=2)),
            new_code_cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                metadata=cell_meta("sol-double", solution=True),
            ),
            new_code_cell(
                "assert double(2) == 4", metadata=cell_meta("test-double", grade=True, locked=True, points=1)
            ),
            new_code_cell(
                "### BEGIN SOLUTION\nprint('done')\n### END SOLUTION",
                metadata=cell_meta("sol-later", solution=True),
            ),
            new_code_cell(
                "### BEGIN SOLUTION\nshow()\n### END SOLUTION", metadata=cell_meta("sol-show", solution=True)
            ),
            new_markdown_cell(
                "### BEGIN SOLUTION\nA model answer.\n### END SOLUTION",
                metadata=cell_meta("answer", solution=True, grade=True, points=2),
            ),
        ]
    )


def autograded_notebook() -> Any:
    """The assignment as nbgrader leaves a trainee's notebook: answers, test cells run, outputs kept."""
    notebook = source_notebook()
    cells = {cell.metadata.nbgrader.grade_id: cell for cell in notebook.cells}
    for cell in notebook.cells:
        if cell.metadata.nbgrader["grade"]:
            cell.metadata.nbgrader["checksum"] = "0123456789abcdef"
    cells["sol-answer"].source = "answer = 42"
    cells["test-answer"].execution_count = 3
    cells["test-answer"].outputs = [
        error(ipython_traceback(3, TEST_ANSWER, 3, "AssertionError", SECRET), evalue=SECRET)
    ]
    cells["sol-double"].source = "def double(x):\n    return x + 3"
    cells["test-double"].execution_count = 5
    cells["test-double"].outputs = [
        error(ipython_traceback(5, "assert double(2) == 4", 1, "AssertionError", ""))
    ]
    cells["sol-later"].source = "print(In[3])\nprint(_ih)\nimport sys\nprint(sys.last_value)\n%tb"
    cells["sol-later"].outputs = [
        stream(TEST_ANSWER + "\n"),
        stream(repr(["", "answer = 42", TEST_ANSWER]) + "\n"),
        stream(SECRET + "\n"),
        error(ipython_traceback(3, TEST_ANSWER, 3, "AssertionError", SECRET), evalue=SECRET),
        stream("assert answer \x1b[0m== 41_999,\x08 " + f'"{SECRET}"\n'),  # escape codes split the line
    ]
    cells["sol-show"].source = "print('<script>alert(1)</script>')\nshow()"
    cells["sol-show"].outputs = [
        stream("<script>alert(1)</script>\n"),
        display(
            {
                "text/html": '<b>bold</b><img src=x onerror="alert(2)"><script>alert(3)</script>'
                '<a href="javascript:alert(4)">js</a> <a href="https://example.org/doc">doc</a>'
                ' <a href="/admin">admin</a><p style="color:red" onclick="alert(5)">styled</p>',
                "text/plain": "<IPython.core.display.HTML object>",
            }
        ),
        display({"image/png": PNG, "text/plain": "<Figure size 1x1>"}),
        display({"image/png": "this is not base64!", "text/plain": "fallback text"}),
    ]
    cells[
        "answer"
    ].source = "My answer <script>alert(6)</script> <img src=x onerror=alert(7)> ![pixel](https://tracker.example/p.png)"
    return notebook


SCORES = {
    "test-answer": CellScore("test-answer", max_points=2, points=0),
    "test-double": CellScore("test-double", max_points=1, points=0),
    "answer": CellScore(
        "answer", 2, None, comment="Cite the figure.\nSee <b>table 2</b>.", needs_manual=True, kind="manual"
    ),
}


def summary(**changes: Any) -> FeedbackSummary:
    values: dict[str, Any] = {
        "title": "Exercise 1",
        "trainee": "Trainee <A>",
        "submitted_at": "2024-05-01 10:00",
        "score": 0.0,
        "max_score": 5.0,
    }
    return FeedbackSummary(**(values | changes))


def cell(notebook: Any, grade_id: str) -> Any:
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture
def page() -> str:
    return render_feedback(
        autograded_notebook(), source_notebook(), SCORES, summary(final=False), trusted_reader=True
    )


@pytest.fixture
def safe() -> Any:
    return feedback_notebook(autograded_notebook(), source_notebook(), trusted_reader=True)


# --- the pure pieces --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("assert f(1) == 1", "assert f(1) == 1"),
        (
            "assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\n"
            "assert f(0) == 0",
            "assert f(1) == 1\n# hidden tests\nassert f(0) == 0",
        ),
        (
            "def check():\n    assert f(1) == 1\n    ### BEGIN HIDDEN TESTS\n    assert f(2) == 4\n"
            "    ### END HIDDEN TESTS\n    return True\n",
            "def check():\n    assert f(1) == 1\n    # hidden tests\n    return True\n",
        ),
        (
            "a = 1\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS\nc = 3\n"
            "\t### BEGIN HIDDEN TESTS\nd = 4\n### END HIDDEN TESTS",
            "a = 1\n# hidden tests\nc = 3\n\t# hidden tests",
        ),
        ("visible\n### BEGIN HIDDEN TESTS\nnever closed\nstill hidden", "visible\n# hidden tests"),
        ("x = 1  # BEGIN HIDDEN TESTS\nsecret()\n# END HIDDEN TESTS", "# hidden tests"),
        ("keep\n### END HIDDEN TESTS\nkeep too", "keep\nkeep too"),
        (
            "### BEGIN HIDDEN TESTS\none\n### BEGIN HIDDEN TESTS\ntwo\n### END HIDDEN TESTS\nafter",
            "# hidden tests\nafter",
        ),
    ],
    ids=[
        "none",
        "middle",
        "indented",
        "two-blocks",
        "unterminated",
        "marker-anywhere",
        "stray-end",
        "nested",
    ],
)
def test_strip_hidden_replaces_each_block_and_keeps_the_rest(source: str, expected: str) -> None:
    assert strip_hidden(source) == expected


def test_hidden_lines_are_the_stripped_non_trivial_lines_inside_blocks() -> None:
    notebook = new_notebook(
        cells=[
            new_code_cell(
                "assert f(1) == 1\n### BEGIN HIDDEN TESTS\n    assert f(2) == 4  \n\nx=1\n"
                "assert f(1) == 1\n### END HIDDEN TESTS\nafter = 'not hidden'"
            ),
            new_markdown_cell("### BEGIN HIDDEN TESTS\nsecret prose\n### END HIDDEN TESTS"),
        ]
    )
    # "x=1" is too short to redact safely; "assert f(1) == 1" is shown in the release anyway
    assert hidden_lines(notebook) == frozenset({"assert f(2) == 4", "secret prose"})


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("nothing here", frozenset({"assert x"}), "nothing here"),
        ("assert x == 1", frozenset(), "assert x == 1"),
        ("assert x == 1", frozenset({"assert x", "assert x == 1"}), "[hidden]"),
        (
            "a: assert x == 1; b: assert x",
            frozenset({"assert x", "assert x == 1"}),
            "a: [hidden]; b: [hidden]",
        ),
        ("abcdefgh", frozenset({"bcdef", "abcd"}), "[hidden]gh"),
        ("abab ab", frozenset({"abab"}), "[hidden] ab"),
        ("xx secret yy secret", frozenset({"secret"}), "xx [hidden] yy [hidden]"),
    ],
    ids=["absent", "no-secrets", "longest-first", "each-occurrence", "overlap-merges", "partial", "repeats"],
)
def test_redact(text: str, secrets: frozenset[str], expected: str) -> None:
    assert redact(text, secrets) == expected


@pytest.mark.content
def test_ex01_hidden_tests_are_all_removed_by_strip_hidden() -> None:
    notebook = nbformat.read(EX01, as_version=4)
    secrets = hidden_lines(notebook)
    assert len(secrets) >= 10
    for each in notebook.cells:
        stripped = strip_hidden(each.source)
        assert not [line for line in secrets if line in stripped], each.metadata["nbgrader"]["grade_id"]
        assert "HIDDEN TESTS" not in stripped


# --- the notebook a trainee may see -----------------------------------------------------------------------


def test_feedback_notebook_holds_no_hidden_test(safe: Any) -> None:
    text = json.dumps(safe)
    for leak in LEAKS:
        assert leak not in text


def test_a_failing_hidden_test_says_only_hidden_test_failed(safe: Any) -> None:
    test_answer = cell(safe, "test-answer")
    assert test_answer.source == "assert isinstance(answer, int)\n# hidden tests"
    assert [dict(output) for output in test_answer.outputs] == [
        {
            "output_type": "error",
            "ename": "HiddenTestFailed",
            "evalue": "Hidden test failed.",
            "traceback": ["Hidden test failed."],
        }
    ]


def test_a_failing_visible_test_keeps_its_traceback_without_colour_codes(safe: Any) -> None:
    (output,) = cell(safe, "test-double").outputs
    assert output.ename == "AssertionError"
    assert "----> 1 assert double(2) == 4" in "\n".join(output.traceback)
    assert not any("\x1b" in line for line in output.traceback)


def test_test_cells_come_from_the_assignment_not_the_submission() -> None:
    autograded = autograded_notebook()
    cell(autograded, "test-answer").source = "# <smuggled> text\nassert True"
    cell(autograded, "test-double").source = "assert True  # smuggled"
    safe = feedback_notebook(autograded, source_notebook(), trusted_reader=True)
    assert cell(safe, "test-answer").source == "assert isinstance(answer, int)\n# hidden tests"
    assert cell(safe, "test-double").source == "assert double(2) == 4"


def test_checksums_are_dropped_and_the_input_is_not_changed(safe: Any) -> None:
    autograded = autograded_notebook()
    before = copy.deepcopy(autograded)
    result = feedback_notebook(autograded, source_notebook(), trusted_reader=True)
    assert autograded == before
    assert all("checksum" not in c.metadata.get("nbgrader", {}) for c in result.cells)
    assert cell(result, "test-answer").metadata.nbgrader["points"] == 2


def test_later_cells_printing_the_input_history_are_redacted(safe: Any) -> None:
    outputs = cell(safe, "sol-later").outputs
    assert len(outputs) == 5
    shown = [output.get("text") or "\n".join(output.get("traceback", [])) for output in outputs]
    for text in shown:
        assert "[hidden]" in text
        assert all(leak not in text for leak in LEAKS)
    assert shown[0].startswith("assert isinstance(answer, int)\n")  # the visible line stays readable


@pytest.mark.parametrize(
    ("outputs", "shown"),
    [
        (
            [error(ipython_traceback(3, TEST_ANSWER, 3, "AssertionError", SECRET), evalue=SECRET)],
            "HiddenTestFailed",
        ),
        # IPython lists the whole cell, hidden block included, even when a visible line failed
        ([error(ipython_traceback(3, TEST_ANSWER, 1, "AssertionError", ""))], "HiddenTestFailed"),
        ([error(["AssertionError: 41 != 42"], evalue="41 != 42")], "HiddenTestFailed"),  # no frame: no proof
        (
            [error(["Cell In[3], line 1\n----> 1 assert isinstance(answer, int)\n", "AssertionError: "])],
            "AssertionError",
        ),
        (
            [error(["Cell In[3], line 1\n----> 1 assert check(answer)\n", "AssertionError: "])],
            "HiddenTestFailed",
        ),
        ([error(["Cell In[3], line 2\n----> 2 # hidden tests\n", "AssertionError: "])], "HiddenTestFailed"),
        ([stream("called with 41999\n")], None),  # the trainee's code printing a hidden test's arguments
    ],
    ids=[
        "hidden-line",
        "visible-line-listed",
        "no-frame",
        "visible-frame",
        "other-text",
        "marker-line",
        "stream",
    ],
)
def test_outputs_of_a_test_cell_with_hidden_tests(outputs: list[Any], shown: str | None) -> None:
    autograded = autograded_notebook()
    cell(autograded, "test-answer").outputs = outputs
    result = cell(feedback_notebook(autograded, source_notebook(), trusted_reader=True), "test-answer")
    assert [output.get("ename") for output in result.outputs] == ([shown] if shown else [])


def test_a_hidden_failures_message_is_redacted_in_other_cells() -> None:
    autograded = autograded_notebook()
    message = "expected 41999 for the second case"
    cell(autograded, "test-answer").outputs = [error(["AssertionError: " + message], evalue=message)]
    cell(autograded, "sol-later").outputs = [stream(f"last error: {message}\n")]
    result = feedback_notebook(autograded, source_notebook(), trusted_reader=True)
    assert cell(result, "sol-later").outputs[0].text == "last error: [hidden]\n"


def test_html_whose_visible_text_spells_a_hidden_line_is_dropped() -> None:
    autograded = autograded_notebook()
    split = '<span>assert answer == 41_</span><span>999, "SECRET-</span>EXPECTED"'
    cell(autograded, "sol-show").outputs = [display({"text/html": split, "text/plain": "table"})]
    (output,) = cell(
        feedback_notebook(autograded, source_notebook(), trusted_reader=True), "sol-show"
    ).outputs
    assert dict(output.data) == {"text/plain": "table"}


# --- the page ---------------------------------------------------------------------------------------------


def test_page_holds_no_hidden_test(page: str) -> None:
    for leak in LEAKS:
        assert leak not in page
    assert page.count("Hidden test failed.") == 1


def test_page_is_a_standalone_document(page: str) -> None:
    assert page.startswith("<!doctype html>")
    assert '<html lang="en">' in page
    assert page.count("<main>") == 1 and page.split("<main>")[0].count("<h1>") == 1
    assert page.count("<article") == len(source_notebook().cells)
    assert "<script" not in page.lower()
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page, re.IGNORECASE), "an event handler attribute"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"']*(?:tracker|\.png)""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "max-width" in page and "overflow-x: auto" in page


def test_page_shows_the_visible_failure(page: str) -> None:
    assert "----&gt; 1 assert double(2) == 4" in page
    assert "AssertionError" in page


def test_trainee_text_is_escaped(page: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Trainee &lt;A&gt;" in page
    assert "&lt;img src=x onerror=alert(7)&gt;" in page  # raw HTML in Markdown stays text
    assert "tracker.example" not in page and 'alt="pixel"' in page


def test_html_outputs_are_sanitised(page: str) -> None:
    assert "<b>bold</b>" in page
    assert '<a href="https://example.org/doc" rel="noopener noreferrer nofollow">doc</a>' in page
    assert "javascript:" not in page and 'href="/admin"' not in page
    assert "alert(2)" not in page and "alert(3)" not in page and "alert(5)" not in page
    assert "style=" not in page and ">styled</p>" in page


def test_images_are_inline_and_invalid_ones_fall_back_to_text(page: str) -> None:
    assert page.count('src="data:image/png;base64,') == 1
    assert f'src="data:image/png;base64,{PNG}"' in page
    assert "this is not base64" not in page and "fallback text" in page


@pytest.mark.parametrize(
    ("mime", "payload", "rendered"),
    [
        ("image/png", PNG, True),
        ("image/png", PNG[:40] + "\n" + PNG[40:], True),  # notebooks wrap base64
        ("image/png", "not base64 at all!", False),
        ("image/png", base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)).decode(), False),
        ("image/jpeg", PNG, False),  # the payload is not what it claims to be
        ("image/jpeg", base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(100)).decode(), True),
        ("image/svg+xml", "<svg onload='alert(1)'/>", False),
        ("image/png", base64.b64encode(b"\x89PNG\r\n\x1a\n tEXt " + HIDDEN_ASSERT.encode()).decode(), False),
    ],
    ids=["png", "wrapped", "not-base64", "too-large", "wrong-type", "jpeg", "svg", "text-chunk"],
)
def test_image_outputs(mime: str, payload: str, rendered: bool) -> None:
    autograded = autograded_notebook()
    cell(autograded, "sol-show").outputs = [display({mime: payload, "text/plain": "an image"})]
    html = render_feedback(autograded, source_notebook(), {}, summary(), trusted_reader=True)
    assert ('<img class="output image-output" src="data:' in html) is rendered
    assert ("an image" in html) is not rendered


def test_scores_and_comments_are_shown_with_words_not_only_colour(page: str) -> None:
    assert 'class="score score-none" role="note" aria-label="0 of 2 points: tests failed"' in page
    assert "<strong>0 / 1</strong>" in page
    assert 'class="score score-pending" role="note"' in page and "awaiting grading" in page
    assert "Cite the figure.\nSee &lt;b&gt;table 2&lt;/b&gt;." in page


@pytest.mark.parametrize(
    ("points", "maximum", "kind", "text", "word"),
    [
        (2, 2, "tests", "2 / 2", "all tests passed"),
        (0, 2, "tests", "0 / 2", "tests failed"),
        (1, 3, "tests", "1 / 3", "some tests failed"),
        (1.5, 3, "manual", "1.5 / 3", "partial credit"),
        (3, 3, "auto", "3 / 3", "full marks"),
        (0, 3, "manual", "0 / 3", "no points"),
        (2.333333, 3, "manual", "2.33 / 3", "partial credit"),
    ],
)
def test_score_badges(points: float, maximum: float, kind: str, text: str, word: str) -> None:
    scores = {"test-double": CellScore("test-double", maximum, points, kind=kind)}
    html = render_feedback(autograded_notebook(), source_notebook(), scores, summary(), trusted_reader=True)
    assert f"<strong>{text}</strong>\n<span>{word}</span>" in html


@pytest.mark.parametrize("final", [True, False])
def test_provisional_banner_until_a_trainer_has_finished(final: bool) -> None:
    html = render_feedback(
        autograded_notebook(), source_notebook(), SCORES, summary(final=final), trusted_reader=True
    )
    assert ("Provisional: a trainer has not finished grading" in html) is not final


@pytest.mark.parametrize(
    ("changes", "present", "absent"),
    [
        (
            {"score": 12.5, "max_score": 15.0},
            ["12.5 / 15"],
            ["Late penalty", "Extra credit", "restored from"],
        ),
        ({"score": None}, ['<dd class="total">awaiting grading</dd>'], []),
        ({"late_penalty": 1.0, "extra_credit": 0.5}, ["Late penalty", "−1", "Extra credit", "+0.5"], []),
        (
            {"restored": ("test-double", "sol-answer")},
            [
                "2 cells were restored from the assignment",
                "<code>test-double</code>",
                "<code>sol-answer</code>",
            ],
            [],
        ),
        ({"restored": ("test-double",)}, ["1 cell was restored from the assignment"], []),
    ],
    ids=["total", "ungraded", "penalty-credit", "restored", "one-restored"],
)
def test_header(changes: dict[str, Any], present: list[str], absent: list[str]) -> None:
    html = render_feedback(
        autograded_notebook(), source_notebook(), SCORES, summary(**changes), trusted_reader=True
    )
    header = html.split("<main>")[0]
    assert "<h1>Exercise 1</h1>" in header and "2024-05-01 10:00" in header
    for text in present:
        assert text in header
    for text in absent:
        assert text not in header


def test_output_is_capped_per_cell() -> None:
    autograded = autograded_notebook()
    cell(autograded, "sol-later").outputs = [stream("x" * 150_000 + "\n"), stream("after the cap\n")]
    cell(autograded, "sol-show").outputs = [stream("y" * 60_000), stream("z" * 60_000)]
    html = render_feedback(autograded, source_notebook(), {}, summary(), trusted_reader=True)
    assert html.count("… output truncated") == 2
    assert "after the cap" not in html
    assert html.count("x") < 110_000 and html.count("z") < 45_000
    assert len(html) < 250_000


def test_progress_bars_show_their_last_state() -> None:
    autograded = autograded_notebook()
    cell(autograded, "sol-later").outputs = [stream(" 10%|#\r 50%|#####\r100%|##########\ndone\n")]
    html = render_feedback(autograded, source_notebook(), {}, summary(), trusted_reader=True)
    assert "100%|##########\ndone" in html and "50%" not in html


def test_page_follows_the_request_locale(app: Any) -> None:
    pages = {}
    for tag in ("en-US", "zh-CN"):
        with app.test_request_context(headers={"Accept-Language": tag}):
            flask_babel.refresh()  # the test's app context outlives each request; so would its cached locale
            pages[tag] = render_feedback(
                autograded_notebook(), source_notebook(), SCORES, summary(), trusted_reader=True
            )
    assert '<html lang="en">' in pages["en-US"]
    assert '<html lang="zh-Hans-CN">' in pages["zh-CN"]
    for leak in LEAKS:
        assert leak not in pages["zh-CN"]


def test_page_renders_with_only_an_app_context(app: Any) -> None:
    """The CLI renders feedback outside any request, in the instance's default language."""
    app.config["BABEL_DEFAULT_LOCALE"] = "zh_CN"
    flask_babel.refresh()
    html = render_feedback(autograded_notebook(), source_notebook(), SCORES, summary(), trusted_reader=True)
    assert '<html lang="zh-Hans-CN">' in html
    assert f"<dt>{flask_babel.gettext('Score')}</dt>" in html  # the template's strings go through Babel


def test_a_trainee_sees_no_output_of_code_that_ran_after_hidden_tests() -> None:
    # Trainee code could have recorded the hidden tests with a hook and print them in any encoding.
    for_trainee = feedback_notebook(autograded_notebook(), source_notebook())
    for_trainer = feedback_notebook(autograded_notebook(), source_notebook(), trusted_reader=True)
    later = cell(for_trainee, "sol-later").outputs
    assert len(later) == 1 and "Output not shown" in later[0]["text"]
    assert len(cell(for_trainer, "sol-later").outputs) > 1
