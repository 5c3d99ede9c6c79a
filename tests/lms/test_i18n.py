"""Both languages are complete, chosen correctly, and times are shown in the user's zone."""

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from lms.extensions import db
from lms.models import AuditLog

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "lms" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdf.0-9]*[sdf]|%[sd]")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[str]:
    """Every UI string in the code and templates, extracted as `make extract-messages` does."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "--no-location",
            "-o",
            str(pot),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as handle:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}


@pytest.fixture(scope="module")
def chinese():
    with CATALOG.open("rb") as handle:
        return read_po(handle)


def test_every_ui_string_has_a_chinese_translation(extracted, chinese):
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in chinese
        if m.id and m.string and all(m.string if isinstance(m.string, tuple) else [m.string]) and not m.fuzzy
    }
    missing = sorted(extracted - translated)
    assert not missing, f"{len(missing)} untranslated: {missing[:20]}"


def test_translations_keep_their_placeholders(chinese):
    for message in chinese:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = sorted(set(PLACEHOLDER.findall(ids[0])))
        for string in strings:
            assert sorted(set(PLACEHOLDER.findall(string))) == expected, message.id


@pytest.fixture
def app_config(app_config):
    app_config["BABEL_DEFAULT_LOCALE"] = "zh_CN"  # the product's default, as lms/config.py sets it
    return app_config


def test_chinese_is_the_default(client, people):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-CN">' in page and "登录" in page


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("fr-FR, en;q=0.5", "en"),
        ("de-DE", "zh-CN"),
    ],
)
def test_accept_language_picks_a_supported_locale(client, header, lang):
    page = client.get("/login", headers={"Accept-Language": header}).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page


def test_the_users_own_setting_beats_accept_language(client, auth, people):
    people["trainee"].locale = "en"
    db.session.commit()
    auth.login("trainee1")
    page = client.get("/dashboard", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "My courses" in page


def test_switcher_sets_the_session_for_visitors_and_the_account_for_users(client, auth, people):
    csrf = auth.csrf()
    response = client.post("/locale", data={"locale": "en", "next": "/login", "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")
    assert '<html lang="en">' in client.get("/login").get_data(as_text=True)
    auth.login("trainee1")
    client.post(
        "/locale", data={"locale": "zh_CN", "next": "//evil.example/", "csrf_token": auth.csrf("/dashboard")}
    )
    assert db.session.get(type(people["trainee"]), people["trainee"].id).locale == "zh_CN"


def test_times_are_stored_utc_and_shown_in_the_users_zone(app, people):
    from flask_babel import format_datetime

    entry = AuditLog(action="probe", at=datetime(2026, 11, 22, 16, 30, tzinfo=UTC))
    db.session.add(entry)
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(AuditLog, entry.id).at
    assert stored.tzinfo is UTC and stored.hour == 16
    # Each block gets its own app context, as each real request does (Flask-Babel caches the zone there).
    with app.app_context(), app.test_request_context("/", headers={"Accept-Language": "en"}):
        # anonymous: the default zone, Asia/Shanghai (UTC+8), crosses midnight
        assert "Nov 23, 2026" in format_datetime(stored) and "12:30" in format_datetime(stored)
    people["trainee"].timezone = "Asia/Urumqi"  # UTC+6
    db.session.commit()
    with app.app_context(), app.test_request_context("/", headers={"Accept-Language": "en"}):
        from flask_login import login_user

        login_user(people["trainee"])
        assert "10:30" in format_datetime(stored)


def test_naive_datetimes_are_refused_by_utc_columns(app):
    db.session.add(AuditLog(action="naive", at=datetime(2026, 1, 1, 8, 0)))
    with pytest.raises(Exception, match="naive datetime"):
        db.session.flush()
    db.session.rollback()
