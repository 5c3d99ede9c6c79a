"""The JSON API: bearer-token authentication, JSON errors, and who sees which users and cohorts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from lms.extensions import db
from lms.models import ApiToken, Role
from lms.services import tokens
from lms.timeutil import utcnow


@pytest.fixture
def issue(app):
    """issue(user, lifetime_days=None) -> plain-text token, committed."""

    def issue(user, lifetime_days: int | None = None) -> str:
        _token, plaintext = tokens.issue_token(user, "test", lifetime_days, actor=None)
        db.session.commit()
        return plaintext

    return issue


@pytest.fixture
def api(client, issue):
    """api(user, path) -> response of a GET with the user's bearer token."""

    def get(user, path: str):
        return client.get(path, headers={"Authorization": f"Bearer {issue(user)}"})

    return get


def assert_json_error(response, status: int, error: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    assert body["message"]
    return body


def assert_unauthenticated(response) -> dict:
    body = assert_json_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="lms"'
    return body


# --- authentication -------------------------------------------------------------------------------------


def test_request_without_token_gets_401_json_with_challenge(client):
    body = assert_unauthenticated(client.get("/api/v1/me", headers={"Accept-Language": "en"}))
    assert "Bearer" in body["message"]


def test_signed_in_browser_session_does_not_authenticate_api(client, auth, people):
    auth.login("admin1")
    assert_unauthenticated(client.get("/api/v1/me"))


@pytest.mark.parametrize(
    "header",
    ["Basic YWRtaW4xOnB3", "Bearer", "Bearer    ", "Token lms_abc", "lms_abc"],
)
def test_malformed_authorization_header_gets_401(client, header):
    body = assert_unauthenticated(
        client.get("/api/v1/me", headers={"Authorization": header, "Accept-Language": "en"})
    )
    assert "Authorization: Bearer" in body["message"]


def test_forged_token_gets_401(client, people, issue):
    real = issue(people["admin"])
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    for token in (forged, "lms_" + "x" * 43, "not-even-our-prefix"):
        body = assert_unauthenticated(
            client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"})
        )
        assert "not valid" in body["message"]


def test_bearer_scheme_is_case_insensitive(client, people, issue):
    token = issue(people["trainee"])
    response = client.get("/api/v1/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_expired_token_gets_401(client, people, issue):
    plaintext = issue(people["trainee"], lifetime_days=30)
    headers = {"Authorization": f"Bearer {plaintext}", "Accept-Language": "en"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    token = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == tokens.hash_token(plaintext))
    ).one()
    assert token.expires_at is not None and token.expires_at > utcnow() + timedelta(days=29)
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    body = assert_unauthenticated(client.get("/api/v1/me", headers=headers))
    assert "expired" in body["message"]


def test_revoked_token_gets_401(client, people, issue):
    plaintext = issue(people["trainer"])
    headers = {"Authorization": f"Bearer {plaintext}", "Accept-Language": "en"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    token = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == tokens.hash_token(plaintext))
    ).one()
    tokens.revoke_token(token, actor=people["admin"])
    db.session.commit()

    body = assert_unauthenticated(client.get("/api/v1/me", headers=headers))
    assert "not valid" in body["message"]


def test_token_of_deactivated_user_gets_401(client, people, issue):
    plaintext = issue(people["trainee"])
    people["trainee"].active = False
    db.session.commit()

    body = assert_unauthenticated(
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}", "Accept-Language": "en"})
    )
    assert "deactivated" in body["message"]


def test_tokens_are_stored_hashed(people, issue):
    plaintext = issue(people["admin"])
    token = db.session.scalars(select(ApiToken).where(ApiToken.user_id == people["admin"].id)).one()
    assert token.token_hash == tokens.hash_token(plaintext)
    assert plaintext.startswith(token.prefix) and len(token.prefix) < len(plaintext) // 2
    for row in db.session.execute(text(f"SELECT * FROM {ApiToken.__tablename__}")):
        assert all(plaintext not in str(value) for value in row)


# --- resources ------------------------------------------------------------------------------------------


def test_me_returns_the_caller_with_private_fields(api, people):
    response = api(people["trainer"], "/api/v1/me")
    assert response.status_code == 200
    me = response.get_json()
    assert me["id"] == people["trainer"].id
    assert me["username"] == "trainer1"
    assert me["roles"] == [{"role": "trainer", "institution_id": people["trainer"].grants[0].institution_id}]
    assert {"email", "phone", "locale", "timezone"} <= set(me)


def test_users_is_for_admins_only(api, people):
    for role in ("trainee", "trainer", "assessor"):
        assert_json_error(api(people[role], "/api/v1/users"), 403, "forbidden")
    response = api(people["admin"], "/api/v1/users")
    assert response.status_code == 200
    body = response.get_json()
    assert [u["username"] for u in body["items"]] == ["admin1", "assessor1", "trainee1", "trainer1"]
    assert (body["limit"], body["offset"]) == (100, 0)


def test_users_username_filter_is_exact(api, people):
    cases = {
        "trainee1": ["trainee1"],
        " TRAINEE1 ": ["trainee1"],  # usernames are stored lower-case; the filter normalises alike
        "trainee": [],
        "trainee1%": [],
        "": [],
    }
    for query, expected in cases.items():
        response = api(people["admin"], f"/api/v1/users?username={query}")
        assert [u["username"] for u in response.get_json()["items"]] == expected, query


def test_users_limit_and_offset_page_through(api, people):
    first = api(people["admin"], "/api/v1/users?limit=2").get_json()
    second = api(people["admin"], "/api/v1/users?limit=2&offset=2").get_json()
    assert [u["username"] for u in first["items"] + second["items"]] == [
        "admin1",
        "assessor1",
        "trainee1",
        "trainer1",
    ]


def test_users_odd_paging_values_are_tolerated(api, people):
    cases = {
        "limit=abc&offset=xyz": (100, 0),
        "limit=0&offset=-3": (100, 0),
        "limit=-5": (1, 0),
        "limit=99999999999999999999999": (1000, 0),
        "offset=99999999999999999999999": (100, 2**63 - 1),  # was a 500: SQLite integer overflow
    }
    for query, paging in cases.items():
        response = api(people["admin"], f"/api/v1/users?{query}")
        assert response.status_code == 200, query
        body = response.get_json()
        assert (body["limit"], body["offset"]) == paging, query


def test_institution_admin_sees_only_users_of_their_institution(api, people, create_user, create_institution):
    college = create_institution(code="TB2", name="第二培训基地", name_en="Second training base")
    local_admin = create_user(Role.ADMIN, institution=college, username="localadmin")
    create_user(Role.TRAINER, institution=college, username="collegetrainer")
    db.session.commit()
    usernames = [u["username"] for u in api(local_admin, "/api/v1/users").get_json()["items"]]
    assert usernames == ["collegetrainer", "localadmin"]


@pytest.fixture
def other_cohort(create_cohort, create_user):
    """A second cohort, taught by trainer2 with trainee2 enrolled."""
    from lms.services import cohorts

    trainer = create_user(Role.TRAINER, username="trainer2")
    trainee = create_user(Role.TRAINEE, username="trainee2")
    cohort = create_cohort(code="AIET-P-T2", trainers=[trainer])
    cohorts.enroll(trainee, cohort)
    db.session.commit()
    return cohort


def cohort_codes(response) -> set[str]:
    assert response.status_code == 200
    return {c["code"] for c in response.get_json()["items"]}


def test_cohorts_show_each_user_only_their_own(api, people, dummy_cohort, other_cohort):
    assert cohort_codes(api(people["trainee"], "/api/v1/cohorts")) == {"AIET-P-T1"}
    assert cohort_codes(api(people["trainer"], "/api/v1/cohorts")) == {"AIET-P-T1"}
    assert cohort_codes(api(people["assessor"], "/api/v1/cohorts")) == set()
    assert cohort_codes(api(people["admin"], "/api/v1/cohorts")) == {"AIET-P-T1", "AIET-P-T2"}


def test_cohort_json_describes_the_cohort(api, people, dummy_cohort):
    (cohort,) = api(people["trainee"], "/api/v1/cohorts").get_json()["items"]
    assert cohort["id"] == dummy_cohort.id
    assert cohort["course"]["code"] == "AIET-P"
    assert cohort["training_base"]["code"] == "TB"
    assert cohort["starts_on"] == dummy_cohort.starts_on.isoformat()
    assert cohort["trainers"] == [
        {"id": people["trainer"].id, "username": "trainer1", "real_name": people["trainer"].real_name}
    ]


def test_enrollments_for_the_cohorts_trainer_and_admin(api, people, dummy_cohort):
    path = f"/api/v1/cohorts/{dummy_cohort.id}/enrollments"
    for role in ("trainer", "admin"):
        response = api(people[role], path)
        assert response.status_code == 200
        body = response.get_json()
        assert body["cohort_id"] == dummy_cohort.id
        (enrollment,) = body["items"]
        assert enrollment["user"]["username"] == "trainee1"
        assert "email" not in enrollment["user"]  # other people's contact details stay private
        assert enrollment["status"] == "active"
        assert enrollment["hours"] == {
            "online_minutes": 0,
            "offline_minutes": 0,
            "required_minutes": enrollment["hours"]["required_minutes"],
        }


def test_enrollments_are_hidden_from_another_trainer(api, dummy_cohort, other_cohort):
    (trainer2,) = other_cohort.trainers
    assert_json_error(api(trainer2, f"/api/v1/cohorts/{dummy_cohort.id}/enrollments"), 404, "not_found")
    assert api(trainer2, f"/api/v1/cohorts/{other_cohort.id}/enrollments").status_code == 200


def test_enrollments_are_forbidden_to_trainees(api, people, dummy_cohort):
    assert_json_error(
        api(people["trainee"], f"/api/v1/cohorts/{dummy_cohort.id}/enrollments"), 403, "forbidden"
    )


def test_enrollments_of_a_missing_cohort_get_404(api, people):
    # Ids past 64 bits were a 500 (SQLite integer overflow), found by the schemathesis run.
    for cohort_id in ("0", "999999", str(2**63 - 1), str(2**63), "9" * 30):
        response = api(people["admin"], f"/api/v1/cohorts/{cohort_id}/enrollments")
        assert_json_error(response, 404, "not_found")


def test_unknown_api_path_gets_404_json(client, api, people):
    for path in (
        "/api/v1/nothing-here",
        "/api/v1/cohorts/abc/enrollments",
        "/api/v1/cohorts/-1/enrollments",
        "/api/v2/me",
    ):
        assert_json_error(client.get(path), 404, "not_found")
        assert_json_error(api(people["admin"], path), 404, "not_found")


def test_wrong_method_gets_405_json_with_allow_header(client, api, people, issue):
    response = client.post("/api/v1/me", headers={"Authorization": f"Bearer {issue(people['admin'])}"})
    assert_json_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers.get("Allow", "")


# --- the token command ----------------------------------------------------------------------------------


def test_users_token_command_prints_a_working_token_last(app, client, people, monkeypatch):
    from lms.cli import main

    monkeypatch.setenv("LMS_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("LMS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LMS_INSTANCE_PATH", app.instance_path)

    result = CliRunner().invoke(main, ["users", "token", "trainee1", "--name", "sync"])
    assert result.exit_code == 0, result.output
    plaintext = result.output.strip().splitlines()[-1]
    assert plaintext.startswith(tokens.TOKEN_PREFIX)

    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200
    assert response.get_json()["username"] == "trainee1"

    stored = db.session.scalars(select(ApiToken).where(ApiToken.name == "sync")).one()
    assert stored.token_hash == tokens.hash_token(plaintext)
    assert stored.expires_at is not None  # API_TOKEN_LIFETIME_DAYS applies by default


def test_users_token_command_refuses_unknown_and_deactivated_users(app, people, monkeypatch):
    from lms.cli import main

    monkeypatch.setenv("LMS_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("LMS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LMS_INSTANCE_PATH", app.instance_path)
    people["trainee"].active = False
    db.session.commit()

    for username in ("nobody", "trainee1"):
        result = CliRunner().invoke(main, ["users", "token", username])
        assert result.exit_code != 0
        assert not any(line.startswith(tokens.TOKEN_PREFIX) for line in result.output.splitlines())
    assert db.session.scalar(select(ApiToken)) is None
