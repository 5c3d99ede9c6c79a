"""Browser test: the demo trainee who completed the course finds the certificate and downloads its PDF;
a logged-out phone opens the verification address printed under its QR code; the one-lab-short trainee
sees what is left; the trainer sees the cohort's eligibility and revokes nothing by accident."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from lms.demo import load_demo
from lms.extensions import db
from lms.models import Certificate, User

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo(app):
    return load_demo("lms-demo")


def _sign_in(page, base: str, username: str, *, label_user: str, label_password: str, button: str) -> None:
    page.goto(base + "/login")
    page.get_by_label(label_user).fill(username)
    page.get_by_label(label_password).fill("lms-demo")
    page.get_by_role("button", name=button).click()
    page.wait_for_url("**/dashboard")


def test_completed_trainee_gets_the_certificate_and_a_stranger_verifies_it(
    demo, live_server, new_context, shoot, tmp_path
):
    trainee01 = db.session.scalar(select(User).where(User.username == "trainee01"))
    certificate = db.session.scalar(select(Certificate).where(Certificate.user_id == trainee01.id))
    assert certificate is not None

    # trainee01, in Chinese on a phone: dashboard → completion page → PDF
    page = new_context(locale="zh-CN", viewport=PHONE, accept_downloads=True).new_page()
    _sign_in(page, live_server, "trainee01", label_user="用户名", label_password="密码", button="登录")
    page.get_by_role("link", name="已结业：查看证书").click()
    page.get_by_role("heading", name="您已完成培训").wait_for()
    assert page.get_by_text(certificate.serial).first.is_visible()
    assert page.locator("ul.checklist li.left").count() == 0
    shoot(page, "1-trainee01-certificate-zh")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="下载证书（PDF）").click()
    saved = tmp_path / "certificate.pdf"
    download_info.value.save_as(saved)
    pdf = saved.read_bytes()
    assert pdf.startswith(b"%PDF")

    import pypdf

    text = pypdf.PdfReader(saved).pages[0].extract_text().replace(" ", "")
    assert "培训合格证书" in text and trainee01.real_name in text
    verify_url = re.search(r"https?://\S+/verify/[A-Z0-9-]+", text)
    assert verify_url and verify_url.group(0).endswith(certificate.serial)

    # a stranger's phone, not signed in, opens the address under the QR code
    stranger = new_context(locale="zh-CN", viewport=PHONE).new_page()
    stranger.goto(verify_url.group(0))
    stranger.get_by_role("heading", name="培训合格证书").wait_for()
    verdict = stranger.get_by_role("status")
    assert "有效" in verdict.inner_text()
    masked = trainee01.real_name[0] + "*" * (len(trainee01.real_name) - 2) + trainee01.real_name[-1]
    assert stranger.get_by_text(masked, exact=True).is_visible()
    assert trainee01.real_name not in stranger.content()
    shoot(stranger, "2-verified-logged-out-zh")
    stranger.goto(live_server + "/verify/AIET-P-2026-NOSUCH00")
    assert "找不到" in stranger.content() or "404" in stranger.content()


def test_one_lab_short_trainee_and_the_trainers_eligibility_view(demo, live_server, new_context, shoot):
    page = new_context(locale="en", viewport=PHONE).new_page()
    _sign_in(
        page, live_server, "trainee02", label_user="Username", label_password="Password", button="Sign in"
    )
    page.get_by_role("link", name="What is left to complete").click()
    page.get_by_role("heading", name="Checklist").wait_for()
    left = page.locator("ul.checklist li.left")
    assert left.count() == 3
    assert "6 of 7 lab units" in left.filter(has_text="Lab sessions attended").inner_text()
    shoot(page, "3-trainee02-checklist-en")

    trainer = new_context(locale="en", viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(
        trainer, live_server, "trainer1", label_user="Username", label_password="Password", button="Sign in"
    )
    trainer.goto(live_server + "/dashboard")
    trainer.get_by_role("link", name="AIET-P-DEMO").click()
    trainer.get_by_role("link", name="Eligibility and certificates").click()
    trainer.get_by_text("1 of 29 trainees have completed").wait_for()
    row = trainer.get_by_role("row").filter(has_text="trainee02")
    assert "Lab sessions attended" in row.inner_text()
    shoot(trainer, "4-trainer-eligibility-en")


def test_assessor_receives_the_roster_schedules_imports_and_the_trainee_sees_the_outcome(
    demo, live_server, new_context, shoot, tmp_path
):
    # the training base hands its one eligible trainee over
    trainer = new_context(locale="en", viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(
        trainer, live_server, "trainer1", label_user="Username", label_password="Password", button="Sign in"
    )
    trainer.get_by_role("link", name="AIET-P-DEMO").click()
    trainer.get_by_role("link", name="Eligibility and certificates").click()
    handover = trainer.get_by_role("region", name="Hand over to an assessment site")
    assert handover.get_by_label(re.compile("trainee01")).is_checked()
    handover.get_by_role("button", name="Hand over").click()
    trainer.get_by_text("1 trainee was handed over").wait_for()
    assert trainer.get_by_role("region", name="Hand over to an assessment site").count() == 0

    # the assessor, in Chinese on a desktop, seats the candidate and prints the slip
    assessor = new_context(
        locale="zh-CN", viewport={"width": 1280, "height": 900}, accept_downloads=True
    ).new_page()
    _sign_in(assessor, live_server, "assessor1", label_user="用户名", label_password="密码", button="登录")
    assessor.get_by_role("link", name="考核").click()
    assessor.get_by_role("heading", name="收到的名单").wait_for()
    schedule = assessor.get_by_role("region", name="安排考试")
    schedule.get_by_label("考场", exact=True).select_option(label="K101 · 第一考场 (30)")
    schedule.get_by_label("考试日期").fill("2027-03-06")
    schedule.get_by_label(re.compile("开始时间")).fill("09:00")
    schedule.get_by_role("button", name="安排并分配座位").click()
    assessor.get_by_role("table").filter(has_text="座位").wait_for()
    shoot(assessor, "5-assessor-seating-zh")
    number = assessor.locator("table tbody tr td").nth(1).inner_text().strip()
    name = assessor.locator("table tbody tr td").nth(2).inner_text().strip()
    with assessor.expect_download() as slip:
        assessor.get_by_role("link", name=re.compile("PDF")).first.click()
    slip.value.save_as(tmp_path / "slip.pdf")
    assert (tmp_path / "slip.pdf").read_bytes().startswith(b"%PDF")

    # the national exam's results, exported from Excel on Chinese Windows (GBK)
    results = tmp_path / "results.csv"
    results.write_bytes(
        f"准考证号,姓名,结果,成绩,证书编号\n{number},{name},合格,88,L-2027-000123\n".encode("gbk")
    )
    assessor.get_by_role("link", name=re.compile("返回")).click()
    assessor.get_by_label(re.compile("考试成绩 CSV")).set_input_files(str(results))
    assessor.get_by_role("button", name="导入成绩").click()
    assessor.get_by_text("已记录成绩").wait_for()
    shoot(assessor, "6-results-imported-zh")

    # the trainee sees the outcome
    trainee = new_context(locale="zh-CN", viewport=PHONE).new_page()
    _sign_in(trainee, live_server, "trainee01", label_user="用户名", label_password="密码", button="登录")
    trainee.get_by_role("link", name="已结业：查看证书").click()
    trainee.get_by_role("heading", name="全国统一考试").wait_for()
    outcome = trainee.locator("ul.attempts li").first.inner_text()
    assert number in outcome and "合格" in outcome and "L-2027-000123" in outcome
    shoot(trainee, "7-trainee-outcome-zh")
