import subprocess
import sys
import time

import pytest

from lms import ConfigError, create_app
from lms.plugins import Plugin, installed_plugins


def test_app_refuses_to_start_without_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("LMS_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="lms init"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": None})


def test_unknown_plugin_fails_loudly(tmp_path):
    with pytest.raises(ConfigError, match="unknown plugin.*nosuch.*installed: curriculum, graders, labs"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "PLUGINS": "labs,nosuch"})


def test_plugins_come_from_entry_points_filtered_by_config(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "PLUGINS": "labs"})
    assert [p.name for p in app.extensions["lms.plugins"]] == ["labs"]
    everything = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x"})
    assert sorted(p.name for p in everything.extensions["lms.plugins"]) == ["curriculum", "graders", "labs"]
    assert all(isinstance(ep.load(), Plugin) for ep in installed_plugins().values())


def test_config_layers_instance_file_then_environment_then_mapping(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text(
        "SECRET_KEY = 'from-file'\nLOGIN_FAILURES_PER_ACCOUNT = 7\nPUBLIC_URL = 'https://lms.example.cn'\n"
    )
    monkeypatch.setenv("LMS_LOGIN_FAILURES_PER_ACCOUNT", "9")
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(tmp_path))
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-file"
    assert app.config["LOGIN_FAILURES_PER_ACCOUNT"] == 9
    assert app.config["SESSION_COOKIE_SECURE"] is True  # served over https
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'lms.sqlite3'}"
    assert create_app({"LOGIN_FAILURES_PER_ACCOUNT": 3}).config["LOGIN_FAILURES_PER_ACCOUNT"] == 3


def test_postgres_urls_use_psycopg3(tmp_path):
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "x",
            "DATABASE_URL": "postgresql://u@127.0.0.1:5432/lms",
        }
    )
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@127.0.0.1:5432/lms"


def test_cookies_are_httponly_and_lax_and_not_secure_on_plain_http(app):
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_lms_help_is_fast_and_lists_plugin_commands():
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lms", "--help"], capture_output=True, text=True, check=True
    )
    elapsed = time.perf_counter() - started
    assert "init" in result.stdout and "demo" in result.stdout and "users" in result.stdout
    # Not a speed test: a guard that --help imports neither Flask's app nor nbgrader.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lms.cli; lms.cli.main(['--help'], standalone_mode=False);"
            "print(sorted(m for m in ('nbgrader', 'flask_sqlalchemy', 'sqlalchemy') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().splitlines()[-1] == "[]"
    assert elapsed < 30
