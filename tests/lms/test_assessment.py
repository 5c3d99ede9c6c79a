# ruff: noqa: F811  (pytest fixtures imported from test_completion are redefined as arguments)
"""Separate assessment: handover of eligible trainees only (all or nothing), exam sessions with seats in the
site's rooms, admission slips, and the results CSV (UTF-8 or GBK; any bad row records nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from lms.extensions import db
from lms.models import (
    AuditLog,
    Candidate,
    CandidateStatus,
    Certificate,
    ExamRoom,
    Handover,
    Institution,
    Role,
    User,
)
from lms.services import assessment
from lms.services import cohorts as cohort_service
from tests.conftest import csrf_from
from tests.lms.test_completion import (  # noqa: F401  (fixtures)
    certificate,
    cohort,
    course_dir,
)

HEADER = "准考证号,姓名,结果,成绩,证书编号\n"


@pytest.fixture
def site(people) -> Institution:
    found = db.session.scalar(select(Institution).where(Institution.code == "AS"))
    assert found is not None  # the people fixture's assessment site, where assessor1 works
    return found


@pytest.fixture
def room(site, people) -> ExamRoom:
    made = assessment.create_room(site, "K101", "第一考场", 30, people["assessor"])
    db.session.commit()
    return made


@pytest.fixture
def outsider(create_user, cohort) -> User:
    """A second trainee of the cohort, who has done nothing."""
    user = create_user(Role.TRAINEE, username="trainee2", real_name="李娜")
    cohort_service.enroll(user, cohort)
    db.session.commit()
    return user


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def _handed_over(cohort, site, people) -> Candidate:
    assessment.hand_over(cohort, site, [people["trainee"]], people["trainer"])
    db.session.commit()
    candidate = db.session.scalar(select(Candidate))
    assert candidate is not None
    return candidate


def _seated(cohort, site, room, people) -> Candidate:
    candidate = _handed_over(cohort, site, people)
    starts = assessment.local_to_utc(site, datetime(2027, 3, 6, 9, 0))
    assessment.schedule_exam(site, room, starts, 120, [candidate], people["assessor"])
    db.session.commit()
    return candidate


# --- handover --------------------------------------------------------------------------------------------


def test_handover_takes_eligible_trainees_and_numbers_them(certificate, cohort, site, people) -> None:
    candidate = _handed_over(cohort, site, people)
    assert candidate.status == CandidateStatus.WAITING and candidate.certificate_id == certificate.id
    assert candidate.number == f"AS-{candidate.handover.handed_over_at.year}-{candidate.id:06d}"
    line = db.session.scalar(select(AuditLog).where(AuditLog.action == "assessment.handed_over"))
    assert line is not None and line.details["trainees"] == ["trainee1"]
    # the roster is the site's now: the training base cannot hand the trainee over again
    with pytest.raises(assessment.AssessmentError, match="Already handed over"):
        assessment.hand_over(cohort, site, [people["trainee"]], people["trainer"])
    assert assessment.candidates_to_hand_over(cohort) == []


def test_a_handover_with_one_ineligible_trainee_hands_over_nobody(
    certificate,
    cohort,
    site,
    people,
    outsider,
) -> None:
    with pytest.raises(assessment.NotEligible) as raised:
        assessment.hand_over(cohort, site, [people["trainee"], outsider], people["trainer"])
    assert raised.value.names == ["李娜"]
    db.session.rollback()
    assert _count(Handover) == 0 and _count(Candidate) == 0


def test_a_revoked_certificate_is_not_eligible(certificate, cohort, site, people) -> None:
    from lms.services.certificates import revoke_certificate

    revoke_certificate(certificate, people["admin"], "wrong person")
    with pytest.raises(assessment.NotEligible):
        assessment.hand_over(cohort, site, [people["trainee"]], people["trainer"])


def test_only_an_assessment_site_takes_a_roster(certificate, cohort, people) -> None:
    with pytest.raises(assessment.AssessmentError, match="not an assessment site"):
        assessment.hand_over(cohort, cohort.training_base, [people["trainee"]], people["trainer"])


# --- exam sessions ---------------------------------------------------------------------------------------


def test_scheduling_seats_candidates_in_site_time(certificate, cohort, site, room, people) -> None:
    candidate = _seated(cohort, site, room, people)
    session = candidate.exam_session
    assert session is not None and candidate.status == CandidateStatus.SCHEDULED
    assert session.starts_at == datetime(2027, 3, 6, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert 1 <= (candidate.seat or 0) <= room.seats


def test_scheduling_refuses_a_full_room_a_taken_room_and_seated_candidates(
    certificate,
    cohort,
    site,
    room,
    people,
) -> None:
    candidate = _handed_over(cohort, site, people)
    small = assessment.create_room(site, "K0", "小考场", 1, people["assessor"])
    starts = datetime(2027, 3, 6, 1, 0, tzinfo=UTC)
    assessment.schedule_exam(site, small, starts, 60, [candidate], people["assessor"])
    with pytest.raises(assessment.AssessmentError, match="Not waiting"):
        assessment.schedule_exam(site, room, starts, 60, [candidate], people["assessor"])
    retake = Candidate(
        handover_id=candidate.handover_id,
        site_id=site.id,
        cohort_id=cohort.id,
        user_id=candidate.user_id,
        certificate_id=candidate.certificate_id,
        attempt=2,
    )
    db.session.add(retake)
    db.session.flush()
    with pytest.raises(assessment.AssessmentError, match="taken by another exam"):
        assessment.schedule_exam(site, small, starts, 60, [retake], people["assessor"])
    with pytest.raises(assessment.AssessmentError, match="has 1 seats for 2"):
        assessment.schedule_exam(
            site, small, datetime(2027, 4, 1, tzinfo=UTC), 60, [retake, candidate], people["assessor"]
        )


def test_admission_slip_is_the_candidates_and_shows_the_seat(
    app,
    client,
    auth,
    certificate,
    cohort,
    site,
    room,
    people,
    outsider,
) -> None:
    import pypdf

    candidate = _seated(cohort, site, room, people)
    auth.login("trainee1")
    response = client.get(f"/assessment/candidates/{candidate.id}/admission-slip.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    from io import BytesIO

    text = pypdf.PdfReader(BytesIO(response.data)).pages[0].extract_text().replace(" ", "")
    assert "准考证" in text and candidate.number in text and "王志强" in text and "K101" in text
    assert f"座位号Seat{candidate.seat}" in text.replace("\n", "")
    other = app.test_client()
    page = other.get("/login").get_data(as_text=True)
    other.post(
        "/login", data={"username": "trainee2", "password": "correct-horse-9", "csrf_token": csrf_from(page)}
    )
    assert other.get(f"/assessment/candidates/{candidate.id}/admission-slip.pdf").status_code == 404


# --- results ---------------------------------------------------------------------------------------------


def _results(
    candidate: Candidate, result: str = "合格", *, extra: str = "", encoding: str = "utf-8"
) -> bytes:
    row = f"{candidate.number},王志强,{result},86,{'AIET-2027-0001' if result == '合格' else ''}\n"
    return (HEADER + row + extra).encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_a_pass_records_the_level_certificate(certificate, cohort, site, room, people, encoding) -> None:
    candidate = _seated(cohort, site, room, people)
    report = assessment.import_results(site, _results(candidate, encoding=encoding), people["assessor"])
    db.session.commit()
    assert (report.passed, report.failed, report.retakes) == (1, 0, 0)
    assert candidate.status == CandidateStatus.PASSED and candidate.level_certificate_no == "AIET-2027-0001"
    assert candidate.score == 86 and candidate.result_recorded_at is not None


def test_a_fail_opens_a_retake(certificate, cohort, site, room, people) -> None:
    candidate = _seated(cohort, site, room, people)
    report = assessment.import_results(site, _results(candidate, "不合格"), people["assessor"])
    db.session.commit()
    assert (report.failed, report.retakes) == (1, 1)
    retake = db.session.scalar(select(Candidate).where(Candidate.retake_of_id == candidate.id))
    assert retake is not None and retake.attempt == 2 and retake.status == CandidateStatus.WAITING
    assert retake.number and retake.number != candidate.number


@pytest.mark.parametrize(
    ("make", "line", "message"),
    [
        (lambda c: HEADER + "AS-2027-999999,王志强,合格,90,X\n", 2, "No candidate AS-2027-999999"),
        (
            lambda c: HEADER + f"{c.number},王志强,合格,90,X\n{c.number},王志强,合格,90,X\n",
            3,
            "also on line 2",
        ),
        (lambda c: HEADER + f"{c.number},李娜,合格,90,X\n", 2, "is 王志强, not 李娜"),
        (lambda c: HEADER + f"{c.number},王志强,优秀,90,X\n", 2, "not one of 合格"),
        (lambda c: HEADER + f"{c.number},王志强,合格,90,\n", 2, "needs the level certificate"),
        (lambda c: HEADER + f"{c.number},王志强,合格,120,X\n", 2, "not a number from 0 to 100"),
        (lambda c: "编号,姓名\n", 1, "Missing column(s): 准考证号, 结果"),
    ],
    ids=["unknown", "duplicate", "wrong-name", "bad-result", "no-certificate", "bad-score", "columns"],
)
def test_a_bad_row_records_nothing(certificate, cohort, site, room, people, make, line, message) -> None:
    candidate = _seated(cohort, site, room, people)
    with pytest.raises(assessment.ResultsInvalid) as raised:
        assessment.import_results(site, make(candidate).encode(), people["assessor"])
    assert any(p.line == line and message in p.message for p in raised.value.problems), raised.value.problems
    db.session.rollback()
    db.session.refresh(candidate)
    assert candidate.status == CandidateStatus.SCHEDULED and _count(Candidate) == 1


def test_a_file_in_neither_utf8_nor_gbk_is_refused(certificate, cohort, site, room, people) -> None:
    candidate = _seated(cohort, site, room, people)
    with pytest.raises(assessment.ResultsInvalid) as raised:
        assessment.import_results(site, _results(candidate, encoding="utf-16"), people["assessor"])
    assert "neither UTF-8 nor GBK" in raised.value.problems[0].message


# --- the pages -------------------------------------------------------------------------------------------


def test_assessor_schedules_and_imports_through_the_pages(
    client,
    auth,
    certificate,
    cohort,
    site,
    room,
    people,
) -> None:
    candidate = _handed_over(cohort, site, people)
    auth.login("assessor1")
    page = client.get(f"/assessment/sites/{site.id}").get_data(as_text=True)
    assert candidate.number in page and cohort.code in page
    response = client.post(
        f"/assessment/sites/{site.id}/exams",
        data={
            "csrf_token": csrf_from(page),
            "room": room.id,
            "day": "2027-03-06",
            "start": "09:00",
            "minutes": "120",
            "candidate": str(candidate.id),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Candidate, candidate.id).status == CandidateStatus.SCHEDULED
    from io import BytesIO

    bad = (HEADER + "AS-2027-999999,王志强,合格,90,X\n").encode("gbk")
    response = client.post(
        f"/assessment/sites/{site.id}/results",
        data={"csrf_token": csrf_from(page), "file": (BytesIO(bad), "results.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "Line 2: No candidate AS-2027-999999" in response.get_data(
        as_text=True
    )
    good = _results(db.session.get(Candidate, candidate.id), encoding="gbk")
    response = client.post(
        f"/assessment/sites/{site.id}/results",
        data={"csrf_token": csrf_from(page), "file": (BytesIO(good), "results.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Candidate, candidate.id).status == CandidateStatus.PASSED


def test_assessors_cannot_touch_training_records(client, auth, certificate, cohort, site, people) -> None:
    auth.login("assessor1")
    page = client.get("/dashboard").get_data(as_text=True)
    assert client.get(f"/cohorts/{cohort.id}/eligibility").status_code == 403
    revoke = client.post(
        f"/certificates/{certificate.serial}/revoke", data={"csrf_token": csrf_from(page), "reason": "x"}
    )
    assert revoke.status_code == 403
    hand = client.post(
        f"/cohorts/{cohort.id}/handover", data={"csrf_token": csrf_from(page), "site": site.id}
    )
    assert hand.status_code == 403
    db.session.expire_all()
    assert not db.session.get(Certificate, certificate.id).revoked and _count(Handover) == 0


def test_trainer_hands_over_from_the_eligibility_page(
    client, auth, certificate, cohort, site, people
) -> None:
    auth.login("trainer1")
    page = client.get(f"/cohorts/{cohort.id}/eligibility").get_data(as_text=True)
    assert "Hand over to an assessment site" in page
    response = client.post(
        f"/cohorts/{cohort.id}/handover",
        data={"csrf_token": csrf_from(page), "site": site.id, "trainee": str(people["trainee"].id)},
    )
    assert response.status_code == 302
    assert _count(Candidate) == 1
    page = client.get(f"/cohorts/{cohort.id}/eligibility").get_data(as_text=True)
    assert "Hand over to an assessment site" not in page and "waiting for an exam" in page
