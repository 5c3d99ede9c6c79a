import pytest

from lms.demo import load_demo

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo(app):
    return load_demo("lms-demo")


@pytest.mark.parametrize(
    "viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}], ids=["phone", "desktop"]
)
def test_trainee_signs_in_in_chinese_switches_to_english_and_signs_out(
    demo, live_server, new_context, shoot, viewport
):
    context = new_context(locale="zh-CN", viewport=viewport)
    page = context.new_page()
    page.goto(live_server + "/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.get_by_role("heading", name="登录").wait_for()
    shoot(page, "1-login-zh")

    page.get_by_label("用户名").fill("trainee07")
    page.get_by_label("密码").fill("lms-demo")
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/dashboard")
    assert page.get_by_role("heading", name="我的课程").is_visible()
    assert page.get_by_text("人工智能工程技术人员（初级）").first.is_visible()
    assert page.get_by_role("heading", name="您好，赵磊").is_visible()  # trainee07
    shoot(page, "2-dashboard-zh")

    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="My courses").is_visible()
    assert page.get_by_text("AI Engineering Technician (Primary Level)").first.is_visible()
    shoot(page, "3-dashboard-en")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.get_by_text("You have signed out.").is_visible()
    shoot(page, "4-signed-out-en")
    page.goto(live_server + "/dashboard")
    page.wait_for_url("**/login?next=**")
