# ruff: noqa: F811  (pytest fixtures imported from test_completion are redefined as arguments)
"""Hours transcripts (data, CSV, PDF, page, API), the subsidy evidence pack, and the audit log viewer.

The evidence goes through the real signals (lesson completed, quiz passed, lab attendance, exercise
graded), so the ledger lines, the completion check and the certificate are the ones production makes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime

import pypdf
import pytest
from sqlalchemy import select

from lms import signals
from lms.extensions import db
from lms.models import AuditLog, Certificate, Cohort, Delivery, HoursSource, Role, User
from lms.services import accounts, audit, cohorts, learning, tokens
from lms.services.certificates import revoke_certificate
from lms.services.hours import credit_hours
from lms.services.transcript import TRANSCRIPT_COLUMNS, _cell, transcript, transcript_csv, transcript_pdf
from tests.conftest import PASSWORD, csrf_from
from tests.lms.test_completion import (  # noqa: F401  (fixtures and helpers)
    ALL_RIGHT,
    _grade_exercise,
    cohort,
    course_dir,
)

LAB_EVIDENCE = {
    "kind": "lab_attendance",
    "occurrence_id": 7,
    "unit_key": "m01-lab",
    "room": "B204",
    "site": "MAIN",
    "starts_at": "2026-03-03T01:00:00+00:00",  # 09:00 in Shanghai
    "ends_at": "2026-03-03T02:00:00+00:00",
    "checked_in_at": "2026-03-03T00:55:00+00:00",
    "attendance": "attended",
}


def _earn_the_certificate(trainee: User, cohort: Cohort) -> Certificate:
    """Everything the tiny course asks for, with the evidence production sends."""
    signals.lesson_completed.send(
        None,
        user=trainee,
        cohort=cohort,
        unit_id="m01-l01-intro",
        minutes=40,
        evidence={"active_seconds": 2460, "completed_at": "2026-03-02T01:00:00+00:00", "unit_kind": "lesson"},
    )
    quiz = learning.get_unit(cohort, "m01-quiz")
    assert quiz is not None
    learning.submit_quiz(trainee, cohort, quiz, ALL_RIGHT, attempt_number=1, locale="en")
    signals.lesson_completed.send(
        None,
        user=trainee,
        cohort=cohort,
        unit_id="m01-quiz",
        minutes=20,
        evidence={
            "active_seconds": 600,
            "completed_at": "2026-03-02T02:00:00+00:00",
            "unit_kind": "quiz",
            "best_score": 100.0,
        },
    )
    signals.lab_attendance_recorded.send(
        None, user=trainee, cohort=cohort, occurrence_id=7, minutes=60, evidence=LAB_EVIDENCE
    )
    _grade_exercise(trainee, cohort, 3.0)
    db.session.commit()
    found = db.session.scalar(select(Certificate).where(Certificate.user_id == trainee.id))
    assert found is not None
    return found


@pytest.fixture
def certificate(cohort, people) -> Certificate:
    trainee = people["trainee"]
    trainee.real_name = "王志强"
    trainee.employer = "=cmd|' /C calc'!A0"  # a formula where a spreadsheet would run it
    trainee.phone = "13800000000"
    return _earn_the_certificate(trainee, cohort)


def _rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel reads the UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _as_dicts(data: bytes) -> list[dict[str, str]]:
    header, *rows = _rows(data)
    return [dict(zip(header, row, strict=True)) for row in rows]


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def _sign_in(app, username: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    login = {"username": username, "password": PASSWORD, "csrf_token": csrf_from(page)}
    assert client.post("/login", data=login).status_code == 302
    return client


# --- the transcript as data -------------------------------------------------------------------------------


def test_transcript_lists_every_credit_with_its_evidence(certificate, cohort, people) -> None:
    t = transcript(people["trainee"], cohort)
    assert [(line.source, line.unit_key, line.minutes, line.delivery) for line in t.lines] == [
        (HoursSource.ONLINE_UNIT, "m01-l01-intro", 40, Delivery.ONLINE),
        (HoursSource.ONLINE_UNIT, "m01-quiz", 20, Delivery.ONLINE),
        (HoursSource.LAB_ATTENDANCE, "m01-lab", 60, Delivery.OFFLINE),
    ]
    lesson, quiz, lab = t.lines
    assert lesson.title == {"zh_CN": "引言", "en": "Introduction"} and lesson.active_minutes == 41
    assert lesson.at == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert quiz.score == 100.0 and quiz.active_minutes == 10
    assert lab.title["zh_CN"] == "实验" and (lab.site, lab.room, lab.attendance) == (
        "MAIN",
        "B204",
        "attended",
    )
    assert lab.checked_in_at == datetime(2026, 3, 3, 0, 55, tzinfo=UTC)
    assert lab.at == lab.starts_at == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert (t.online_minutes, t.offline_minutes, t.total_minutes) == (60, 60, 120)
    assert [(total.cohort.id, total.online_minutes, total.offline_minutes) for total in t.totals] == [
        (cohort.id, 60, 60)
    ]
    assert [(e.unit_key, e.title["en"], e.best_percent) for e in t.exercises] == [
        ("ex01-double", "Doubling", 100.0)
    ]
    assert str(t.timezone) == "Asia/Shanghai"  # the training base's zone


def test_a_transcript_without_cohort_covers_every_cohort_with_totals_each(
    certificate, cohort, people, create_cohort
) -> None:
    trainee = people["trainee"]
    other = create_cohort(code="AIET-P-T2")
    cohorts.enroll(trainee, other)
    credit_hours(
        trainee,
        other,
        source=HoursSource.ADJUSTMENT,
        source_ref="transfer-1",
        delivery=Delivery.OFFLINE,
        minutes=90,
        evidence={"reason": "hours transferred from a paper register"},
        recorded_by=people["admin"],
    )
    db.session.commit()
    t = transcript(trainee)
    assert t.cohort is None and len(t.lines) == 4
    totals = {total.cohort.code: (total.online_minutes, total.offline_minutes) for total in t.totals}
    assert totals == {"AIET-P-T1": (60, 60), "AIET-P-T2": (0, 90)}
    assert t.total_minutes == 210
    adjustment = next(line for line in t.lines if line.source == HoursSource.ADJUSTMENT)
    assert adjustment.cohort_id == other.id and adjustment.note == "hours transferred from a paper register"
    # the cohort's own transcript leaves the other cohort out
    assert transcript(trainee, cohort).total_minutes == 120


# --- CSV -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tindent", "'\tindent"),
        ("王志强", "王志强"),
        (-10, "-10"),  # a number stays a number
        (None, ""),
        (True, "yes"),
    ],
)
def test_csv_cells_are_never_formulas(value, cell) -> None:
    assert _cell(value) == cell


def test_transcript_csv_has_a_row_per_line_with_its_evidence(certificate, cohort, people) -> None:
    credit_hours(
        people["trainee"],
        cohort,
        source=HoursSource.ADJUSTMENT,
        source_ref="correction-1",
        delivery=Delivery.OFFLINE,
        minutes=-10,
        evidence={"reason": '=HYPERLINK("http://x","fix")', "at": "2026-03-04T00:00:00+00:00"},
        recorded_by=people["admin"],
    )
    header, *_rest = _rows(transcript_csv(transcript(people["trainee"], cohort), "en"))
    assert header == TRANSCRIPT_COLUMNS
    rows = _as_dicts(transcript_csv(transcript(people["trainee"], cohort), "en"))
    assert [row["source"] for row in rows] == [
        "online_unit",
        "online_unit",
        "lab_attendance",
        "adjustment",
        "exercise_graded",
    ]
    lesson, _quiz, lab, adjustment, exercise = rows
    assert (lesson["date"], lesson["cohort"], lesson["title"]) == (
        "2026-03-02T09:00+08:00",
        "AIET-P-T1",
        "Introduction",
    )
    assert (lesson["minutes"], lesson["active_minutes"]) == ("40", "41")
    assert (lab["session_starts"], lab["session_ends"], lab["checked_in"]) == (
        "2026-03-03T09:00+08:00",
        "2026-03-03T10:00+08:00",
        "2026-03-03T08:55+08:00",
    )
    assert (lab["site"], lab["room"], lab["delivery"]) == ("MAIN", "B204", "offline")
    assert adjustment["minutes"] == "-10"
    assert adjustment["note"] == '\'=HYPERLINK("http://x","fix")'
    assert (exercise["unit"], exercise["score_percent"]) == ("ex01-double", "100.0")
    chinese = _as_dicts(transcript_csv(transcript(people["trainee"], cohort), "zh_CN"))
    assert chinese[0]["title"] == "引言"


# --- PDF -------------------------------------------------------------------------------------------------


def test_transcript_pdf_carries_the_name_units_and_totals(app, certificate, cohort, people) -> None:
    with app.test_request_context():
        data = transcript_pdf(transcript(people["trainee"], cohort), "en")
    reader = pypdf.PdfReader(io.BytesIO(data))
    box = reader.pages[0].mediabox
    assert float(box.height) > float(box.width)  # portrait
    text = _pdf_text(data)
    for expected in (
        "培训学时证明",
        "王志强",
        "引言",
        "Introduction",
        "东南理工大学继续教育学院",
        "B204",
        "120",
    ):
        assert expected in text, expected


# --- pages -----------------------------------------------------------------------------------------------


def test_transcript_page_links_its_csv_and_pdf(app, certificate, cohort, people) -> None:
    people["trainee"].locale = "en"
    db.session.commit()
    client = _sign_in(app, "trainee1")
    page = client.get("/me/transcript").get_data(as_text=True)
    assert "Introduction" in page and "B204" in page and "41 minutes of active study" in page
    assert f"/me/transcript.pdf?cohort_id={cohort.id}" in page
    assert f"/me/transcript.csv?cohort_id={cohort.id}" in page
    csv_response = client.get(f"/me/transcript.csv?cohort_id={cohort.id}")
    assert csv_response.mimetype == "text/csv" and _as_dicts(csv_response.data)[0]["unit"] == "m01-l01-intro"
    pdf = client.get("/me/transcript.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert "王志强" in _pdf_text(pdf.data)
    assert client.get("/me/transcript.pdf?cohort_id=999999").status_code == 404  # not their cohort


def test_the_page_shows_every_cohort_when_asked(app, certificate, people, create_cohort) -> None:
    other = create_cohort(code="AIET-P-T2")
    cohorts.enroll(people["trainee"], other)
    db.session.commit()
    client = _sign_in(app, "trainee1")
    page = client.get("/me/transcript?cohort_id=all").get_data(as_text=True)
    assert "AIET-P-T1" in page and "AIET-P-T2" in page and 'value="all" selected' in page
    assert client.get("/me/transcript.csv?cohort_id=all").status_code == 200
    text = _pdf_text(client.get("/me/transcript.pdf?cohort_id=all").data)
    assert "AIET-P-T1" in text and "AIET-P-T2" in text


def test_someone_without_enrollments_sees_a_message_and_no_files(app, people) -> None:
    client = _sign_in(app, "trainer1")
    assert "not enrolled in any cohort" in client.get("/me/transcript").get_data(as_text=True)
    assert client.get("/me/transcript.pdf").status_code == 404


def test_trainers_print_their_trainees_transcripts_and_nobody_elses(
    app, create_user, certificate, cohort, people
) -> None:
    path = f"/cohorts/{cohort.id}/trainees/{people['trainee'].id}/transcript.pdf"
    response = _sign_in(app, "trainer1").get(path)
    assert response.status_code == 200 and "王志强" in _pdf_text(response.data)
    assert _sign_in(app, "admin1").get(path).status_code == 200
    create_user(Role.TRAINER, username="trainer9")
    db.session.commit()
    assert _sign_in(app, "trainer9").get(path).status_code == 404  # not this cohort's trainer
    stranger = f"/cohorts/{cohort.id}/trainees/{people['admin'].id}/transcript.pdf"
    assert _sign_in(app, "trainer1").get(stranger).status_code == 404  # not enrolled
    assert _sign_in(app, "trainee1").get(path).status_code == 403  # trainees use /me/transcript


# --- the subsidy evidence pack ---------------------------------------------------------------------------


def test_subsidy_pack_holds_roster_attendance_completion_and_certificates(
    app, certificate, cohort, people
) -> None:
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
    readme = pack.read("README.txt").decode()
    assert "培训补贴证明材料" in readme and "Training subsidy evidence pack" in readme
    assert all(name in readme for name in pack.namelist() if name != "README.txt")

    [trainee] = _as_dicts(pack.read("roster.csv"))
    assert (trainee["username"], trainee["real_name"], trainee["phone"]) == (
        "trainee1",
        "王志强",
        "13800000000",
    )
    assert trainee["employer"] == "'=cmd|' /C calc'!A0"
    assert trainee["status"] == "completed" and trainee["completed_on"] and trainee["enrolled_on"]

    [lab] = _as_dicts(pack.read("attendance.csv"))
    assert (lab["username"], lab["unit"], lab["title"], lab["minutes"]) == (
        "trainee1",
        "m01-lab",
        "实验",
        "60",
    )
    assert (lab["checked_in"], lab["room"], lab["site"]) == ("2026-03-03T08:55+08:00", "B204", "MAIN")

    [done] = _as_dicts(pack.read("completion.csv"))
    assert (done["online_hours"], done["offline_hours"], done["total_hours"]) == ("1.0", "1.0", "2.0")
    assert (done["eligible"], done["requirements_left"]) == ("yes", "")

    [issued] = _as_dicts(pack.read("certificates.csv"))
    assert (issued["serial"], issued["real_name"], issued["revoked"]) == (certificate.serial, "王志强", "no")
    assert issued["verification_url"] == f"http://localhost/verify/{certificate.serial}"
    pdf = pypdf.PdfReader(io.BytesIO(pack.read("certificates.pdf")))
    assert len(pdf.pages) == 1 and certificate.serial in pdf.pages[0].extract_text()

    line = db.session.scalar(select(AuditLog).where(AuditLog.action == "subsidy_pack.downloaded"))
    assert line is not None and line.actor_id == people["admin"].id
    assert (line.target_type, line.target_id) == ("Cohort", str(cohort.id))


def test_the_pack_lists_every_certificate_and_prints_only_standing_ones(
    app, create_user, certificate, cohort, people
) -> None:
    second = create_user(Role.TRAINEE, username="trainee2", real_name="李娜")
    cohorts.enroll(second, cohort)
    db.session.flush()
    standing = _earn_the_certificate(second, cohort)
    revoke_certificate(certificate, people["admin"], "issued on a wrong register")
    db.session.commit()
    pack = zipfile.ZipFile(
        io.BytesIO(_sign_in(app, "admin1").get(f"/cohorts/{cohort.id}/subsidy-pack.zip").data)
    )
    listed = {row["serial"]: row["revoked"] for row in _as_dicts(pack.read("certificates.csv"))}
    assert listed == {certificate.serial: "yes", standing.serial: "no"}
    text = _pdf_text(pack.read("certificates.pdf"))
    assert standing.serial in text and certificate.serial not in text
    assert len(_as_dicts(pack.read("attendance.csv"))) == 2


def test_only_the_cohorts_admins_get_the_pack(
    app, create_user, create_institution, certificate, cohort
) -> None:
    elsewhere = create_institution(code="TB2", name="另一个培训基地")
    create_user(Role.ADMIN, institution=elsewhere, username="admin9")
    db.session.commit()
    path = f"/cohorts/{cohort.id}/subsidy-pack.zip"
    assert _sign_in(app, "trainer1").get(path).status_code == 404  # teaches it, but is no admin
    assert _sign_in(app, "admin9").get(path).status_code == 404  # admin of another training base
    assert _sign_in(app, "trainee1").get(path).status_code == 403
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "subsidy_pack.downloaded")) is None


# --- the audit log ---------------------------------------------------------------------------------------


def _audit_rows(page: str, action: str) -> int:
    return page.count(f"<code>{action}</code>")


def test_audit_page_filters_by_action_actor_and_record_type(app, certificate, people) -> None:
    people["admin"].locale = "en"
    audit.record("tz.check", people["trainer"], None, b=1, a="x")
    db.session.flush()
    db.session.scalar(select(AuditLog).where(AuditLog.action == "tz.check")).at = datetime(  # type: ignore[union-attr]
        2026, 1, 1, 0, 30, tzinfo=UTC
    )
    db.session.commit()
    client = _sign_in(app, "admin1")
    everything = client.get("/admin/audit").get_data(as_text=True)
    assert _audit_rows(everything, "certificate.issued") == 1 and _audit_rows(everything, "tz.check") == 1
    by_action = client.get("/admin/audit?action=certificate.").get_data(as_text=True)
    assert _audit_rows(by_action, "certificate.issued") == 1 and certificate.serial in by_action
    assert _audit_rows(by_action, "enrollment.created") == 0 and _audit_rows(by_action, "tz.check") == 0
    by_actor = client.get("/admin/audit?actor=TRAINER1").get_data(as_text=True)
    assert _audit_rows(by_actor, "tz.check") == 1 and _audit_rows(by_actor, "certificate.issued") == 0
    by_type = client.get("/admin/audit?target=Enrollment").get_data(as_text=True)
    assert _audit_rows(by_type, "enrollment.created") == 1 and _audit_rows(by_type, "certificate.issued") == 0
    assert "Nothing matches." in client.get("/admin/audit?actor=nobody").get_data(as_text=True)
    assert "Nothing matches." in client.get("/admin/audit?action=%25").get_data(as_text=True)  # no wildcard
    # compact JSON, and the time in the viewer's zone (Asia/Shanghai: 08:30, not 00:30)
    assert "{&#34;a&#34;:&#34;x&#34;,&#34;b&#34;:1}" in by_actor
    assert "8:30" in by_actor and "12:30" not in by_actor


def test_audit_pages_hold_fifty_lines_newest_first(app, people) -> None:
    for n in range(51):
        audit.record("bulk.test", None, None, n=n)
        db.session.flush()
    db.session.commit()
    client = _sign_in(app, "admin1")
    first = client.get("/admin/audit?action=bulk.").get_data(as_text=True)
    assert _audit_rows(first, "bulk.test") == 50 and "Page 1 of 2" in first
    assert first.index("&#34;n&#34;:50") < first.index("&#34;n&#34;:49")  # newest first
    second = client.get("/admin/audit?action=bulk.&page=2").get_data(as_text=True)
    assert _audit_rows(second, "bulk.test") == 1 and "&#34;n&#34;:0}" in second


def test_institution_admins_see_their_peoples_lines_and_the_systems(
    app, create_user, create_institution, dummy_training_base, certificate, people
) -> None:
    # (the create_user fixture makes admins of the dummy base platform admins)
    accounts.create_user(
        username="baseadmin",
        real_name="基地管理员",
        password=PASSWORD,
        grants=[(Role.ADMIN, dummy_training_base)],
    )
    elsewhere = create_institution(code="TB2", name="另一个培训基地")
    outsider = create_user(Role.ADMIN, institution=elsewhere, username="admin9")
    audit.record("outside.action", outsider, None)
    audit.record("inside.action", people["trainer"], None)
    db.session.commit()
    page = _sign_in(app, "baseadmin").get("/admin/audit").get_data(as_text=True)
    assert _audit_rows(page, "inside.action") == 1
    assert _audit_rows(page, "certificate.issued") == 1  # the system's own line
    assert _audit_rows(page, "outside.action") == 0
    platform = _sign_in(app, "admin1").get("/admin/audit").get_data(as_text=True)
    assert _audit_rows(platform, "outside.action") == 1
    assert _sign_in(app, "trainer1").get("/admin/audit").status_code == 403


# --- the API ---------------------------------------------------------------------------------------------


@pytest.fixture
def bearer(certificate, people) -> dict[str, str]:
    _token, plain = tokens.issue_token(people["trainee"], "test", 1, actor=None)
    db.session.commit()
    return {"Authorization": f"Bearer {plain}"}


def test_api_transcript_as_json(app, bearer, cohort) -> None:
    response = app.test_client().get("/api/v1/me/transcript", headers=bearer)
    assert response.status_code == 200
    [item] = response.get_json()["items"]
    assert (item["cohort_id"], item["cohort_code"], item["online_minutes"], item["offline_minutes"]) == (
        cohort.id,
        "AIET-P-T1",
        60,
        60,
    )
    assert [line["unit_key"] for line in item["lines"]] == ["m01-l01-intro", "m01-quiz", "m01-lab"]
    lab = item["lines"][2]
    assert (lab["source"], lab["delivery"], lab["title"]["en"]) == ("lab_attendance", "offline", "Lab")
    assert lab["evidence"]["checked_in_at"] == "2026-03-03T00:55:00+00:00"
    assert (lab["evidence"]["room"], lab["evidence"]["active_minutes"]) == ("B204", None)
    assert item["lines"][0]["evidence"]["active_minutes"] == 41
    assert item["exercises"] == [
        {
            "unit_key": "ex01-double",
            "title": {"zh_CN": "加倍", "en": "Doubling"},
            "best_percent": 100.0,
            "attempts": 1,
        }
    ]


@pytest.mark.parametrize(("fmt", "mimetype"), [("csv", "text/csv"), ("pdf", "application/pdf")])
def test_api_transcript_as_a_file(app, bearer, fmt, mimetype) -> None:
    response = app.test_client().get(f"/api/v1/me/transcript?format={fmt}", headers=bearer)
    assert response.status_code == 200 and response.mimetype == mimetype
    if fmt == "csv":
        assert [row["unit"] for row in _as_dicts(response.data)][:3] == [
            "m01-l01-intro",
            "m01-quiz",
            "m01-lab",
        ]
    else:
        assert "王志强" in _pdf_text(response.data)


def test_api_transcript_refuses_an_unknown_format(app, bearer) -> None:
    response = app.test_client().get("/api/v1/me/transcript?format=xml", headers=bearer)
    assert response.status_code == 400 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == "bad_request" and "xml" in body["message"]
    assert app.test_client().get("/api/v1/me/transcript").status_code == 401
