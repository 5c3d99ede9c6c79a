from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from lms.cli import main
from lms.demo import load_demo
from lms.extensions import db
from lms.models import Cohort, Enrollment, Institution, InstitutionKind, Role, User


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("LMS_SECRET_KEY", raising=False)
    monkeypatch.delenv("LMS_DATABASE_URL", raising=False)
    return tmp_path / "instance"


def test_init_writes_a_secret_key_once_and_is_safe_to_run_twice(cli_env):
    runner = CliRunner()
    first = runner.invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    config = (cli_env / "config.py").read_text()
    assert "SECRET_KEY = '" in config
    assert (cli_env / "config.py").stat().st_mode & 0o077 == 0  # private to its owner
    assert (cli_env / "lms.sqlite3").exists()
    second = runner.invoke(main, ["init"])
    assert second.exit_code == 0, second.output
    assert (cli_env / "config.py").read_text() == config  # the key is kept, sessions stay valid


def test_demo_via_cli_is_safe_to_run_twice_and_prints_logins(cli_env):
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    first = runner.invoke(main, ["demo"])
    assert first.exit_code == 0, first.output
    assert "trainee01 .. trainee29" in first.output and "lms-demo" in first.output
    second = runner.invoke(main, ["demo"])
    assert second.exit_code == 0, second.output


def test_demo_scenario_matches_the_programme(app):
    today = date(2026, 11, 22)
    load_demo("lms-demo", today=today)
    load_demo("lms-demo", today=today)  # twice: nothing duplicated
    cohort = db.session.scalar(select(Cohort).where(Cohort.code == "AIET-P-DEMO"))
    assert cohort is not None
    assert cohort.starts_on == today - timedelta(days=14) and cohort.ends_on == today + timedelta(days=14)
    assert cohort.required_hours == 64
    assert {t.username for t in cohort.trainers} == {"trainer1", "trainer2"}
    trainees = [e.user for e in cohort.enrollments]
    assert sorted(u.username for u in trainees) == [f"trainee{i:02d}" for i in range(1, 30)]
    assert db.session.scalar(select(func.count()).select_from(Enrollment)) == 29
    employers = {u.employer for u in trainees}
    assert any("通信" in e for e in employers) and any("建设工程局" in e for e in employers)
    assert any("大学" in e or "学院" in e for e in employers)
    assert all(u.check_password("lms-demo") for u in trainees[:2])
    kinds = {i.kind for i in db.session.scalars(select(Institution))}
    assert kinds == {InstitutionKind.TRAINING_BASE, InstitutionKind.ASSESSMENT_SITE}
    assessor = db.session.scalar(select(User).where(User.username == "assessor1"))
    assert assessor is not None and assessor.has_role(Role.ASSESSOR)
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    assert admin is not None and admin.is_platform_admin


def test_demo_password_option(app):
    load_demo("another-pass-1")
    user = db.session.scalar(select(User).where(User.username == "trainee07"))
    assert user is not None and user.check_password("another-pass-1") and not user.check_password("lms-demo")
