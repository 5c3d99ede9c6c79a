"""Core fixtures: a migrated database (SQLite, or PostgreSQL when LMS_TEST_DATABASE_URL is set), the
app, clients, and factory fixtures that plugins' tests reuse."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.globals import _cv_app
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from lms import create_app
from lms.extensions import db
from lms.models import Cohort, Course, CourseLevel, Institution, InstitutionKind, Role, User
from lms.services import accounts, cohorts

PASSWORD = "correct-horse-9"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    base = os.environ.get("LMS_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        _migrate(url, tmp_path_factory.mktemp("instance"))
        yield url
        return
    schema = f"lms_test_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin_engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    try:
        _migrate(url, tmp_path_factory.mktemp("instance"))
        yield url
    finally:
        with admin_engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


def _migrate(url: str, instance: Path) -> None:
    from lms.db import upgrade_database

    app = create_app({"SECRET_KEY": "test", "DATABASE_URL": url, "INSTANCE_PATH": str(instance)})
    with app.app_context():
        upgrade_database()
        db.engine.dispose()


def is_postgres(url: str) -> bool:
    return url.startswith("postgres")


@pytest.fixture
def app_config(database_url: str, tmp_path: Path) -> dict[str, Any]:
    """The configuration of the test app; tests may change it before ``app`` is created."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PROPAGATE_UNEXPECTED_ERRORS": False,
        # Tests read messages in English; test_i18n and the browser tests cover the Chinese default.
        "BABEL_DEFAULT_LOCALE": "en",
    }


class IsolatedClient(FlaskClient):
    """A test client whose requests run in their own app context, as in production.

    The test's own app context (and its database session) is hidden during the request, so request
    state in ``g`` never leaks between requests; the test's pending rows are committed first, and its
    session is expired afterwards so that the test reads what the request committed.
    """

    def open(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        outer = _cv_app.get(None)
        if outer is not None:
            db.session.commit()
        token = _cv_app.set(None)  # type: ignore[arg-type]
        try:
            return super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)
            if outer is not None:
                db.session.commit()  # ends the read transaction and expires what the test holds


@pytest.fixture
def app(app_config: dict[str, Any]):
    app = create_app(app_config)
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        try:
            db.session.rollback()
            _empty_tables()
        finally:
            db.session.remove()
            db.engine.dispose()


def _empty_tables(attempts: int = 5) -> None:
    """Delete every row; on PostgreSQL a live server's transaction may deadlock the TRUNCATE once."""
    from lms.db import is_transient

    for attempt in range(attempts):
        try:
            with db.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
                    connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                else:
                    for table in reversed(db.metadata.sorted_tables):
                        connection.execute(table.delete())
            return
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(0.5 * (attempt + 1))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Sign in and out through the real login form (CSRF included)."""

    def __init__(self, client) -> None:
        self.client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def login(self, username: str, password: str = PASSWORD):
        return self.client.post(
            "/login", data={"username": username, "password": password, "csrf_token": self.csrf()}
        )

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf("/dashboard")})

    def post(self, path: str, data: dict[str, Any] | None = None, form_page: str | None = None, **kwargs):
        """POST a form with a CSRF token taken from ``form_page`` (default: the dashboard)."""
        payload = dict(data or {})
        payload["csrf_token"] = self.csrf(form_page or "/dashboard")
        return self.client.post(path, data=payload, **kwargs)


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def create_institution(app) -> Callable[..., Institution]:
    def create(**params: Any) -> Institution:
        params.setdefault("code", f"INST-{uuid.uuid4().hex[:6]}")
        params.setdefault("name", "测试培训基地")
        params.setdefault("name_en", "Test training base")
        params.setdefault("kind", InstitutionKind.TRAINING_BASE)
        institution = cohorts.create_institution(**params)
        db.session.flush()
        return institution

    return create


@pytest.fixture
def dummy_training_base(create_institution) -> Institution:
    return create_institution(code="TB", name="东南理工大学继续教育学院", name_en="SPU Continuing Education")


@pytest.fixture
def create_user(app, dummy_training_base) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def create(
        role: Role = Role.TRAINEE, institution: Institution | None = dummy_training_base, **params: Any
    ) -> User:
        n = next(counter)
        params.setdefault("username", f"{role.value}{n:03d}")
        params.setdefault("real_name", f"测试用户{n}")
        params.setdefault("password", PASSWORD)
        if role == Role.ADMIN and institution is dummy_training_base:
            institution = None  # platform-wide unless a test says otherwise
        user = accounts.create_user(grants=[(role, institution)], **params)
        db.session.flush()
        return user

    return create


@pytest.fixture
def create_course(app) -> Callable[..., Course]:
    def create(**params: Any) -> Course:
        params.setdefault("code", f"C-{uuid.uuid4().hex[:6]}")
        params.setdefault("title", "人工智能工程技术人员（初级）")
        params.setdefault("title_en", "AI Engineering Technician (Primary Level)")
        params.setdefault("level", CourseLevel.PRIMARY)
        params.setdefault("total_hours", 64)
        params.setdefault("online_hours", 32)
        params.setdefault("offline_hours", 32)
        course = Course(**params)
        db.session.add(course)
        db.session.flush()
        return course

    return create


@pytest.fixture
def dummy_course(create_course) -> Course:
    return create_course(code="AIET-P")


@pytest.fixture
def create_cohort(app, dummy_course, dummy_training_base) -> Callable[..., Cohort]:
    def create(**params: Any) -> Cohort:
        params.setdefault("code", f"COH-{uuid.uuid4().hex[:6]}")
        params.setdefault("name", "测试班")
        params.setdefault("course", dummy_course)
        params.setdefault("training_base", dummy_training_base)
        params.setdefault("starts_on", date.today() - timedelta(days=14))
        params.setdefault("ends_on", date.today() + timedelta(days=14))
        return cohorts.create_cohort(**params)

    return create


@pytest.fixture
def people(create_user, dummy_training_base, create_institution) -> dict[str, User]:
    """One user per role: admin (platform), trainer, assessor (at an assessment site), trainee."""
    site = create_institution(
        code="AS", name="考核站", name_en="Assessment site", kind=InstitutionKind.ASSESSMENT_SITE
    )
    users = {
        "admin": create_user(Role.ADMIN, username="admin1"),
        "trainer": create_user(Role.TRAINER, username="trainer1"),
        "assessor": create_user(Role.ASSESSOR, institution=site, username="assessor1"),
        "trainee": create_user(Role.TRAINEE, username="trainee1"),
    }
    db.session.commit()
    return users


@pytest.fixture
def dummy_cohort(create_cohort, people) -> Cohort:
    """A live cohort taught by ``people['trainer']`` with ``people['trainee']`` enrolled."""
    cohort = create_cohort(code="AIET-P-T1", trainers=[people["trainer"]])
    cohorts.enroll(people["trainee"], cohort)
    db.session.commit()
    return cohort
