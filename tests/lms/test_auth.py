from lms.extensions import db
from lms.models import AuditLog, LoginFailure
from tests.conftest import PASSWORD


def test_login_with_right_password_reaches_dashboard(client, auth, people):
    response = auth.login("trainee1")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard")
    page = client.get("/dashboard", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "My courses" in page


def test_wrong_password_and_unknown_user_get_same_message_and_401(client, auth, people):
    wrong = auth.login("trainee1", "not-the-password")
    unknown = auth.login("nobody-here", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password" in wrong.get_data(
        as_text=True
    ) or "用户名或密码错误" in wrong.get_data(as_text=True)
    assert db.session.query(LoginFailure).count() == 2


def test_login_without_csrf_token_is_refused(client, people):
    response = client.post("/login", data={"username": "trainee1", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/dashboard").status_code == 302  # still signed out


def test_account_is_throttled_after_repeated_failures(client, auth, app, people):
    for _ in range(app.config["LOGIN_FAILURES_PER_ACCOUNT"]):
        assert auth.login("trainee1", "wrong").status_code == 401
    # Even the right password is refused while the account is throttled.
    response = auth.login("trainee1")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(app.config["LOGIN_FAILURE_WINDOW"])


def test_address_is_throttled_across_accounts(client, auth, app, people):
    app.config["LOGIN_FAILURES_PER_ADDRESS"] = 3
    for name in ("a-user", "b-user", "c-user"):
        assert auth.login(name, "wrong").status_code == 401
    assert auth.login("trainer1").status_code == 429


def test_deactivated_user_cannot_sign_in(client, auth, people):
    people["trainee"].active = False
    db.session.commit()
    assert auth.login("trainee1").status_code == 401


def test_open_redirect_after_login_is_ignored(client, auth, people):
    csrf = auth.csrf()
    response = client.post(
        "/login",
        data={
            "username": "trainee1",
            "password": PASSWORD,
            "csrf_token": csrf,
            "next": "https://evil.example/",
        },
    )
    assert response.headers["Location"].endswith("/dashboard")


def test_logout_needs_post_and_ends_session(client, auth, people):
    auth.login("trainee1")
    assert client.get("/logout").status_code == 405
    assert auth.logout().status_code == 302
    assert client.get("/dashboard").status_code == 302


def test_sign_in_is_audited(client, auth, people):
    auth.login("trainee1")
    assert db.session.query(AuditLog).filter_by(action="user.signed_in").count() == 1


def test_passwords_are_stored_as_scrypt_hashes(people):
    assert people["trainee"].password_hash.startswith("scrypt:")
    assert PASSWORD not in people["trainee"].password_hash
