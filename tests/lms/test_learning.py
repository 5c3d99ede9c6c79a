"""Online theory delivery: course and unit pages, Markdown rendering, reading-time heartbeats capped by
real time, crediting at the configured share exactly once, quizzes, and who may see what.

The course is a tiny one written into tmp_path and imported with the curriculum importer (the test may use
the curriculum plugin; the core code under test does not)."""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from sqlalchemy import func, select, update

from curriculum.importer import import_course
from curriculum.loader import load_course
from lms.extensions import db
from lms.markdown import course_image_path, render_markdown
from lms.models import (
    Cohort,
    CourseUnit,
    HoursEntry,
    HoursSource,
    ProgressStatus,
    QuizAttempt,
    Role,
    UnitProgress,
)
from lms.services import cohorts as cohort_service
from lms.services import learning
from lms.timeutil import utcnow
from tests.conftest import csrf_from

# ---------------------------------------------------------------------------------------------------------
# A tiny course: one lesson (40 min) and one quiz (20 min) online, one lab (60 min), one exercise.
# It uses the code of the ``dummy_course`` fixture, so importing it moves ``dummy_cohort`` onto it.
# ---------------------------------------------------------------------------------------------------------

COURSE_YAML = """\
schema_version: 1
slug: tiny-learning
code: AIET-P
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
hours: {total: 2, online: 1, offline: 1}
competencies:
  - id: python-data
    title: {zh_CN: "Python 数据处理", en: "Python data handling"}
modules:
  - modules/m01-basics.yaml
"""

MODULE = """\
id: m01-basics
title: {zh_CN: "基础", en: "Basics"}
summary: {zh_CN: "基础知识", en: "The basics"}
work_functions: [wf-build]
units:
  - id: m01-l01-intro
    kind: lesson
    title: {zh_CN: "引言", en: "Introduction"}
    minutes: 40
    content: {zh_CN: lessons/m01-l01-intro.zh_CN.md, en: lessons/m01-l01-intro.en.md}
    competencies: [python-data]
  - id: m01-quiz
    kind: quiz
    title: {zh_CN: "测验", en: "Quiz"}
    minutes: 20
    questions: quizzes/m01-quiz.yaml
    pass_mark: 60
    competencies: [python-data]
  - id: m01-lab
    kind: lab
    title: {zh_CN: "实验", en: "Lab"}
    minutes: 60
    plan: {zh_CN: labs/m01-lab.zh_CN.md, en: labs/m01-lab.en.md}
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
    explanation: {zh_CN: "零能被二整除。", en: "Zero is divisible by two."}
  - id: q4
    type: fill
    prompt: {zh_CN: "二加二等于几？", en: "What is two plus two?"}
    answer: {zh_CN: ["四"], en: ["Four", "4"]}
    explanation: {zh_CN: "二加二等于四。", en: "Two plus two is four."}
"""

LESSON_EN = """\
# Introduction

Doubling a number $x$ gives $2x$, and $$\\sum_{i=1}^{n} x_i$$ sums them.

$$
\\frac{a}{b} = c
$$

```python
def double(x):
    return 2 * x
```

| Input | Output |
|:------|-------:|
| 2     | 4      |

![Doubling diagram](images/doubling.svg)

<script>alert("lesson")</script>

[a bad link](javascript:alert(1)) and [a good one](https://example.org/)
"""
LESSON_ZH = "# 引言\n\n把数 $x$ 加倍得到 $2x$。\n\n![加倍示意图](images/doubling.svg)\n"
LAB = {
    "zh_CN": "# 实验\n\n两人一组完成练习。\n",
    "en": "# Lab\n\nWork through exercise `ex01-double` in pairs.\n",
}
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n'


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None):
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


def _notebook() -> str:
    cells = [
        new_markdown_cell(
            "# Doubling", id="intro", metadata=_nbgrader("intro", grade=False, solution=False, locked=True)
        ),
        new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            id="solution",
            metadata=_nbgrader("solution", grade=False, solution=True, locked=False),
        ),
        new_code_cell(
            "assert double(2) == 4",
            id="tests",
            metadata=_nbgrader("tests", grade=True, solution=False, locked=True, points=3),
        ),
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(new_notebook(cells=cells, metadata={"kernelspec": kernel}))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def course_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny-learning"
    _write(root / "course.yaml", COURSE_YAML)
    _write(root / "modules/m01-basics.yaml", MODULE)
    _write(root / "quizzes/m01-quiz.yaml", QUIZ)
    _write(root / "lessons/m01-l01-intro.en.md", LESSON_EN)
    _write(root / "lessons/m01-l01-intro.zh_CN.md", LESSON_ZH)
    for locale, text in LAB.items():
        _write(root / f"labs/m01-lab.{locale}.md", text)
    _write(root / "images/doubling.svg", SVG)
    _write(root / "exercises/ex01-double/ex01-double.ipynb", _notebook())
    return root


@pytest.fixture
def cohort(app, people, dummy_cohort, course_dir) -> Cohort:
    """``dummy_cohort`` following the tiny course; its trainee reads English."""
    import_course(load_course(course_dir))
    people["trainee"].locale = "en"
    db.session.commit()
    assert dummy_cohort.course_version_id is not None
    return dummy_cohort


def unit_of(cohort: Cohort, key: str) -> CourseUnit:
    unit = learning.get_unit(cohort, key)
    assert unit is not None
    return unit


def unit_path(cohort: Cohort, key: str, action: str = "") -> str:
    return f"/learn/{cohort.id}/units/{key}" + (f"/{action}" if action else "")


def progress_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(UnitProgress)) or 0


def attempt_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(QuizAttempt)) or 0


def ledger_rows() -> list[HoursEntry]:
    return list(db.session.scalars(select(HoursEntry).where(HoursEntry.source == HoursSource.ONLINE_UNIT)))


def heartbeat(client, cohort: Cohort, key: str, payload: Any, token: str):
    return client.post(unit_path(cohort, key, "heartbeat"), json=payload, headers={"X-CSRFToken": token})


def open_page(client, path: str) -> tuple[str, str]:
    """GET a unit page: (html, CSRF token for heartbeats)."""
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    match = re.search(r'data-csrf-token="([^"]+)"', html)
    return html, match.group(1) if match else csrf_from(html)


# ---------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------


def asset(path: str) -> str:
    return f"/courses/7/assets/{path}"


def test_markdown_renders_math_as_mathml_and_highlights_code():
    html = str(render_markdown(LESSON_EN, asset))
    assert '<math display="inline">' in html and '<math display="block">' in html
    assert '<span class="math display"><math display="block"><mrow><munderover>' in html  # $$..$$ in a line
    assert '<div class="math block">\n<math display="block"><mrow><mfrac>' in html
    assert '<pre class="highlight"><code class="language-python"><span class="k">def</span>' in html
    assert "style=" not in html.replace('style="text-align:left"', "").replace('style="text-align:right"', "")


def test_markdown_rewrites_course_images_and_keeps_table_alignment():
    html = str(render_markdown(LESSON_EN, asset))
    assert '<img src="/courses/7/assets/images/doubling.svg" alt="Doubling diagram">' in html
    assert '<th style="text-align:left">Input</th>' in html


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize(
    "source",
    [
        '<script>alert("x")</script>',
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "![x](javascript:alert(1))",
        '<a href="https://e.org" onclick="x()">a</a>',
        "$\\text{<script>alert(1)</script>}$",
        "$$\\href{javascript:alert(1)}{x}$$",
        "```html\n<script>alert(1)</script>\n```",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
    ],
)
def test_markdown_never_lets_html_or_script_through(source):
    found = elements(str(render_markdown(source, asset)))
    assert all(tag not in ("script", "iframe", "object", "style") for tag, _attrs in found)
    for tag, attrs in found:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("href", "src"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "data:")), (tag, attrs)


def test_markdown_shows_tex_that_does_not_convert_as_code():
    assert '<code class="math-error">\\frac{</code>' in str(render_markdown("A $\\frac{$ b", asset))


@pytest.mark.parametrize(
    "src, expected",
    [
        ("images/a.svg", "images/a.svg"),
        ("./images/a.svg", "images/a.svg"),
        ("images/a%20b.png", "images/a b.png"),
        ("images/../secret.svg", None),
        ("../images/a.svg", None),
        ("/images/a.svg", None),
        ("https://example.org/images/a.svg", None),
        ("lessons/a.svg", None),
        ("images", None),
    ],
)
def test_only_course_images_are_rewritten(src, expected):
    assert course_image_path(src) == expected


def test_highlight_css_is_the_committed_static_file():
    from lms.markdown import highlight_css

    static = (Path(__file__).resolve().parents[2] / "lms" / "static" / "highlight.css").read_text()
    assert highlight_css() in static


# ---------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------


def test_course_page_shows_modules_units_progress_and_hours(client, auth, people, cohort):
    auth.login("trainee1")
    html = client.get(f"/learn/{cohort.id}").get_data(as_text=True)
    for title in ("Basics", "Introduction", "Quiz", "Lab", "Doubling"):
        assert title in html
    assert f'href="/learn/{cohort.id}/units/m01-l01-intro"' in html
    assert '<progress id="progress-m01-basics" max="2" value="0">' in html
    assert "My hours" in html and "0.0 of 1 hours" in html
    assert "Preview" not in html


def test_trainee_dashboard_links_to_the_course(client, auth, cohort):
    auth.login("trainee1")
    assert f'href="/learn/{cohort.id}"' in client.get("/dashboard").get_data(as_text=True)


def test_cohort_without_course_files_says_so(client, auth, people, create_cohort):
    other = create_cohort(code="NO-FILES")
    cohort_service.enroll(people["trainee"], other)
    db.session.commit()
    auth.login("trainee1")
    response = client.get(f"/learn/{other.id}")
    assert response.status_code == 200
    assert "The course files are not imported yet" in response.get_data(as_text=True)
    assert 'href="/learn/' not in client.get("/dashboard").get_data(as_text=True)


def test_lesson_page_renders_math_code_and_images_and_strips_script(client, auth, cohort):
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    assert "<math" in html and '<span class="k">def</span>' in html
    assert "<script>alert" not in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ['<script src="/static/learn.js" defer>']
    assert "Mark as read" in html
    image = re.search(r'<img src="([^"]+)" alt="Doubling diagram">', html)
    assert image and image.group(1) == f"/courses/{cohort.course_version_id}/assets/images/doubling.svg"

    response = client.get(image.group(1))
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.data == SVG.encode()
    assert (
        response.headers["Content-Security-Policy"]
        == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert client.get(image.group(1), headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    assert client.get(f"/courses/{cohort.course_version_id}/assets/images/missing.svg").status_code == 404


def test_lesson_page_shows_the_users_locale(client, auth, people, cohort):
    people["trainee"].locale = "zh_CN"
    db.session.commit()
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    assert "把数" in html and "Doubling a number" not in html


def test_lab_page_shows_the_plan_read_only(client, auth, cohort):
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "m01-lab"))
    assert "Work through exercise <code>ex01-double</code> in pairs." in html
    assert "Mark as read" not in html and "learn.js" not in html
    assert progress_rows() == 0  # offline units keep no online progress


def test_exercise_page_shows_points_and_due_date(client, auth, people, cohort):
    people["trainee"].timezone = "Europe/Berlin"
    db.session.commit()
    due = learning.exercise_due_at(cohort, unit_of(cohort, "ex01-double"))
    assert due is not None and due.date() == cohort.starts_on + timedelta(days=14)
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "ex01-double"))
    assert "Points" in html and "<dd>3</dd>" in html
    assert f'<time datetime="{due.isoformat()}">' in html
    berlin = due.astimezone(ZoneInfo("Europe/Berlin"))  # 23:59 in Shanghai, shown in the user's zone
    assert f"{berlin.hour % 12 or 12}:59:00" in html and "11:59:00" not in html


def test_unknown_unit_is_404(client, auth, cohort):
    auth.login("trainee1")
    assert client.get(unit_path(cohort, "no-such-unit")).status_code == 404


def test_quiz_page_has_a_fieldset_with_legend_and_labelled_inputs(client, auth, cohort):
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "m01-quiz"))
    assert html.count("<fieldset") == 4 and html.count("<legend>") == 4
    assert (
        'type="radio" id="q-q1-b" name="q-q1" value="b"' in html
        and '<label for="q-q1-b">Four</label>' in html
    )
    assert 'type="checkbox" id="q-q2-c" name="q-q2" value="c"' in html
    assert 'id="q-q3-true" name="q-q3" value="true"' in html
    assert '<label for="q-q4">' in html and 'type="text" id="q-q4" name="q-q4"' in html
    assert 'name="attempt" value="1"' in html


# ---------------------------------------------------------------------------------------------------------
# Heartbeats
# ---------------------------------------------------------------------------------------------------------


def test_one_heartbeat_cannot_claim_more_than_the_time_since_opening(client, auth, cohort):
    auth.login("trainee1")
    started = time.monotonic()
    _html, token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    response = heartbeat(client, cohort, "m01-l01-intro", {"seconds": 36_000}, token)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    data = response.get_json()
    assert 0 <= data["accepted"] <= elapsed
    assert data["active_seconds"] == data["accepted"]
    assert data["credited"] is False


def test_a_flood_of_heartbeats_adds_no_more_than_the_real_time(client, auth, cohort):
    auth.login("trainee1")
    started = time.monotonic()
    _html, token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    accepted = [
        heartbeat(client, cohort, "m01-l01-intro", {"seconds": 30}, token).get_json()["accepted"]
        for _ in range(25)
    ]
    elapsed = time.monotonic() - started
    assert sum(accepted) <= math.ceil(elapsed)
    progress = learning.get_progress(cohort.enrollments[0].user, cohort, "m01-l01-intro")
    assert progress is not None and progress.active_seconds == sum(accepted)


@pytest.mark.parametrize(
    "payload",
    [
        {"seconds": -5},
        {"seconds": "15"},
        {"seconds": True},
        {"seconds": None},
        {},
        [15],
        "15",
        {"seconds": [1]},
    ],
)
def test_garbage_heartbeats_are_refused_with_json(client, auth, cohort, payload):
    auth.login("trainee1")
    _html, token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    response = heartbeat(client, cohort, "m01-l01-intro", payload, token)
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"] == "invalid"


def test_non_json_and_nan_heartbeats_are_refused(client, auth, cohort):
    auth.login("trainee1")
    _html, token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    for body, content_type in (
        ("seconds=15", "application/x-www-form-urlencoded"),
        ('{"seconds": NaN}', "application/json"),
        ("{not json", "application/json"),
    ):
        response = client.post(
            unit_path(cohort, "m01-l01-intro", "heartbeat"),
            data=body,
            content_type=content_type,
            headers={"X-CSRFToken": token},
        )
        assert response.status_code == 400 and response.is_json


def test_heartbeat_needs_the_csrf_header(client, auth, cohort):
    auth.login("trainee1")
    open_page(client, unit_path(cohort, "m01-l01-intro"))
    response = client.post(unit_path(cohort, "m01-l01-intro", "heartbeat"), json={"seconds": 5})
    assert response.status_code == 400
    assert (
        progress_rows() == 1
        and learning.get_progress(cohort.enrollments[0].user, cohort, "m01-l01-intro").active_seconds == 0
    )


def test_heartbeats_on_offline_units_are_refused(client, auth, cohort):
    auth.login("trainee1")
    _html, token = open_page(client, unit_path(cohort, "m01-lab"))
    assert heartbeat(client, cohort, "m01-lab", {"seconds": 5}, token).status_code == 400


def test_heartbeat_accepts_the_smallest_of_claim_elapsed_and_cap(app, people, cohort):
    unit = unit_of(cohort, "m01-l01-intro")
    start = utcnow()
    progress = learning.open_unit(people["trainee"], cohort, unit, now=start)
    assert learning.record_heartbeat(progress, 36_000, start + timedelta(seconds=5)) == 5
    assert learning.record_heartbeat(progress, 36_000, start + timedelta(seconds=5, milliseconds=900)) == 0
    assert learning.record_heartbeat(progress, 10, start + timedelta(seconds=60)) == 10
    assert (
        learning.record_heartbeat(progress, 36_000, start + timedelta(hours=2)) == 30
    )  # HEARTBEAT_MAX_SECONDS
    assert learning.record_heartbeat(progress, -40, start + timedelta(hours=3)) == 0
    assert learning.record_heartbeat(progress, 20, start + timedelta(hours=1)) == 0  # a clock going back
    assert progress.active_seconds == 45


def test_a_stale_heartbeat_loses_to_one_that_already_used_the_interval(app, people, cohort):
    """Two requests that read the same previous heartbeat: only the first one's UPDATE counts."""
    unit = unit_of(cohort, "m01-l01-intro")
    start = utcnow()
    progress = learning.open_unit(people["trainee"], cohort, unit, now=start)
    db.session.flush()
    later = start + timedelta(seconds=20)
    # a concurrent request records the heartbeat behind this session's back (a Core UPDATE)
    db.session.execute(
        update(UnitProgress.__table__)
        .where(UnitProgress.__table__.c.id == progress.id)
        .values(active_seconds=20, last_heartbeat_at=later)
    )
    assert progress.last_heartbeat_at is None  # still believes there was no heartbeat yet
    assert learning.record_heartbeat(progress, 20, later) == 0
    assert progress.active_seconds == 20


# ---------------------------------------------------------------------------------------------------------
# Completion and crediting
# ---------------------------------------------------------------------------------------------------------


def _beat(progress: UnitProgress, seconds: int, start, offset: int) -> int:
    return learning.record_heartbeat(progress, seconds, start + timedelta(seconds=offset))


def test_a_lesson_is_credited_only_at_the_share_and_exactly_once(app, people, cohort):
    trainee, unit = people["trainee"], unit_of(cohort, "m01-l01-intro")
    start = utcnow() - timedelta(hours=1)
    assert learning.required_active_seconds(unit) == 40 * 60 // 2
    progress, credited = learning.complete_unit(trainee, cohort, unit, now=start)
    assert progress.status == ProgressStatus.COMPLETED and not credited
    offset = 0
    while progress.active_seconds < 1199:
        offset += 30
        _p, _accepted, credited = learning.heartbeat(
            trainee,
            cohort,
            unit,
            min(30, 1199 - progress.active_seconds),
            now=start + timedelta(seconds=offset),
        )
        assert not credited
    assert progress.active_seconds == 1199 and ledger_rows() == []
    _p, accepted, credited = learning.heartbeat(
        trainee, cohort, unit, 1, now=start + timedelta(seconds=offset + 5)
    )
    assert accepted == 1 and credited and progress.credited
    for extra in range(3):
        _p, _a, again = learning.heartbeat(
            trainee, cohort, unit, 30, now=start + timedelta(seconds=offset + 60 * (extra + 1))
        )
        assert not again
    _p, again = learning.complete_unit(trainee, cohort, unit, now=start + timedelta(hours=1))
    assert not again
    db.session.commit()
    (entry,) = ledger_rows()
    assert (entry.user_id, entry.cohort_id, entry.minutes, entry.source_ref) == (
        trainee.id,
        cohort.id,
        40,
        f"{cohort.id}:m01-l01-intro",
    )
    assert entry.evidence["active_seconds"] == 1200
    assert entry.evidence["unit_kind"] == "lesson"
    assert entry.evidence["course_version"] == "2026.1"
    assert entry.evidence["completed_at"] == start.isoformat()


def test_reading_without_marking_as_read_credits_nothing(app, people, cohort):
    trainee, unit = people["trainee"], unit_of(cohort, "m01-l01-intro")
    start = utcnow() - timedelta(hours=2)
    learning.open_unit(trainee, cohort, unit, now=start)
    for n in range(1, 100):
        learning.heartbeat(trainee, cohort, unit, 30, now=start + timedelta(seconds=30 * n))
    assert learning.get_progress(trainee, cohort, unit.key).active_seconds == 99 * 30
    assert ledger_rows() == []


def test_the_credit_share_is_configurable(app, people, cohort):
    app.config["ONLINE_CREDIT_SHARE"] = 0.25
    trainee, unit = people["trainee"], unit_of(cohort, "m01-l01-intro")
    start = utcnow() - timedelta(hours=1)
    learning.open_unit(trainee, cohort, unit, now=start)
    for n in range(1, 21):
        learning.heartbeat(trainee, cohort, unit, 30, now=start + timedelta(seconds=30 * n))
    _progress, credited = learning.complete_unit(trainee, cohort, unit, now=start + timedelta(seconds=700))
    assert credited  # 600 s = 25 % of 40 minutes
    db.session.commit()
    assert [e.minutes for e in ledger_rows()] == [40]


def test_mark_as_read_through_the_page(client, auth, cohort):
    auth.login("trainee1")
    path = unit_path(cohort, "m01-l01-intro")
    response = auth.post(path + "/complete", form_page=path, follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Marked as read" in html and "You marked this lesson as read" in html
    assert "Mark as read</button>" not in html
    assert ledger_rows() == []  # no reading time yet
    progress = learning.get_progress(cohort.enrollments[0].user, cohort, "m01-l01-intro")
    assert progress.status == ProgressStatus.COMPLETED and not progress.credited


def test_a_quiz_cannot_be_marked_as_read(client, auth, cohort):
    auth.login("trainee1")
    path = unit_path(cohort, "m01-quiz")
    response = auth.post(path + "/complete", form_page=path, follow_redirects=True)
    assert "A quiz is completed by passing it." in response.get_data(as_text=True)
    assert (
        learning.get_progress(cohort.enrollments[0].user, cohort, "m01-quiz").status == ProgressStatus.STARTED
    )


# ---------------------------------------------------------------------------------------------------------
# Quizzes
# ---------------------------------------------------------------------------------------------------------

BODY = {
    "pass_mark": 60,
    "questions": [
        {"id": "s", "type": "single", "answer": "b", "options": [{"id": "a"}, {"id": "b"}]},
        {
            "id": "m",
            "type": "multiple",
            "answer": ["a", "c"],
            "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        },
        {"id": "t", "type": "true_false", "answer": True, "options": []},
        {"id": "f", "type": "true_false", "answer": False, "options": []},
        {"id": "n", "type": "fill", "answer": {"zh_CN": ["四"], "en": ["Four", "4 GPUs"]}, "options": []},
    ],
}


@pytest.mark.parametrize(
    "question, answer, correct",
    [
        ("s", "b", True),
        ("s", "a", False),
        ("s", "z", False),
        ("s", ["b", "a"], False),
        ("s", None, False),
        ("m", ["a", "c"], True),
        ("m", ["c", "a"], True),
        ("m", ["a"], False),
        ("m", ["a", "b", "c"], False),
        ("m", ["a", "c", "zz"], True),  # unknown option ids are ignored, not counted
        ("m", [], False),
        ("m", "a", False),
        ("t", "true", True),
        ("t", "false", False),
        ("t", "yes", False),
        ("f", "false", True),
        ("f", "true", False),
        ("f", "", False),
        ("n", "four", True),
        ("n", "  FOUR ", True),
        ("n", "四", True),  # the other locale's answer
        ("n", "4  gpus", True),
        ("n", "４ ＧＰＵｓ", True),  # full-width input
        ("n", "five", False),
        ("n", "", False),
    ],
)
def test_grade_quiz_marks_every_question_type(question, answer, correct):
    grade = learning.grade_quiz(BODY, {question: answer}, "en")
    assert grade.results[question] is correct
    assert grade.max_score == 5
    assert grade.score == (1 if correct else 0)


def test_grade_quiz_totals_and_percent():
    grade = learning.grade_quiz(
        BODY, {"s": "b", "m": ["a", "c"], "t": "true", "f": "true", "n": "x"}, "zh_CN"
    )
    assert (grade.score, grade.max_score, grade.percent) == (3, 5, 60)
    assert learning.quiz_passed(BODY, grade)
    assert not learning.quiz_passed(BODY, learning.grade_quiz(BODY, {"s": "b"}, "en"))


ALL_RIGHT = {"q-q1": "b", "q-q2": ["a", "c"], "q-q3": "true", "q-q4": " four "}
HALF_RIGHT = {"q-q1": "b", "q-q2": ["a"], "q-q3": "true", "q-q4": "five"}
ONE_RIGHT = {"q-q1": "a", "q-q2": ["b"], "q-q3": "false", "q-q4": "4"}


def _submit(client, cohort: Cohort, answers: dict[str, Any], html: str | None = None):
    path = unit_path(cohort, "m01-quiz")
    if html is None:
        html, _token = open_page(client, path)
    attempt = re.search(r'name="attempt" value="(\d+)"', html)
    assert attempt
    data = {"csrf_token": csrf_from(html), "attempt": attempt.group(1), **answers}
    return client.post(path + "/quiz", data=data)


def test_quiz_result_shows_each_question_with_its_explanation(client, auth, cohort):
    auth.login("trainee1")
    response = _submit(client, cohort, HALF_RIGHT)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not passed yet" in html
    assert "2 of 4 (50%)" in html
    assert re.search(r'id="result-q1">.*?✓ Correct', html, re.S)
    assert re.search(r'id="result-q2">.*?✗ Incorrect.*?Two and five have exactly two divisors\.', html, re.S)
    assert "Your answer: five" in html
    progress = learning.get_progress(cohort.enrollments[0].user, cohort, "m01-quiz")
    assert progress.status == ProgressStatus.STARTED and progress.attempts == 1 and progress.best_score == 50


def test_best_score_is_kept_across_attempts(client, auth, cohort):
    auth.login("trainee1")
    assert "Not passed yet" in _submit(client, cohort, HALF_RIGHT).get_data(as_text=True)
    html = _submit(client, cohort, ALL_RIGHT).get_data(as_text=True)
    assert "Passed" in html and "4 of 4 (100%)" in html
    html = _submit(client, cohort, ONE_RIGHT).get_data(as_text=True)
    assert "1 of 4 (25%)" in html
    assert re.search(r"Best score</dt><dd>100%</dd>\s*<dt>Attempts</dt><dd>3</dd>", html)
    progress = learning.get_progress(cohort.enrollments[0].user, cohort, "m01-quiz")
    assert (progress.best_score, progress.attempts, progress.status) == (100, 3, ProgressStatus.COMPLETED)
    scores = [a.score for a in db.session.scalars(select(QuizAttempt).order_by(QuizAttempt.id))]
    assert scores == [2, 4, 1]
    assert ledger_rows() == []  # passed, but not enough active time on the quiz yet


def test_a_passed_quiz_is_credited_once_it_has_the_active_time(app, people, cohort):
    trainee, unit = people["trainee"], unit_of(cohort, "m01-quiz")
    start = utcnow() - timedelta(hours=1)
    learning.open_unit(trainee, cohort, unit, now=start)
    for n in range(1, 21):  # 600 s = half of 20 minutes
        learning.heartbeat(trainee, cohort, unit, 30, now=start + timedelta(seconds=30 * n))
    answers = {"q1": "b", "q2": ["a", "c"], "q3": "true", "q4": "4"}
    _attempt, credited = learning.submit_quiz(
        trainee, cohort, unit, answers, attempt_number=1, locale="en", now=start + timedelta(seconds=700)
    )
    assert credited
    db.session.commit()
    (entry,) = ledger_rows()
    assert (
        entry.minutes == 20 and entry.evidence["unit_kind"] == "quiz" and entry.evidence["best_score"] == 100
    )


def test_a_double_submitted_quiz_form_stores_one_attempt(client, auth, cohort):
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "m01-quiz"))
    first = _submit(client, cohort, ALL_RIGHT, html)
    second = _submit(client, cohort, HALF_RIGHT, html)
    assert first.status_code == 200 and second.status_code == 200
    assert "already submitted" in second.get_data(as_text=True)
    assert "4 of 4 (100%)" in second.get_data(as_text=True)  # the stored attempt's result
    assert attempt_rows() == 1
    assert learning.get_progress(cohort.enrollments[0].user, cohort, "m01-quiz").attempts == 1
    # a freshly opened form is a new attempt
    assert _submit(client, cohort, HALF_RIGHT).status_code == 200
    assert attempt_rows() == 2


def test_a_forged_attempt_number_stores_nothing(client, auth, cohort):
    auth.login("trainee1")
    html, _token = open_page(client, unit_path(cohort, "m01-quiz"))
    response = _submit(
        client, cohort, ALL_RIGHT, html.replace('name="attempt" value="1"', 'name="attempt" value="7"')
    )
    assert response.status_code in (200, 302)
    assert attempt_rows() == 0


# ---------------------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------------------


def test_another_cohorts_trainee_sees_nothing(client, auth, create_user, create_cohort, cohort):
    outsider = create_user(Role.TRAINEE, username="outsider")
    other = create_cohort(code="OTHER")
    cohort_service.enroll(outsider, other)
    db.session.commit()
    auth.login("outsider")
    token = csrf_from(client.get("/dashboard").get_data(as_text=True))
    assert client.get(f"/learn/{cohort.id}").status_code == 404
    assert client.get(unit_path(cohort, "m01-l01-intro")).status_code == 404
    assert heartbeat(client, cohort, "m01-l01-intro", {"seconds": 5}, token).status_code == 404
    response = client.post(unit_path(cohort, "m01-quiz", "quiz"), data={"csrf_token": token, "attempt": "1"})
    assert response.status_code == 404
    assert client.get(f"/courses/{cohort.course_version_id}/assets/images/doubling.svg").status_code == 404
    assert progress_rows() == 0 and attempt_rows() == 0


def test_a_withdrawn_trainee_sees_nothing(client, auth, people, cohort):
    cohort_service.withdraw(cohort.enrollments[0], actor=None)
    db.session.commit()
    auth.login("trainee1")
    assert client.get(f"/learn/{cohort.id}").status_code == 404


def test_an_assessor_is_refused(client, auth, cohort):
    auth.login("assessor1")
    assert client.get(f"/learn/{cohort.id}").status_code == 403
    assert client.get(f"/courses/{cohort.course_version_id}/assets/images/doubling.svg").status_code == 403


@pytest.mark.parametrize("who", ["trainer1", "admin1"])
def test_trainers_and_admins_preview_without_recording_anything(client, auth, cohort, who):
    auth.login(who)
    html = client.get(f"/learn/{cohort.id}").get_data(as_text=True)
    assert "Preview" in html and "My hours" not in html
    html, token = open_page(client, unit_path(cohort, "m01-l01-intro"))
    assert "Preview" in html and "learn.js" not in html and "Mark as read" not in html
    response = heartbeat(client, cohort, "m01-l01-intro", {"seconds": 15}, token)
    assert response.get_json() == {"accepted": 0, "active_seconds": 0, "credited": False, "preview": True}
    auth.post(unit_path(cohort, "m01-l01-intro", "complete"), form_page=unit_path(cohort, "m01-l01-intro"))
    response = _submit(client, cohort, ALL_RIGHT)
    assert response.status_code == 200
    assert "4 of 4 (100%)" in response.get_data(as_text=True)
    assert "this attempt was not stored" in response.get_data(as_text=True)
    assert client.get(f"/courses/{cohort.course_version_id}/assets/images/doubling.svg").status_code == 200
    assert progress_rows() == 0 and attempt_rows() == 0 and ledger_rows() == []


def test_admins_preview_only_cohorts_of_their_training_base(
    client, auth, create_user, create_institution, dummy_training_base, cohort
):
    create_user(Role.ADMIN, institution=dummy_training_base, username="baseadmin")
    create_user(Role.ADMIN, institution=create_institution(code="TB2"), username="elsewhere")
    db.session.commit()
    image = f"/courses/{cohort.course_version_id}/assets/images/doubling.svg"
    auth.login("baseadmin")
    assert "Preview" in client.get(f"/learn/{cohort.id}").get_data(as_text=True)
    assert client.get(image).status_code == 200
    auth.logout()
    auth.login("elsewhere")
    assert client.get(f"/learn/{cohort.id}").status_code == 404
    assert client.get(image).status_code == 404


def test_a_trainer_of_another_cohort_cannot_preview(client, auth, create_user, cohort):
    create_user(Role.TRAINER, username="trainer9")
    db.session.commit()
    auth.login("trainer9")
    assert client.get(f"/learn/{cohort.id}").status_code == 404
    assert client.get(f"/courses/{cohort.course_version_id}/assets/images/doubling.svg").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, cohort):
    response = client.get(f"/learn/{cohort.id}")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


# ---------------------------------------------------------------------------------------------------------
# The shipped course
# ---------------------------------------------------------------------------------------------------------


def test_every_unit_of_the_shipped_course_renders(client, auth, people, dummy_cohort):
    from curriculum.plugin import DEMO_COURSE

    import_course(load_course(DEMO_COURSE))
    db.session.commit()
    auth.login("trainee1")
    assert client.get(f"/learn/{dummy_cohort.id}").status_code == 200
    units = db.session.scalars(
        select(CourseUnit).where(CourseUnit.version_id == dummy_cohort.course_version_id)
    ).all()
    assert len(units) > 40
    maths = 0
    for unit in units:
        response = client.get(unit_path(dummy_cohort, unit.key))
        assert response.status_code == 200, unit.key
        html = response.get_data(as_text=True)
        assert "math-error" not in html, unit.key
        maths += "<math" in html
        for src in re.findall(r'<img src="([^"]+)"', html):
            assert client.get(src).status_code == 200, (unit.key, src)
    assert maths > 10
