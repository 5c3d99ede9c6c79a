"""A trainee downloads an exercise notebook, answers it, uploads it and watches "grading" become a score
(graded by the embedded worker of `lms run`, in the sandbox); a trainer grades the written answer; the
trainee sees the final score and the feedback, which never shows hidden tests."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from graders.models import Assignment
from lms.demo import load_demo
from lms.extensions import db
from lms.timeutil import utcnow

pytestmark = pytest.mark.e2e
DESKTOP = {"width": 1280, "height": 900}
SLUG = "ex01-platform-sizing"


@pytest.fixture
def exercise(app) -> Assignment:
    load_demo("lms-demo")
    assignment = db.session.scalar(select(Assignment).where(Assignment.slug == SLUG))
    # the demo cohort is two weeks into its course, so ex01's planned due date (and, on some days, its
    # cut-off a week later) has passed: move both ahead, so that this journey is about grading, not late
    # penalties or closed submissions (tested in tests/graders)
    assignment.due_at = utcnow() + timedelta(days=7)
    assignment.cutoff_at = assignment.due_at + timedelta(days=7)
    db.session.commit()
    return assignment


def _sign_in(new_context, live_server, username, **options):
    context = new_context(locale="zh-CN", viewport=DESKTOP, accept_downloads=True, **options)
    page = context.new_page()
    page.goto(live_server + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill("lms-demo")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/dashboard")
    return page


def _answered(release: dict, source: dict) -> dict:
    """The release notebook with the source's solutions typed into the answer cells (as a trainee would
    type them: without nbgrader's solution markers)."""
    solutions = {
        cell["metadata"]["nbgrader"]["grade_id"]: "".join(
            line
            for line in (
                "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            ).splitlines(True)
            if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
        )
        for cell in source["cells"]
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    for cell in release["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            cell["source"] = solutions[grade_id]
    return release


def test_trainee_hands_in_trainer_grades_trainee_sees_final_score(
    exercise, live_server, new_context, shoot, tmp_path
) -> None:
    trainee = _sign_in(new_context, live_server, "trainee03")
    trainee.goto(live_server + "/assignments")
    trainee.locator(f"a[href='/assignments/{exercise.id}']").first.click()
    with trainee.expect_download() as download:
        trainee.locator(".graders-download").click()
    release = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert "BEGIN HIDDEN TESTS" not in json.dumps(release)
    answered = tmp_path / f"{SLUG}.ipynb"
    notebook = _answered(release, json.loads(exercise.source_notebook))
    answered.write_text(json.dumps(notebook), encoding="utf-8")
    shoot(trainee, "1-assignment")

    trainee.locator("input[type=file]").set_input_files(str(answered))
    trainee.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    trainee.wait_for_url(re.compile(r".*/submissions/\d+$"))
    shoot(trainee, "2-received")
    # The page polls the server: the status changes from queued/grading to a provisional score by itself.
    score = trainee.locator("[data-score]")
    expect(score).to_contain_text("10 / 13", timeout=180_000)
    expect(score).to_contain_text("暂定")
    submission_url = trainee.url
    shoot(trainee, "3-autograded")

    trainer = _sign_in(new_context, live_server, "trainer1")
    trainer.goto(live_server + "/grading/queue")
    trainer.locator("a[href*='/grading/submissions/']").first.click()
    manual = trainer.locator("fieldset[data-cell]", has_text="answer-choice")
    manual.locator("input[data-points-input]").fill("3")
    manual.locator("textarea[data-comment-input]").fill("理由充分。")
    shoot(trainer, "4-grading")
    trainer.locator("button[name=then][value=stay]").click()
    trainer.wait_for_load_state()

    trainee.goto(submission_url)
    expect(trainee.locator("[data-score]")).to_contain_text("13 / 13")
    expect(trainee.locator("[data-score]")).not_to_contain_text("暂定")
    trainee.locator("[data-feedback] a").click()
    trainee.wait_for_load_state()
    page_text = trainee.content()
    assert "理由充分。" in page_text
    assert "BEGIN HIDDEN TESTS" not in page_text and "### BEGIN SOLUTION" not in page_text
    shoot(trainee, "5-feedback")
