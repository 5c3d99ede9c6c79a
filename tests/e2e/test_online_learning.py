"""A trainee reads a lesson, passes a quiz and sees the online hours credited, in both languages."""

from pathlib import Path

import pytest
from sqlalchemy import select

from curriculum.loader import load_course
from lms.demo import load_demo
from lms.extensions import db
from lms.models import Cohort, HoursEntry, User

pytestmark = pytest.mark.e2e
COURSE = Path(__file__).resolve().parents[2] / "curriculum" / "courses" / "ai-engineering-technician-primary"


@pytest.fixture(scope="module")
def m01_quiz():
    course = load_course(COURSE)
    return next(u for u in course.units() if u.id == "m01-quiz")


@pytest.fixture
def demo(app):
    load_demo("lms-demo")
    return db.session.scalar(select(Cohort).where(Cohort.code == "AIET-P-DEMO"))


def _read_until_credited(page, limit: int = 90) -> None:
    """Keep reading until the page reports the unit credited (the server decides, from heartbeats)."""
    status = page.locator("[data-credit-status]")
    for _ in range(limit):
        if status.inner_text().strip():
            return
        _read_actively(page, 1)
    raise AssertionError(f"not credited after {limit} s of active reading")


def _read_actively(page, seconds: int) -> None:
    """Scroll and move like a reader, so the page's own counter sees a visible, active page."""
    for step in range(seconds * 2):
        page.mouse.move(100 + step % 50, 200 + step % 70)
        page.mouse.wheel(0, 120 if step % 4 else -200)
        page.wait_for_timeout(500)


@pytest.mark.parametrize(
    ("locale", "username", "lang"), [("zh-CN", "trainee03", "zh_CN"), ("en-US", "trainee04", "en")]
)
def test_trainee_reads_a_lesson_passes_a_quiz_and_sees_hours(
    demo, live_server, new_context, shoot, m01_quiz, locale, username, lang
):
    context = new_context(locale=locale, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(live_server + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill("lms-demo")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/dashboard")

    page.goto(f"{live_server}/learn/{demo.id}")
    assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh_CN" else "en")
    shoot(page, "1-course")
    page.goto(f"{live_server}/learn/{demo.id}/units/m01-l01-what-ai-is")
    heading = "人工智能、机器学习与深度学习" if lang == "zh_CN" else "What AI, machine learning"
    assert heading in page.locator("h1").inner_text()
    _read_actively(page, 8)
    page.locator("form[action$='/complete'] button").click()
    page.wait_for_load_state()
    _read_until_credited(page)
    shoot(page, "2-lesson-read")

    page.goto(f"{live_server}/learn/{demo.id}/units/m01-quiz")
    _read_actively(page, 10)
    for question in m01_quiz.questions:
        if question.type == "single":
            page.locator(f"#q-{question.id}-{question.answer}").check()
        elif question.type == "multiple":
            for option in question.answer:
                page.locator(f"#q-{question.id}-{option}").check()
        elif question.type == "true_false":
            page.locator(f"#q-{question.id}-{'true' if question.answer else 'false'}").check()
        else:
            page.locator(f"#q-{question.id}").fill(question.answer[lang][0])
    page.locator("form.quiz button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator(".result.passed").is_visible()
    assert page.locator(".answer.incorrect").count() == 0
    assert page.locator(".answer .explanation").count() == len(m01_quiz.questions)
    _read_until_credited(page)  # the result page keeps counting if the quiz was answered very fast
    shoot(page, "3-quiz-passed")

    # The ledger holds both units with their evidence, and the dashboard shows the online hours.
    user = db.session.scalar(select(User).where(User.username == username))
    entries = db.session.scalars(select(HoursEntry).where(HoursEntry.user_id == user.id)).all()
    assert sorted(e.minutes for e in entries) == [40, 40]
    assert all(e.evidence["active_seconds"] >= 4 for e in entries)
    page.goto(live_server + "/dashboard")
    caption = page.locator(".hours-chart figcaption").first.inner_text()
    assert "1.3 h" in caption and "/ 64" in caption or "of 64" in caption
    shoot(page, "4-dashboard-hours")
