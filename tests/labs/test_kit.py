"""Lab kits: export → serve on a laptop → check-in and uploads → results → import (twice), conflicts, and
damaged, foreign or edited archives refused."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

import lms.cli
from labs import kit as labkit
from labs.checkin import current_code
from labs.kit_server import create_kit_app
from labs.models import Attendance, Booking, BookingState, LabOccurrence
from labs.services import book_seat, create_lab_session
from lms.extensions import db
from lms.models import (
    AuditLog,
    CourseModule,
    CourseUnit,
    CourseVersion,
    HoursEntry,
    HoursSource,
    UnitKind,
)
from lms.services import cohorts

CLI_SECRET = "kit-cli-secret"
NEXT_SATURDAY = (datetime.now() + timedelta(days=(5 - datetime.now().weekday()) % 7 + 7)).replace(
    hour=9, minute=0, second=0, microsecond=0
)


def notebook(*cells: dict) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)})


def cell(kind: str, source: str, solution: bool = False, grade: bool = False, **extra) -> dict:
    meta = {
        "nbgrader": {
            "solution": solution,
            "grade": grade,
            "locked": not solution,
            "grade_id": "c",
            "schema_version": 3,
        }
    }
    data = {"cell_type": kind, "id": f"c{abs(hash(source)) % 10**8}", "metadata": meta, "source": source}
    if kind == "code":
        data |= {"outputs": extra.get("outputs", []), "execution_count": extra.get("execution_count")}
    return data


SOURCE_NOTEBOOK = notebook(
    cell("markdown", "# 线性回归\nFit a line."),
    cell(
        "code",
        "def fit(x, y):\n    ### BEGIN SOLUTION\n    return secret_slope(x, y)\n    ### END SOLUTION",
        solution=True,
        outputs=[{"output_type": "stream", "name": "stdout", "text": "secret_slope printed this"}],
        execution_count=3,
    ),
    cell("markdown", "Explain why: the residuals are orthogonal (SECRET PROOF).", solution=True),
    cell(
        "code",
        "assert fit([0, 1], [0, 2]) == 2\n### BEGIN HIDDEN TESTS\nassert fit([0, 1], [0, 5]) == 5  # hidden\n"
        "### END HIDDEN TESTS\nprint('ok')",
        grade=True,
    ),
)


# --- pure: release notebooks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "solution", "expected"),
    [
        (
            "code",
            "x = 1\n### BEGIN SOLUTION\nx = answer()\n### END SOLUTION\nprint(x)",
            True,
            "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nprint(x)",
        ),
        (
            "code",
            "def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
            True,
            "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()",
        ),
        ("code", "return_the_answer = 42", True, labkit.CODE_STUB),  # a solution cell without markers
        ("markdown", "Because the gradient vanishes.", True, "YOUR ANSWER HERE"),
        (
            "markdown",
            "Intro\n### BEGIN SOLUTION\nthe proof\n### END SOLUTION",
            False,
            "Intro\nYOUR ANSWER HERE",
        ),
        (
            "code",
            "assert f() == 42\n### BEGIN HIDDEN TESTS\nassert f() != 41\n### END HIDDEN TESTS\nprint(1)",
            False,
            "assert f() == 42\nprint(1)",
        ),
        ("code", "x = 1\n### BEGIN SOLUTION\nleak = 'never ends'", True, "x = 1\n" + labkit.CODE_STUB),
        ("code", "assert ok\n### BEGIN HIDDEN TESTS\nassert leak", False, "assert ok"),
        ("markdown", "# Just text", False, "# Just text"),
        ("code", "import numpy as np", False, "import numpy as np"),
    ],
)
def test_release_cell_strips_solutions_and_hidden_tests(kind, source, solution, expected):
    released = labkit.release_cell(cell(kind, source, solution=solution))
    assert released["source"] == expected


def test_release_notebook_clears_outputs_and_keeps_no_secret():
    released = labkit.release_notebook(SOURCE_NOTEBOOK)
    text = json.dumps(released)
    for secret in ("secret_slope", "SECRET PROOF", "hidden", "BEGIN", "END SOLUTION"):
        assert secret not in text
    assert released["cells"][1]["outputs"] == [] and released["cells"][1]["execution_count"] is None
    assert released["cells"][0]["source"] == "# 线性回归\nFit a line."
    assert released["cells"][3]["source"] == "assert fit([0, 1], [0, 2]) == 2\nprint('ok')"
    assert released["cells"][1]["metadata"]["nbgrader"]["grade_id"] == "c"  # graders still recognise cells


# --- pure: archives -------------------------------------------------------------------------------------


KEY = b"k" * 32


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_signed_archive_round_trips_and_detects_every_change():
    data = labkit.pack({"manifest.json": b"{}", "a.txt": b"alpha"}, KEY)
    members = labkit.unpack(data)
    labkit.verify(members, KEY)
    assert members["a.txt"] == b"alpha"

    with pytest.raises(labkit.KitSignatureInvalid, match="a.txt was changed"):
        labkit.verify({**members, "a.txt": b"alpha!"}, KEY)
    with pytest.raises(labkit.KitSignatureInvalid, match="b.txt was added"):
        labkit.verify({**members, "b.txt": b"extra"}, KEY)
    with pytest.raises(labkit.KitCorrupt, match="a.txt is missing"):
        labkit.verify({k: v for k, v in members.items() if k != "a.txt"}, KEY)
    with pytest.raises(labkit.KitSignatureInvalid, match="another key"):
        labkit.verify(members, b"x" * 32)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated copy
        lambda data: b"PK\x03\x04" + b"\0" * 100,  # a zip header and nothing else
        lambda data: b"not a zip at all",
        lambda data: data.replace(b"alpha", b"alphx"),  # flipped bytes inside a stored member: CRC fails
    ],
)
def test_damaged_archives_are_refused_as_corrupt(damage):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.json", b"{}")
        archive.writestr("a.txt", b"alpha" * 10)
    with pytest.raises(labkit.KitCorrupt):
        labkit.unpack(damage(buffer.getvalue()))


def test_archive_member_names_cannot_escape():
    with pytest.raises(labkit.KitCorrupt, match="unexpected member"):
        labkit.unpack(rezip({"manifest.json": b"{}", "../../etc/passwd": b"x"}))


def test_instance_id_and_kit_key_depend_on_the_secret_key():
    assert labkit.instance_id("a") == labkit.instance_id("a") != labkit.instance_id("b")
    assert labkit.kit_key("a", "kit-1") != labkit.kit_key("b", "kit-1")
    assert labkit.kit_key("a", "kit-1") != labkit.kit_key("a", "kit-2")


# --- the whole journey ----------------------------------------------------------------------------------


@pytest.fixture
def lms_cli(app, monkeypatch, tmp_path):
    """Runs `lms ...` as a separate app configured from the environment, on the test database."""
    monkeypatch.setenv("LMS_SECRET_KEY", CLI_SECRET)
    monkeypatch.setenv("LMS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(tmp_path / "cli-instance"))
    monkeypatch.setenv("LMS_BABEL_DEFAULT_LOCALE", "en")
    made = []
    real_make_app = lms.cli.make_app

    def make_app(**overrides):
        made.append(real_make_app(**overrides))
        return made[-1]

    monkeypatch.setattr(lms.cli, "make_app", make_app)

    def run(*args):
        db.session.commit()  # the command runs in its own app and session
        result = CliRunner().invoke(lms.cli.main, [str(a) for a in args])
        db.session.expire_all()
        return result

    yield run
    for cli_app in made:
        with cli_app.app_context():
            db.engine.dispose()


@pytest.fixture
def uploads_root(tmp_path) -> Path:
    return tmp_path / "cli-instance" / labkit.UPLOADS_FOLDER


@pytest.fixture
def lab(app, people, dummy_cohort, create_room, create_user):
    """A lab meeting of a cohort that follows a course version whose lab names one exercise notebook:
    two trainees with a seat in a 2-seat room, a third on the waiting list."""
    version = CourseVersion(
        course=dummy_cohort.course,
        version="2024.1",
        schema_version=1,
        slug="aiet-p",
        content_hash="x" * 64,
        is_current=True,
    )
    module = CourseModule(version=version, key="m03", position=1, title={"zh_CN": "机器学习"}, summary={})
    db.session.add_all([version, module])
    db.session.flush()
    for position, (key, kind, body) in enumerate(
        [
            ("m03-lab", UnitKind.LAB, {"plan": {}, "exercises": ["m03-linreg"]}),
            ("m03-linreg", UnitKind.EXERCISE, {"notebook": SOURCE_NOTEBOOK, "points": 10}),
        ]
    ):
        db.session.add(
            CourseUnit(
                version_id=version.id,
                module=module,
                key=key,
                kind=kind,
                position=position,
                title={"zh_CN": "线性回归", "en": "Linear regression"},
                minutes=180,
                body=body,
            )
        )
    dummy_cohort.course_version_id = version.id
    trainees = [people["trainee"]]
    for n in (2, 3):
        trainee = create_user(
            username=f"trainee-{n}", real_name=f"学员{n}", employer="某电信分公司", password=None
        )
        cohorts.enroll(trainee, dummy_cohort)
        trainees.append(trainee)
    room = create_room(seats=2, workstations=2)
    session = create_lab_session(
        cohort=dummy_cohort,
        unit_key="m03-lab",
        room=room,
        trainers=[people["trainer"]],
        first_start_local=NEXT_SATURDAY,
        duration_minutes=180,
        title="线性回归实训",
        actor=people["admin"],
        override_reason="test: a small room",
    )
    occurrence = session.occurrences[0]
    bookings = [book_seat(t, occurrence) for t in trainees]
    assert [b.state for b in bookings] == [BookingState.BOOKED, BookingState.BOOKED, BookingState.WAITLISTED]
    db.session.commit()
    return occurrence, trainees


def export(lms_cli, occurrence: LabOccurrence, path: Path) -> Path:
    result = lms_cli("labs", "kit", "export", occurrence.id, "-o", path)
    assert result.exit_code == 0, result.output
    return path


class Laptop:
    """The kit server as trainees and the trainer use it, through its WSGI test client."""

    def __init__(self, kit_path: Path, now: datetime) -> None:
        self.now = now
        self.app = create_kit_app(kit_path, clock=lambda: self.now)
        self.kit = self.app.extensions["lab_kit"].kit

    def client(self):
        return self.app.test_client()

    @staticmethod
    def csrf(client, path: str = "/") -> str:
        match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
        assert match
        return match.group(1)

    def check_in(self, client, username: str, code: str | None = None):
        code = code if code is not None else current_code(self.kit.checkin_secret, self.now).code
        return client.post("/", data={"username": username, "code": code, "csrf_token": self.csrf(client)})

    def upload(self, client, data: bytes, exercise: str = "m03-linreg", filename: str = "work.ipynb"):
        # Encoded in memory: the test client would spool a large body to a file it never closes.
        boundary, body = encode_multipart(
            {
                "exercise": exercise,
                "notebook": FileStorage(io.BytesIO(data), filename),
                "csrf_token": self.csrf(client, "/upload"),
            }
        )
        return client.post("/upload", data=body, content_type=f"multipart/form-data; boundary={boundary}")

    def trainer(self):
        client = self.client()
        pin = self.app.extensions["lab_kit"].store.trainer_pin
        response = client.post(
            "/trainer/login", data={"pin": pin, "csrf_token": self.csrf(client, "/trainer/login")}
        )
        assert response.status_code == 302
        return client

    def results(self, trainer) -> bytes:
        response = trainer.post(
            "/trainer/results", data={"csrf_token": self.csrf(trainer, "/trainer/roster")}
        )
        assert response.status_code == 200
        assert response.mimetype == "application/zip"
        return response.get_data()


def work_notebook(answer: str = "return 2") -> bytes:
    return notebook(cell("code", f"def fit(x, y):\n    {answer}", solution=True)).encode()


def lab_hours(user) -> list[HoursEntry]:
    return list(
        db.session.scalars(
            select(HoursEntry).where(
                HoursEntry.user_id == user.id, HoursEntry.source == HoursSource.LAB_ATTENDANCE
            )
        )
    )


def test_kit_holds_roster_secret_and_release_notebooks_only(lab, lms_cli, tmp_path):
    occurrence, trainees = lab
    path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    members = members_of(path.read_bytes())
    assert set(members) == {
        "manifest.json",
        "roster.json",
        "secret.json",
        "notebooks/m03-linreg.ipynb",
        "signature.json",
    }
    manifest = json.loads(members["manifest.json"])
    assert manifest["occurrence_id"] == occurrence.id
    assert manifest["instance_id"] == labkit.instance_id(CLI_SECRET)
    assert manifest["site"]["timezone"] == "Asia/Shanghai"
    assert datetime.fromisoformat(manifest["starts_at"]) == occurrence.starts_at
    roster = json.loads(members["roster.json"])["trainees"]
    assert [(t["username"], t["booking_state"]) for t in roster] == [
        ("trainee-2", "booked"),
        ("trainee1", "booked"),
        ("trainee-3", "waitlisted"),
    ]
    assert roster[0]["employer"] == "某电信分公司" and roster[0]["real_name"] == "学员2"
    assert json.loads(members["secret.json"])["checkin_secret"] == occurrence.checkin_secret
    released = members["notebooks/m03-linreg.ipynb"].decode()
    assert "secret_slope" not in released and "hidden" not in released and "SECRET PROOF" not in released
    assert "raise NotImplementedError()" in released
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "labs.kit_exported")) is not None


def test_export_refuses_an_unknown_occurrence(lms_cli, app, tmp_path):
    result = lms_cli("labs", "kit", "export", 999999, "-o", tmp_path / "kit.zip")
    assert result.exit_code == 1
    assert "no lab occurrence 999999" in result.output
    assert not (tmp_path / "kit.zip").exists()


def test_offline_lab_round_trip_imports_once(lab, lms_cli, tmp_path, uploads_root):
    occurrence, (first, second, waiting) = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    laptop = Laptop(kit_path, now=occurrence.starts_at + timedelta(minutes=3))

    # Trainees download the release notebook, check in and upload.
    anyone = laptop.client()
    page = anyone.get("/")
    assert page.status_code == 200 and "线性回归实训" in page.get_data(as_text=True)
    download = anyone.get("/notebooks/m03-linreg.ipynb")
    assert download.status_code == 200 and b"secret_slope" not in download.get_data()
    assert anyone.get("/upload").status_code == 302  # not checked in yet

    alice = laptop.client()
    assert laptop.check_in(alice, first.username, code="000000").status_code in (400,)
    assert laptop.check_in(alice, "nobody").status_code == 404
    response = laptop.check_in(alice, first.username.upper())  # usernames are matched without case
    assert response.status_code == 302 and response.location.endswith("/upload")
    assert laptop.upload(alice, work_notebook()).status_code == 302
    assert laptop.upload(alice, work_notebook()).status_code == 302  # the same bytes again: kept once
    assert laptop.upload(alice, b"not json").status_code == 400
    assert laptop.upload(alice, work_notebook(), filename="work.py").status_code == 400
    assert laptop.upload(alice, work_notebook(), exercise="m99").status_code == 400
    too_big = b"{" + b" " * labkit.MAX_UPLOAD_BYTES + b"}"
    assert laptop.upload(alice, too_big).status_code == 413
    uploads = laptop.client()
    assert laptop.check_in(uploads, waiting.username).status_code == 409  # on the waiting list

    # The trainer's pages need the PIN; the trainer marks the second trainee late by hand.
    assert laptop.client().get("/trainer").status_code == 302
    trainer = laptop.trainer()
    screen = trainer.get("/trainer").get_data(as_text=True)
    code = current_code(laptop.kit.checkin_secret, laptop.now).code
    assert f"{code[:3]} {code[3:]}" in screen
    response = trainer.post(
        "/trainer/mark",
        data={
            "user_id": second.id,
            "attendance": "late",
            "csrf_token": laptop.csrf(trainer, "/trainer/roster"),
        },
    )
    assert response.status_code == 302
    roster = trainer.get("/trainer/roster").get_data(as_text=True)
    assert "学员2" in roster and first.real_name in roster
    results = laptop.results(trainer)
    assert (tmp_path / "kit-results.zip").read_bytes() == results
    results_path = tmp_path / "results.zip"
    results_path.write_bytes(results)
    records = json.loads(members_of(results)["records.json"])
    assert [r["user_id"] for r in records["checkins"]] == [first.id]
    assert {(r["user_id"], r["attendance"]) for r in records["marks"]} == {
        (first.id, "attended"),
        (second.id, "late"),
    }
    assert len(records["uploads"]) == 1

    # The first import merges everything and credits the hours once.
    result = lms_cli("labs", "kit", "import", results_path)
    assert result.exit_code == 0, result.output
    assert "1 check-in(s), 2 attendance mark(s), 1 notebook(s) merged" in result.output
    one = db.session.scalar(select(Booking).where(Booking.user_id == first.id))
    two = db.session.scalar(select(Booking).where(Booking.user_id == second.id))
    assert one.checked_in_at == laptop.now and one.attendance == Attendance.ATTENDED
    assert two.checked_in_at is None and two.attendance == Attendance.LATE
    assert [e.minutes for e in lab_hours(first)] == [177]  # from the check-in to the end
    assert [e.minutes for e in lab_hours(second)] == [170]  # late without check-in: from the late threshold
    assert lab_hours(waiting) == []
    stored = list(uploads_root.rglob("*.ipynb"))
    assert len(stored) == 1 and stored[0].read_bytes() == work_notebook()
    assert stored[0].parent.name == str(first.id) and stored[0].parent.parent.name == laptop.kit.kit_id
    sidecar = json.loads(stored[0].with_suffix(".json").read_text())
    assert sidecar["exercise"] == "m03-linreg" and sidecar["username"] == first.username
    details_before = (one.details, two.details)
    audits = db.session.scalar(select(func.count()).select_from(AuditLog))

    # The second import of the same file changes nothing.
    again = lms_cli("labs", "kit", "import", results_path)
    assert again.exit_code == 0, again.output
    assert "0 check-in(s), 0 attendance mark(s), 0 notebook(s) merged; 4 already imported" in again.output
    assert "conflict" not in again.output
    assert (one.details, two.details) == details_before
    assert [e.minutes for e in lab_hours(first)] == [177] and len(lab_hours(second)) == 1
    assert list(uploads_root.rglob("*.ipynb")) == stored
    assert db.session.scalar(select(func.count()).select_from(AuditLog)) == audits


def test_record_conflicting_with_an_online_one_is_reported_not_overwritten(lab, lms_cli, tmp_path):
    occurrence, (first, second, _waiting) = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    laptop = Laptop(kit_path, now=occurrence.starts_at + timedelta(minutes=2))
    assert laptop.check_in(laptop.client(), first.username).status_code == 302
    assert laptop.check_in(laptop.client(), second.username).status_code == 302
    results_path = tmp_path / "results.zip"
    results_path.write_bytes(laptop.results(laptop.trainer()))

    # Meanwhile, online: the first trainee checked in at another time, the second was marked absent.
    online_time = occurrence.starts_at + timedelta(minutes=20)
    one = db.session.scalar(select(Booking).where(Booking.user_id == first.id))
    two = db.session.scalar(select(Booking).where(Booking.user_id == second.id))
    one.checked_in_at, one.attendance = online_time, Attendance.LATE
    two.attendance = Attendance.ABSENT

    result = lms_cli("labs", "kit", "import", results_path)
    assert result.exit_code == 0, result.output
    assert re.search(
        rf"conflict: {first.username} .*checked in online at .*09:20:00, but the kit says "
        r".*09:02:00; kept the online time",
        result.output,
    )
    assert re.search(
        rf"conflict: {first.username} .*marked late online, but attended in the kit", result.output
    )
    assert re.search(
        rf"conflict: {second.username} .*marked absent online, but attended in the kit", result.output
    )
    assert "1 check-in(s)" in result.output  # the second trainee's check-in time was new and is merged
    assert "3 conflict(s) kept the online record" in result.output
    assert one.checked_in_at == online_time and one.attendance == Attendance.LATE
    assert two.attendance == Attendance.ABSENT and two.checked_in_at == laptop.now
    assert lab_hours(second) == []

    again = lms_cli("labs", "kit", "import", results_path)
    assert again.exit_code == 0
    assert "0 check-in(s), 0 attendance mark(s)" in again.output
    assert again.output.count("conflict:") == 3  # still listed until someone resolves them


@pytest.fixture
def results_file(lab, lms_cli, tmp_path):
    """A results archive with one check-in and one upload, exported from a kit of this LMS."""
    occurrence, (first, _second, _waiting) = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    laptop = Laptop(kit_path, now=occurrence.starts_at + timedelta(minutes=1))
    client = laptop.client()
    assert laptop.check_in(client, first.username).status_code == 302
    assert laptop.upload(client, work_notebook()).status_code == 302
    path = tmp_path / "results.zip"
    path.write_bytes(laptop.results(laptop.trainer()))
    return path


def nothing_imported(first, uploads_root: Path) -> None:
    booking = db.session.scalar(select(Booking).where(Booking.user_id == first.id))
    assert (
        booking.checked_in_at is None and booking.attendance is None and "kit_imports" not in booking.details
    )
    assert lab_hours(first) == []
    assert not uploads_root.exists() or not any(uploads_root.rglob("*.ipynb"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "not a zip archive"),
        (lambda data: b"", "not a zip archive"),
        (
            lambda data: rezip(
                {
                    **members_of(data),
                    "records.json": members_of(data)["records.json"].replace(b'"attended"', b'"excused"'),
                }
            ),
            "records.json was changed after the archive was signed",
        ),
        (
            lambda data: rezip({**members_of(data), "uploads/extra.ipynb": b"{}"}),
            "uploads/extra.ipynb was added after the archive was signed",
        ),
        (
            lambda data: rezip({k: v for k, v in members_of(data).items() if k != "signature.json"}),
            "no signature.json",
        ),
    ],
    ids=["truncated", "empty", "tampered-member", "added-member", "unsigned"],
)
def test_damaged_or_edited_results_are_refused_and_nothing_is_written(
    lab, lms_cli, results_file, uploads_root, damage, message
):
    _occurrence, (first, _second, _waiting) = lab
    results_file.write_bytes(damage(results_file.read_bytes()))
    result = lms_cli("labs", "kit", "import", results_file)
    assert result.exit_code == 1
    assert message in result.output and "Nothing was imported." in result.output
    nothing_imported(first, uploads_root)


def test_results_of_a_kit_from_another_lms_are_refused(lab, lms_cli, results_file, uploads_root, monkeypatch):
    _occurrence, (first, _second, _waiting) = lab
    monkeypatch.setenv("LMS_SECRET_KEY", "another-instance")
    result = lms_cli("labs", "kit", "import", results_file)
    assert result.exit_code == 1
    assert "belong to a kit of another LMS" in result.output
    nothing_imported(first, uploads_root)


def test_results_re_signed_with_a_key_that_is_not_ours_are_refused(lab, lms_cli, results_file, uploads_root):
    _occurrence, (first, _second, _waiting) = lab
    members = members_of(results_file.read_bytes())
    del members["signature.json"]
    forged_key = labkit.kit_key("another-instance", json.loads(members["manifest.json"])["kit_id"])
    results_file.write_bytes(labkit.pack(members, forged_key))  # the manifest still names our instance
    result = lms_cli("labs", "kit", "import", results_file)
    assert result.exit_code == 1
    assert "signed with another key" in result.output
    nothing_imported(first, uploads_root)


def test_a_kit_is_not_a_results_file(lab, lms_cli, tmp_path, uploads_root):
    occurrence, (first, _second, _waiting) = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    result = lms_cli("labs", "kit", "import", kit_path)
    assert result.exit_code == 1
    assert "This is a lab kit, not a results file" in result.output
    nothing_imported(first, uploads_root)


def test_results_of_a_deleted_occurrence_are_refused(lab, lms_cli, results_file):
    occurrence, _trainees = lab
    db.session.delete(occurrence.session)
    result = lms_cli("labs", "kit", "import", results_file)
    assert result.exit_code == 1
    assert f"Lab meeting {occurrence.id} of this kit no longer exists" in result.output


def test_import_of_a_missing_file_fails_cleanly(lms_cli, app, tmp_path):
    result = lms_cli("labs", "kit", "import", tmp_path / "nowhere.zip")
    assert result.exit_code == 1
    assert "cannot read" in result.output


# --- the laptop refuses bad kits ------------------------------------------------------------------------


def test_serve_refuses_a_corrupt_tampered_or_foreign_archive(
    lab, lms_cli, tmp_path, results_file, monkeypatch
):
    import waitress

    def never_serve(*args, **kwargs):
        raise AssertionError("a refused kit must not be served")

    monkeypatch.setattr(waitress, "serve", never_serve)
    occurrence, _trainees = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    members = members_of(kit_path.read_bytes())

    cases = {
        "truncated.zip": (kit_path.read_bytes()[:500], "not a zip archive"),
        "tampered.zip": (
            rezip({**members, "roster.json": members["roster.json"].replace(b"trainee1", b"intruder")}),
            "roster.json was changed after the archive was signed",
        ),
        "results.zip": (results_file.read_bytes(), "This is a results file, not a lab kit"),
        "newer.zip": (
            rezip(
                {**members, "manifest.json": members["manifest.json"].replace(b'"format": 1', b'"format": 7')}
            ),
            "made by a newer LMS (format 7)",
        ),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        result = CliRunner().invoke(lms.cli.main, ["labs", "kit", "serve", str(path), "--port", "1"])
        assert result.exit_code == 1, name
        assert message in result.output, name
        assert not path.with_suffix(".sqlite3").exists(), name


def test_serve_keeps_its_records_per_kit(lab, lms_cli, tmp_path):
    occurrence, (first, _second, _waiting) = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    laptop = Laptop(kit_path, now=occurrence.starts_at)
    assert laptop.check_in(laptop.client(), first.username).status_code == 302
    restarted = Laptop(kit_path, now=occurrence.starts_at + timedelta(minutes=30))  # the laptop rebooted
    assert restarted.app.extensions["lab_kit"].store.checkin_of(first.id) == occurrence.starts_at
    other = export(lms_cli, occurrence, tmp_path / "other.zip")
    with pytest.raises(labkit.KitRefused, match="holds the records of another kit"):
        create_kit_app(other, tmp_path / "kit.sqlite3")


def test_checkin_outside_the_window_and_guessing_are_refused(lab, lms_cli, tmp_path):
    occurrence, (first, _second, _waiting) = lab
    kit_path = export(lms_cli, occurrence, tmp_path / "kit.zip")
    early = Laptop(kit_path, now=occurrence.starts_at - timedelta(hours=2))
    assert early.check_in(early.client(), first.username).status_code == 403
    laptop = Laptop(kit_path, now=occurrence.starts_at)
    client = laptop.client()
    for guess in range(5):
        assert laptop.check_in(client, first.username, code=f"{guess:06d}").status_code == 400
    assert laptop.check_in(client, first.username).status_code == 429  # even the right code, for a while
    wrong_pin = client.post(
        "/trainer/login", data={"pin": "0", "csrf_token": laptop.csrf(client, "/trainer/login")}
    )
    assert wrong_pin.status_code == 403
    assert (
        client.post("/", data={"username": first.username, "code": "1"}).status_code == 400
    )  # no CSRF token
