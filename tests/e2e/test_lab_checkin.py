"""On a phone: the trainer opens the session screen, a trainee checks in with the code shown, the
roster shows the trainee present and the trainee's offline hours rise."""

import re

import pytest
from sqlalchemy import select

from labs.models import LabOccurrence
from lms.demo import load_demo
from lms.extensions import db
from lms.timeutil import utcnow

pytestmark = pytest.mark.e2e
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def in_progress(app):
    load_demo("lms-demo")
    now = utcnow()
    return next(o for o in db.session.scalars(select(LabOccurrence)) if o.starts_at <= now < o.ends_at)


def _sign_in(new_context, live_server, username):
    context = new_context(locale="zh-CN", viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(live_server + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill("lms-demo")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/dashboard")
    return context, page


def test_trainee_checks_in_with_the_code_on_the_trainers_screen(in_progress, live_server, new_context, shoot):
    _, trainer = _sign_in(new_context, live_server, "trainer1")
    trainer.goto(f"{live_server}/labs/occurrences/{in_progress.id}/checkin/screen")
    code = re.sub(r"\D", "", trainer.locator("#checkin-code").inner_text())
    assert len(code) == 6
    assert trainer.locator("#checkin-qr svg").count() == 1
    shoot(trainer, "1-trainer-screen")

    _, trainee = _sign_in(new_context, live_server, "trainee05")
    offline_before = trainee.locator(".hours-chart figcaption").first.inner_text()
    trainee.goto(f"{live_server}/labs/checkin")
    if "/checkin" not in trainee.url or trainee.locator("#code").count() == 0:
        trainee.goto(f"{live_server}/labs/occurrences/{in_progress.id}/checkin")
    trainee.locator("#code").fill(code)
    trainee.locator("form button[type=submit]").last.click()
    trainee.wait_for_load_state()
    shoot(trainee, "2-trainee-checked-in")

    trainer.goto(f"{live_server}/labs/occurrences/{in_progress.id}/roster")
    row = trainer.locator("tr", has=trainer.locator("th", has_text="trainee05"))
    assert row.locator("select").input_value() == "attended"
    assert re.search(r"\d\d:\d\d", row.inner_text())
    shoot(trainer, "3-roster")

    trainee.goto(live_server + "/dashboard")
    offline_after = trainee.locator(".hours-chart figcaption").first.inner_text()

    def offline_hours(caption: str) -> float:
        match = re.search(r"线下\s*([\d.]+)\s*h", caption)
        assert match, caption
        return float(match.group(1))

    assert offline_hours(offline_before) == 0.0
    # Credited from the check-in (two minutes after the start) to the end of the four-hour lab.
    assert 3.8 <= offline_hours(offline_after) <= 4.0
    shoot(trainee, "4-hours")
