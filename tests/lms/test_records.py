# ruff: noqa: F811  (pytest fixtures imported from test_completion are redefined as arguments)
"""Hours transcripts (page, CSV, PDF, API), the subsidy evidence pack, and the audit log page."""

from __future__ import annotations

import csv
import io
import zipfile

import pypdf
import pytest
from sqlalchemy import select

from lms.extensions import db
from lms.models import AuditLog, Role
from lms.services import tokens
from lms.services.transcript import transcript, transcript_csv
from tests.conftest import csrf_from
from tests.lms.test_completion import (  # noqa: F401  (fixtures and helpers)
    _do_everything_but_the_exercise,
    _grade_exercise,
    certificate,
    cohort,
    course_dir,
)


def _rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel reads the UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _sign_in(app, username: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    login = {"username": username, "password": "correct-horse-9", "csrf_token": csrf_from(page)}
    assert client.post("/login", data=login).status_code == 302
    return client


def test_transcript_lists_every_credit_with_its_evidence(certificate, cohort, people) -> None:
    t = transcript(people["trainee"], cohort)
    assert [(line.unit_key, line.minutes, line.online) for line in t.lines] == [
        ("m01-l01-intro", 40, True),
        ("m01-quiz", 20, True),
        ("m01-lab", 60, False),
    ]
    assert (t.online_minutes, t.offline_minutes, t.total_minutes) == (60, 60, 120)
    assert t.lines[0].title["en"] == "Introduction"
    assert [(e.unit_key, e.best_percent) for e in t.exercises] == [("ex01-double", 100.0)]


def test_transcript_csv_is_excel_safe(certificate, cohort, people) -> None:
    from lms.models import Delivery, HoursSource
    from lms.services.hours import credit_hours

    credit_hours(
        people["trainee"],
        cohort,
        source=HoursSource.ADJUSTMENT,
        source_ref="correction-1",
        delivery=Delivery.OFFLINE,
        minutes=-10,
        evidence={"reason": '=HYPERLINK("http://x","fix")'},
        recorded_by=people["admin"],
    )
    rows = _rows(transcript_csv(transcript(people["trainee"], cohort), "en"))
    assert ["adjustment", "offline", "correction-1", "", "-10", '\'=HYPERLINK("http://x","fix")'] in [
        row[1:] for row in rows
    ]
    assert rows[0] == ["at", "source", "delivery", "unit", "title", "minutes", "evidence"]
    assert rows[1][3:6] == ["m01-l01-intro", "Introduction", "40"]
    assert rows[-1][1:4] == ["exercise_graded", "", "ex01-double"]


def test_transcript_page_csv_and_pdf(app, certificate, cohort, people) -> None:
    client = _sign_in(app, "trainee1")
    page = client.get("/me/transcript").get_data(as_text=True)
    assert "Introduction" in page or "引言" in page
    assert client.get("/me/transcript.csv").data.startswith(b"\xef\xbb\xbf")
    pdf = client.get("/me/transcript.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = pypdf.PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    assert "学时证明" in text and "王志强" in text and "引言" in text


def test_trainers_print_their_trainees_transcripts_and_nobody_elses(
    app, create_user, certificate, cohort, people
) -> None:
    path = f"/cohorts/{cohort.id}/trainees/{people['trainee'].id}/transcript.pdf"
    assert _sign_in(app, "trainer1").get(path).status_code == 200
    create_user(Role.TRAINER, username="trainer9")
    db.session.commit()
    assert _sign_in(app, "trainer9").get(path).status_code == 404  # not this cohort's trainer
    stranger = f"/cohorts/{cohort.id}/trainees/{people['admin'].id}/transcript.pdf"
    assert _sign_in(app, "trainer1").get(stranger).status_code == 404  # not enrolled


def test_subsidy_pack_holds_roster_attendance_completion_and_certificates(
    app, certificate, cohort, people
) -> None:
    assert _sign_in(app, "trainer1").get(f"/cohorts/{cohort.id}/subsidy-pack.zip").status_code == 403
    response = _sign_in(app, "admin1").get(f"/cohorts/{cohort.id}/subsidy-pack.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    pack = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(pack.namelist()) == [
        "README.txt",
        "attendance.csv",
        "certificates.csv",
        "certificates.pdf",
        "completion.csv",
        "roster.csv",
    ]
    roster = _rows(pack.read("roster.csv"))
    assert roster[1][:2] == ["trainee1", "王志强"] and roster[1][4] == "completed"
    attendance = _rows(pack.read("attendance.csv"))
    assert len(attendance) == 2 and attendance[1][2] == "m01-lab" and attendance[1][-1] == "60"
    assert _rows(pack.read("completion.csv"))[1][4] == "yes"
    certificates = _rows(pack.read("certificates.csv"))
    assert certificates[1][0] == certificate.serial and certificates[1][-1].endswith(certificate.serial)
    pdf = pypdf.PdfReader(io.BytesIO(pack.read("certificates.pdf")))
    assert len(pdf.pages) == 1 and certificate.serial in pdf.pages[0].extract_text()
    line = db.session.scalar(select(AuditLog).where(AuditLog.action == "subsidy_pack.downloaded"))
    assert line is not None and line.actor_id == people["admin"].id


def test_audit_page_filters_and_is_for_admins(app, certificate, people) -> None:
    client = _sign_in(app, "admin1")
    page = client.get("/admin/audit?action=certificate.").get_data(as_text=True)
    assert "certificate.issued" in page and certificate.serial in page
    assert "completion.rules_changed" not in page
    assert "Nothing matches." in client.get("/admin/audit?actor=nobody").get_data(as_text=True)
    assert _sign_in(app, "trainer1").get("/admin/audit").status_code == 403


@pytest.mark.parametrize(
    ("fmt", "status", "mimetype"),
    [
        ("json", 200, "application/json"),
        ("csv", 200, "text/csv"),
        ("pdf", 200, "application/pdf"),
        ("xml", 400, "application/json"),
    ],
)
def test_api_transcript_formats(app, certificate, people, fmt, status, mimetype) -> None:
    _token, plain = tokens.issue_token(people["trainee"], "test", 1, actor=None)
    db.session.commit()
    response = app.test_client().get(
        f"/api/v1/me/transcript?format={fmt}", headers={"Authorization": f"Bearer {plain}"}
    )
    assert response.status_code == status and response.mimetype == mimetype
    if fmt == "json":
        item = response.get_json()["items"][0]
        assert (item["online_minutes"], item["offline_minutes"]) == (60, 60)
        assert [line["unit_key"] for line in item["lines"]] == ["m01-l01-intro", "m01-quiz", "m01-lab"]
