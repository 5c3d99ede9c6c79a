"""The graders JSON API: listing assignments, downloading the release, handing in and polling the status."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from graders import services
from graders.models import Assignment, GradingJob, Submission
from lms.extensions import db
from lms.models import Role
from lms.services import cohorts, tokens
from lms.timeutil import utcnow
from tests.graders.conftest import HIDDEN_SECRET, answer

API = "/api/v1"
WRONG_ADD = {"sol-add": "def add(a, b):\n    return 0", "sol-mul": "def mul(a, b):\n    return a * b"}


@pytest.fixture
def call(client):
    """call(user, method, path, **kwargs) -> response, with a fresh bearer token of the user."""

    def call(user, method: str, path: str, **kwargs):
        _token, plaintext = tokens.issue_token(user, "test", None, actor=None)
        db.session.commit()
        return client.open(path, method=method, headers={"Authorization": f"Bearer {plaintext}"}, **kwargs)

    return call


@pytest.fixture
def upload(call):
    """upload(user, assignment_id, data, filename="small.ipynb") -> response of the multipart POST."""

    def upload(user, assignment_id: int, data: bytes, filename: str = "small.ipynb"):
        return call(
            user,
            "POST",
            f"{API}/assignments/{assignment_id}/submissions",
            data={"file": (io.BytesIO(data), filename)},
            content_type="multipart/form-data",
        )

    return upload


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    """Job ids the API hands to the broker (recorded instead of sent)."""
    sent: list[int] = []
    monkeypatch.setattr("graders.tasks.dispatch", lambda ids: sent.extend(ids))
    return sent


@pytest.fixture
def outsider(create_user, create_cohort):
    """A trainee of another cohort."""
    user = create_user(Role.TRAINEE, username="outsider")
    cohorts.enroll(user, create_cohort(code="OTHER"))
    db.session.commit()
    return user


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message"} and body["error"] == code and body["message"]
    return body


def unreleased(cohort) -> Assignment:
    """An assignment of ``cohort`` whose release notebook has not been made yet."""
    assignment = Assignment(
        cohort=cohort,
        unit_key="later",
        slug="later",
        notebook="later",
        title={"en": "Later"},
        source_notebook="{}",
        source_sha256="0" * 64,
    )
    db.session.add(assignment)
    db.session.commit()
    return assignment


# --- listing and downloading -----------------------------------------------------------------------------


def test_list_gives_the_trainees_released_assignments(call, people, small_assignment, outsider):
    unreleased(small_assignment.cohort)
    response = call(people["trainee"], "GET", f"{API}/assignments")
    assert response.status_code == 200
    [item] = response.get_json()["assignments"]
    assert item["id"] == small_assignment.id and item["slug"] == "small"
    assert item["title"] == "Small exercise" and item["cohort"] == "AIET-P-T1"
    assert item["due_at"] is None and item["cutoff_at"] is None
    assert item["max_points"] == 7.0 and item["max_submissions"] == small_assignment.max_submissions
    assert item["submissions_used"] == 0 and item["latest_submission"] is None
    assert item["download_url"] == f"http://localhost{API}/assignments/{small_assignment.id}/release"
    for user in (outsider, people["trainer"], people["assessor"], people["admin"]):
        assert call(user, "GET", f"{API}/assignments").get_json() == {"assignments": []}


def test_list_titles_follow_the_token_users_locale(call, people, small_assignment):
    people["trainee"].locale = "zh_CN"
    db.session.commit()
    [item] = call(people["trainee"], "GET", f"{API}/assignments").get_json()["assignments"]
    assert item["title"] == "小练习"


def test_list_shows_rules_in_utc_and_the_latest_submission(
    call, upload, people, create_assignment, dispatched
):
    due = utcnow().replace(microsecond=0) + timedelta(days=3)
    assignment = create_assignment(due_at=due, cutoff_at=due + timedelta(days=2), late_penalty_percent=25.0)
    receipt = upload(people["trainee"], assignment.id, answer(assignment)).get_json()
    [item] = call(people["trainee"], "GET", f"{API}/assignments").get_json()["assignments"]
    assert item["due_at"] == due.isoformat() and item["due_at"].endswith("+00:00")
    assert item["cutoff_at"] == (due + timedelta(days=2)).isoformat()
    assert item["late_penalty_percent"] == 25.0 and item["submissions_used"] == 1
    assert item["latest_submission"] == {
        "id": receipt["id"],
        "status": "queued",
        "score": None,
        "url": receipt["status_url"],
    }


def test_download_gives_the_release_notebook_without_solutions_or_hidden_tests(
    call, people, small_assignment
):
    response = call(people["trainee"], "GET", f"{API}/assignments/{small_assignment.id}/release")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ipynb+json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="small.ipynb"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    text = response.get_data(as_text=True)
    assert HIDDEN_SECRET not in text and "BEGIN SOLUTION" not in text
    assert "NotImplementedError" in text
    notebook = json.loads(text)
    assert notebook["nbformat"] == 4 and notebook["metadata"]["lms"] == {"assignment": "small"}
    trainer_copy = call(people["trainer"], "GET", f"{API}/assignments/{small_assignment.id}/release")
    assert trainer_copy.get_data() == response.get_data()


def test_download_is_404_for_outsiders_unknown_ids_and_before_release(
    call, people, small_assignment, outsider
):
    later = unreleased(small_assignment.cohort)
    assert_error(call(outsider, "GET", f"{API}/assignments/{small_assignment.id}/release"), 404, "not_found")
    assert_error(
        call(people["assessor"], "GET", f"{API}/assignments/{small_assignment.id}/release"), 404, "not_found"
    )
    assert_error(call(people["trainee"], "GET", f"{API}/assignments/{later.id}/release"), 404, "not_found")
    assert_error(call(people["trainee"], "GET", f"{API}/assignments/999999/release"), 404, "not_found")
    assert_error(call(people["trainee"], "GET", f"{API}/assignments/{2**40}/release"), 404, "not_found")


# --- handing in ------------------------------------------------------------------------------------------


def test_upload_is_stored_queued_and_acknowledged_with_201(upload, people, small_assignment, dispatched):
    data = answer(small_assignment)
    response = upload(people["trainee"], small_assignment.id, data)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"id", "attempt", "sha256", "submitted_at", "status", "status_url"}
    assert body["attempt"] == 1 and body["status"] == "queued"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["status_url"] == f"http://localhost{API}/submissions/{body['id']}"
    assert response.headers["Location"] == body["status_url"]
    submission = db.session.get(Submission, body["id"])
    assert submission.content == data and submission.filename == "small.ipynb"
    assert submission.submitted_at.isoformat() == body["submitted_at"]
    jobs = db.session.scalars(select(GradingJob.id).where(GradingJob.submission_id == body["id"])).all()
    assert len(jobs) == 1 and dispatched == jobs


def test_identical_reupload_answers_200_with_the_same_submission(
    upload, people, small_assignment, dispatched
):
    data = answer(small_assignment)
    first = upload(people["trainee"], small_assignment.id, data)
    again = upload(people["trainee"], small_assignment.id, data)
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json() == first.get_json()
    assert (
        db.session.scalar(
            select(func.count()).select_from(GradingJob).where(GradingJob.submission_id.is_not(None))
        )
        == 1
    )
    assert len(dispatched) == 1
    changed = upload(people["trainee"], small_assignment.id, answer(small_assignment, WRONG_ADD))
    assert changed.status_code == 201 and changed.get_json()["attempt"] == 2


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "not_json"),
        (b"", "empty"),
        (
            json.dumps(
                {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}
            ).encode(),
            "old_format",
        ),
        ("笔记本".encode("gbk"), "not_utf8"),
        (b"[1, 2, 3]", "not_notebook"),
    ],
    ids=["invalid-json", "empty", "nbformat-3", "gbk", "json-list"],
)
def test_ungradable_files_are_refused_with_422_and_their_code(
    upload, people, small_assignment, dispatched, data, code
):
    body = assert_error(upload(people["trainee"], small_assignment.id, data), 422, code)
    assert len(body["message"]) > 10
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
    assert dispatched == []


def test_upload_over_the_grader_limit_is_422_and_over_the_body_limit_413(
    app, upload, people, small_assignment, dispatched
):
    app.config["GRADER_MAX_UPLOAD_BYTES"] = 1000
    body = assert_error(upload(people["trainee"], small_assignment.id, b" " * 2000), 422, "too_large")
    assert "limit" in body["message"]
    app.config["MAX_CONTENT_LENGTH"] = 4000
    assert_error(upload(people["trainee"], small_assignment.id, b" " * 5000), 413, "too_large")
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_upload_refusals_401_400_403_404(client, call, upload, people, small_assignment, outsider):
    path = f"{API}/assignments/{small_assignment.id}/submissions"
    data = answer(small_assignment)
    assert_error(client.post(path, data={"file": (io.BytesIO(data), "a.ipynb")}), 401, "unauthenticated")
    assert_error(call(people["trainee"], "POST", path), 400, "missing_file")
    assert_error(
        call(people["trainee"], "POST", path, data={"other": "x"}, content_type="multipart/form-data"),
        400,
        "missing_file",
    )
    assert_error(upload(people["trainer"], small_assignment.id, data), 403, "forbidden")
    assert_error(upload(outsider, small_assignment.id, data), 404, "not_found")
    assert_error(upload(people["trainee"], 999999, data), 404, "not_found")
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_upload_refusals_by_the_rules_are_409(upload, people, create_assignment, dispatched):
    assignment = create_assignment(max_submissions=1)
    assert upload(people["trainee"], assignment.id, answer(assignment)).status_code == 201
    body = assert_error(
        upload(people["trainee"], assignment.id, answer(assignment, WRONG_ADD)), 409, "submission_limit"
    )
    assert "1" in body["message"]

    assignment.cutoff_at = utcnow() - timedelta(minutes=1)
    assignment.max_submissions = 5
    db.session.commit()
    assert_error(upload(people["trainee"], assignment.id, answer(assignment, WRONG_ADD)), 409, "past_cutoff")

    later = unreleased(assignment.cohort)
    assert_error(upload(people["trainee"], later.id, answer(assignment)), 409, "not_released")


def test_notebook_of_another_assignment_is_refused(upload, people, create_assignment, dispatched):
    small = create_assignment()
    other = create_assignment(slug="other", title={"en": "Other"})
    body = assert_error(upload(people["trainee"], other.id, answer(small)), 422, "wrong_assignment")
    assert "small" in body["message"]


# --- status ----------------------------------------------------------------------------------------------


def test_status_follows_grading_to_the_final_score(
    call, upload, people, small_assignment, grade_pending, dispatched
):
    receipt = upload(people["trainee"], small_assignment.id, answer(small_assignment)).get_json()
    path = f"{API}/submissions/{receipt['id']}"
    queued = call(people["trainee"], "GET", path).get_json()
    assert queued["status"] == "queued" and queued["score"] is None and queued["graded_at"] is None
    assert queued["submitted_at"] == receipt["submitted_at"] and queued["attempt"] == 1

    assert grade_pending() == ["autograded"]
    body = call(people["trainee"], "GET", path).get_json()
    assert body["status"] == "autograded" and body["final"] is False
    assert body["auto_score"] == 5.0 and body["score"] is None and body["max_score"] == 7.0
    assert body["late_penalty"] == 0.0 and body["graded_at"] is not None
    assert body["feedback_url"] is None  # the written answer still waits for a trainer
    feedback = f"http://localhost/submissions/{receipt['id']}/feedback"
    assert call(people["trainer"], "GET", path).get_json()["feedback_url"] == feedback  # to grade by
    assert body["message"] == "" and body["repairs"] == {
        "restored": [],
        "missing_answers": [],
        "stripped": [],
    }
    assert body["assignment_id"] == small_assignment.id
    assert HIDDEN_SECRET not in json.dumps(body)

    submission = db.session.get(Submission, receipt["id"])
    services.grade_cell(submission, "answer", people["trainer"], points=2.0, comment="Good.")
    db.session.commit()
    final = call(people["trainee"], "GET", path).get_json()
    assert final["status"] == "graded" and final["final"] is True and final["score"] == 7.0
    assert final["feedback_url"] == feedback


def test_status_reports_repairs(call, upload, people, small_assignment, dispatched):
    notebook = json.loads(answer(small_assignment))
    notebook["cells"] = [
        cell
        for cell in notebook["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade_id") != "test-mul"
    ]
    receipt = upload(people["trainee"], small_assignment.id, json.dumps(notebook).encode()).get_json()
    body = call(people["trainee"], "GET", f"{API}/submissions/{receipt['id']}").get_json()
    assert body["repairs"]["restored"] == ["test-mul"]


def test_status_is_for_the_owner_and_the_cohorts_trainers(
    call, client, upload, people, small_assignment, outsider, create_user, dispatched
):
    receipt = upload(people["trainee"], small_assignment.id, answer(small_assignment)).get_json()
    path = f"{API}/submissions/{receipt['id']}"
    classmate = create_user(Role.TRAINEE, username="classmate")
    cohorts.enroll(classmate, small_assignment.cohort)
    db.session.commit()
    other_trainer = create_user(Role.TRAINER, username="trainer2")
    for user in (classmate, outsider, other_trainer, people["assessor"]):
        assert_error(call(user, "GET", path), 404, "not_found")
    assert call(people["trainer"], "GET", path).get_json()["id"] == receipt["id"]
    assert call(people["admin"], "GET", path).status_code == 200
    assert_error(client.get(path), 401, "unauthenticated")
    assert_error(call(people["trainee"], "GET", f"{API}/submissions/999999"), 404, "not_found")


# --- the OpenAPI document --------------------------------------------------------------------------------


def test_real_responses_conform_to_the_openapi_document(
    app, people, small_assignment, grade_pending, dispatched
):
    """Every graders operation at every stage (stored, re-sent, autograded, final, refused) answers as
    graders/openapi.py documents; schemathesis' generated ids rarely hit real rows."""
    import schemathesis

    _token, plaintext = tokens.issue_token(people["trainee"], "conformance", None, actor=None)
    db.session.commit()
    headers = {"Authorization": f"Bearer {plaintext}"}
    config = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"enabled": False}}})
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app, config=config)
    operations = {op.ok().definition.raw["operationId"]: op.ok() for op in schema.get_all_operations()}

    def check(operation_id: str, status: int, **case) -> dict:
        response = operations[operation_id].Case(**case).call_and_validate(headers=headers)
        assert response.status_code == status, response.text
        return response.json()

    by_assignment = {"path_parameters": {"assignment_id": small_assignment.id}}
    check("listAssignments", 200)
    assert check("downloadAssignmentRelease", 200, **by_assignment)["nbformat"] == 4
    upload = {**by_assignment, "media_type": "multipart/form-data"}
    receipt = check("createSubmission", 201, body={"file": answer(small_assignment)}, **upload)
    check("createSubmission", 200, body={"file": answer(small_assignment)}, **upload)
    check("createSubmission", 422, body={"file": b"{not json"}, **upload)
    by_submission = {"path_parameters": {"submission_id": receipt["id"]}}
    check("getSubmission", 200, **by_submission)
    grade_pending()
    assert check("getSubmission", 200, **by_submission)["status"] == "autograded"
    check("listAssignments", 200)
    submission = db.session.get(Submission, receipt["id"])
    services.grade_cell(submission, "answer", people["trainer"], points=1.5, comment="")
    db.session.commit()
    assert check("getSubmission", 200, **by_submission)["feedback_url"]
