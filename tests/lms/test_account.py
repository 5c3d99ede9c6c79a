from lms.extensions import db
from lms.models import User

EN = {"Accept-Language": "en"}


def test_user_changes_language_and_time_zone(client, auth, people):
    auth.login("trainee1")
    response = auth.post(
        "/account/",
        {"locale": "en", "timezone": "Asia/Urumqi", "email": "me@example.cn", "phone": "+86 139 0000 0000"},
        form_page="/account/",
    )
    assert response.status_code == 302
    user = db.session.get(User, people["trainee"].id)
    assert (user.locale, user.timezone, user.email) == ("en", "Asia/Urumqi", "me@example.cn")
    assert "Times are shown in Asia/Urumqi." in client.get("/dashboard").get_data(as_text=True)


def test_bad_settings_are_refused_with_a_message_and_nothing_changes(client, auth, people):
    auth.login("trainee1")
    response = auth.post(
        "/account/",
        {"locale": "en", "timezone": "Mars/Olympus", "email": "", "phone": ""},
        form_page="/account/",
        headers=EN,
    )
    assert response.status_code == 400
    assert "Unknown time zone" in response.get_data(as_text=True)
    assert db.session.get(User, people["trainee"].id).timezone == "Asia/Shanghai"


def test_email_already_used_by_someone_else_is_refused(client, auth, people):
    people["admin"].email = "admin@example.cn"
    db.session.commit()
    auth.login("trainee1")
    response = auth.post(
        "/account/",
        {"locale": "zh_CN", "timezone": "Asia/Shanghai", "email": "ADMIN@example.cn", "phone": ""},
        form_page="/account/",
        headers=EN,
    )
    assert response.status_code == 400
    assert "already in use" in response.get_data(as_text=True)


def test_password_change_needs_the_current_password(client, auth, people):
    auth.login("trainee1")
    wrong = auth.post(
        "/account/password",
        {"pw-current_password": "nope", "pw-new_password": "another-pass-9"},
        form_page="/account/",
        headers=EN,
    )
    assert wrong.status_code == 400 and "current password is wrong" in wrong.get_data(as_text=True)
    short = auth.post(
        "/account/password",
        {"pw-current_password": "correct-horse-9", "pw-new_password": "short"},
        form_page="/account/",
        headers=EN,
    )
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    ok = auth.post(
        "/account/password",
        {"pw-current_password": "correct-horse-9", "pw-new_password": "another-pass-9"},
        form_page="/account/",
    )
    assert ok.status_code == 302
    auth.logout()
    assert auth.login("trainee1", "another-pass-9").status_code == 302
