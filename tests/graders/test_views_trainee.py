"""Trainees' pages: the assignment list, downloading, handing in, the live status, feedback, and the
dashboard panels. Grading runs for real (nbgrader in the sandbox) through grade_pending."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from markupsafe import escape
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from graders import services
from graders.models import Assignment, GradingJob, Submission
from graders.views import trainee_panel, trainer_panel
from lms.extensions import db
from lms.models import Role
from lms.services import cohorts
from lms.timeutil import utcnow
from tests.conftest import AuthActions, csrf_from
from tests.graders.conftest import HIDDEN_SECRET, answer

WRONG_ADD = {"sol-add": "def add(a, b):\n    return 0", "sol-mul": "def mul(a, b):\n    return a * b"}
MB = 1024 * 1024


@pytest.fixture
def sign_in(app):
    """sign_in(user) -> a test client signed in as the user (each user gets a client of their own)."""

    def sign_in(user):
        client = app.test_client()
        assert AuthActions(client).login(user.username).status_code == 302
        return client

    return sign_in


def upload(client, assignment_id: int, data: bytes | None, filename: str = "small.ipynb"):
    """POST the upload form as a browser does (multipart, CSRF token from a page of the site)."""
    payload: dict = {"csrf_token": csrf_from(client.get("/dashboard").get_data(as_text=True))}
    if data is not None:
        payload["file"] = FileStorage(io.BytesIO(data), filename=filename)
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    boundary, body = encode_multipart(payload)
    return client.post(
        f"/assignments/{assignment_id}/submissions",
        data=body,
        content_type=f'multipart/form-data; boundary="{boundary}"',
    )


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    """Job ids the page hands to the broker (recorded instead of sent)."""
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


@pytest.fixture
def other_trainer(create_user, create_cohort):
    """A trainer who teaches another cohort only."""
    user = create_user(Role.TRAINER, username="trainer2")
    create_cohort(code="OTHER-T", trainers=[user])
    db.session.commit()
    return user


def unreleased(cohort) -> Assignment:
    assignment = Assignment(
        cohort=cohort,
        unit_key="later",
        slug="later",
        notebook="later",
        title={"en": "Later exercise"},
        source_notebook="{}",
        source_sha256="0" * 64,
    )
    db.session.add(assignment)
    db.session.commit()
    return assignment


def submission_id_from(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.search(r"/submissions/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def error_text(response) -> str:
    """The message the upload form shows next to the file input."""
    match = re.search(
        r'<p class="error" id="file-error" role="alert">(.*?)</p>', response.get_data(as_text=True)
    )
    assert match, response.get_data(as_text=True)
    return match.group(1)


def count_jobs(submission_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(GradingJob).where(GradingJob.submission_id == submission_id)
    )


# --- the list and the assignment page ----------------------------------------------------------------


@pytest.mark.parametrize(("locale", "title"), [("en", "Small exercise"), ("zh_CN", "小练习")])
def test_list_shows_released_assignments_in_the_trainees_language(
    sign_in, people, small_assignment, locale, title
):
    unreleased(small_assignment.cohort)
    people["trainee"].locale = locale
    db.session.commit()
    page = sign_in(people["trainee"]).get("/assignments")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert title in html and f'href="/assignments/{small_assignment.id}"' in html
    assert "Later exercise" not in html


def test_list_shows_status_provisional_score_and_attempts(
    sign_in, people, small_assignment, dispatched, grade_pending
):
    client = sign_in(people["trainee"])
    html = client.get("/assignments").get_data(as_text=True)
    assert "Not handed in yet" in html and "0 of 5 used" in html
    submission_id_from(upload(client, small_assignment.id, answer(small_assignment)))
    assert grade_pending() == ["autograded"]
    html = client.get("/assignments").get_data(as_text=True)
    assert "Autograded" in html and "5 / 7" in html and "provisional" in html and "1 of 5 used" in html


def test_assignment_page_shows_rules_download_and_upload_form(sign_in, people, create_assignment):
    due = utcnow().replace(microsecond=0) + timedelta(days=2)
    assignment = create_assignment(
        due_at=due, cutoff_at=due + timedelta(days=3), late_penalty_percent=15, max_submissions=3
    )
    html = sign_in(people["trainee"]).get(f"/assignments/{assignment.id}").get_data(as_text=True)
    assert f'<time datetime="{due.isoformat()}">' in html
    assert "15% of the points per started day late" in html and "At most 3" in html and "3 left" in html
    assert f'href="/assignments/{assignment.id}/download"' in html
    assert f'action="/assignments/{assignment.id}/submissions"' in html
    assert 'enctype="multipart/form-data"' in html and 'accept=".ipynb"' in html
    assert 'name="csrf_token"' in html
    assert "You have not handed anything in yet." in html


def test_trainers_see_the_assignment_without_the_upload_form(sign_in, people, small_assignment):
    html = sign_in(people["trainer"]).get(f"/assignments/{small_assignment.id}").get_data(as_text=True)
    assert "as a trainer of the cohort" in html and "Small exercise" in html
    assert "/submissions" not in html and 'type="file"' not in html


@pytest.mark.parametrize("who", ["outsider", "other_trainer"])
def test_assignment_page_is_404_for_people_outside_the_cohort(
    request, sign_in, small_assignment, dispatched, who
):
    client = sign_in(request.getfixturevalue(who))
    assert client.get(f"/assignments/{small_assignment.id}").status_code == 404
    assert client.get(f"/assignments/{small_assignment.id}/download").status_code == 404
    if who == "outsider":
        assert upload(client, small_assignment.id, answer(small_assignment)).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_unreleased_assignment_is_404_for_trainees(sign_in, people, small_assignment):
    later = unreleased(small_assignment.cohort)
    trainee = sign_in(people["trainee"])
    assert trainee.get(f"/assignments/{later.id}").status_code == 404
    assert trainee.get(f"/assignments/{later.id}/download").status_code == 404
    trainer = sign_in(people["trainer"])
    assert trainer.get(f"/assignments/{later.id}").status_code == 200
    assert trainer.get(f"/assignments/{later.id}/download").status_code == 404


def test_download_gives_the_release_notebook_never_the_source(sign_in, people, small_assignment):
    response = sign_in(people["trainee"]).get(f"/assignments/{small_assignment.id}/download")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ipynb+json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="small.ipynb"'
    text = response.get_data(as_text=True)
    assert "YOUR CODE HERE" in text or "NotImplementedError" in text
    assert HIDDEN_SECRET not in text and "BEGIN SOLUTION" not in text
    assert json.loads(text)["metadata"]["lms"] == {"assignment": "small"}
    trainer_copy = sign_in(people["trainer"]).get(f"/assignments/{small_assignment.id}/download")
    assert trainer_copy.get_data() == response.get_data()


# --- handing in and watching it graded -----------------------------------------------------------------


def test_upload_grade_and_release_the_final_score(
    sign_in, people, small_assignment, dispatched, grade_pending, outsider
):
    trainee = sign_in(people["trainee"])
    response = upload(trainee, small_assignment.id, answer(small_assignment))
    submission_id = submission_id_from(response)
    assert (
        dispatched
        == db.session.scalars(select(GradingJob.id).where(GradingJob.submission_id == submission_id)).all()
    )
    page = trainee.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Received: attempt 1, sha256" in html and "grading has started" in html
    assert "Queued" in html and 'aria-live="polite"' in html
    assert f'data-status-url="/submissions/{submission_id}/status.json"' in html
    assert "graders/status.js" in html
    status_url = f"/submissions/{submission_id}/status.json"
    queued = trainee.get(status_url).get_json()
    assert queued == {
        "id": submission_id,
        "status": "queued",
        "score": None,
        "auto_score": None,
        "max_score": 7.0,
        "late_penalty": 0.0,
        "feedback_url": None,
        "final": False,
    }

    assert grade_pending() == ["autograded"]
    autograded = trainee.get(status_url).get_json()
    assert autograded["status"] == "autograded" and autograded["auto_score"] == 5.0
    assert autograded["max_score"] == 7.0 and autograded["score"] is None and autograded["final"] is False
    assert autograded["feedback_url"] is None
    feedback_url = f"/submissions/{submission_id}/feedback"
    assert trainee.get(feedback_url).status_code == 404
    html = trainee.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert "5 / 7" in html and "provisional" in html and "data-status-url" not in html

    trainer = sign_in(people["trainer"])
    assert trainer.get(status_url).get_json()["feedback_url"] == feedback_url
    for_trainer = trainer.get(feedback_url)
    assert for_trainer.status_code == 200 and for_trainer.mimetype == "text/html"
    assert for_trainer.headers["Content-Security-Policy"] == (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    )
    assert for_trainer.headers["X-Content-Type-Options"] == "nosniff"
    assert HIDDEN_SECRET not in for_trainer.get_data(as_text=True)

    submission = db.session.get(Submission, submission_id)
    services.grade_cell(submission, "answer", people["trainer"], points=2, comment="Clearly argued.")
    db.session.commit()
    graded = trainee.get(status_url).get_json()
    assert graded["status"] == "graded" and graded["score"] == 7.0 and graded["final"] is True
    assert graded["feedback_url"] == feedback_url
    feedback = trainee.get(feedback_url)
    assert feedback.status_code == 200
    text = feedback.get_data(as_text=True)
    assert HIDDEN_SECRET not in text and "Clearly argued." in text
    assert feedback.headers["Content-Security-Policy"] == for_trainer.headers["Content-Security-Policy"]
    html = trainee.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert "7 / 7" in html and "provisional" not in html and f'href="{feedback_url}"' in html

    stranger = sign_in(outsider)
    for path in (f"/submissions/{submission_id}", status_url, feedback_url):
        assert stranger.get(path).status_code == 404, path
    assessor = sign_in(people["assessor"])
    assert assessor.get(status_url).status_code == 403


def test_identical_reupload_returns_the_same_submission_and_one_job(
    sign_in, people, small_assignment, dispatched
):
    client = sign_in(people["trainee"])
    data = answer(small_assignment)
    first = submission_id_from(upload(client, small_assignment.id, data))
    response = upload(client, small_assignment.id, data)
    assert submission_id_from(response) == first
    assert "already handed in exactly this file as attempt 1" in client.get(
        response.headers["Location"]
    ).get_data(as_text=True)
    assert count_jobs(first) == 1 and len(dispatched) == 1
    second = submission_id_from(upload(client, small_assignment.id, answer(small_assignment, WRONG_ADD)))
    assert second != first and db.session.get(Submission, second).attempt == 2


def read_upload_message(data: bytes, app) -> str:
    """What graders.repair says about ``data`` with the app's limits (the page must show exactly that)."""
    from graders.repair import UploadRejected, read_upload

    with pytest.raises(UploadRejected) as caught:
        read_upload(
            data,
            max_bytes=app.config["GRADER_MAX_UPLOAD_BYTES"],
            max_cells=app.config["GRADER_MAX_CELLS"],
        )
    return caught.value.message


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"\x00" * (21 * MB)],
    ids=["invalid-json", "21-MB"],
)
def test_ungradable_upload_is_shown_again_with_the_reason_and_422(
    app, sign_in, people, small_assignment, dispatched, data
):
    response = upload(sign_in(people["trainee"]), small_assignment.id, data)
    assert response.status_code == 422
    assert error_text(response) == str(escape(read_upload_message(data, app)))
    assert 'type="file"' in response.get_data(as_text=True)  # the form is there to try again
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0 and dispatched == []


def test_upload_over_the_request_limit_is_413(sign_in, people, small_assignment, dispatched):
    response = upload(sign_in(people["trainee"]), small_assignment.id, b"\x00" * (30 * MB))
    assert response.status_code == 413
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_missing_file_is_400_with_a_hint(sign_in, people, small_assignment, dispatched):
    response = upload(sign_in(people["trainee"]), small_assignment.id, None)
    assert response.status_code == 400
    assert "Choose the notebook file (.ipynb) to hand in." in error_text(response)


def test_notebook_of_another_assignment_is_refused(
    sign_in, people, create_assignment, small_assignment, dispatched
):
    other = create_assignment(slug="other", title={"en": "Other exercise"})
    response = upload(sign_in(people["trainee"]), small_assignment.id, answer(other))
    assert response.status_code == 422
    assert "other" in error_text(response)
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_every_submission_used_is_refused_with_422(sign_in, people, create_assignment, dispatched):
    assignment = create_assignment(max_submissions=1)
    client = sign_in(people["trainee"])
    submission_id_from(upload(client, assignment.id, answer(assignment)))
    response = upload(client, assignment.id, answer(assignment, WRONG_ADD))
    assert response.status_code == 422
    assert error_text(response) == "You have used all 1 submissions for this assignment."
    page = client.get(f"/assignments/{assignment.id}").get_data(as_text=True)
    assert "You have used all your submissions" in page and 'type="file"' not in page


def test_past_the_cutoff_is_refused_with_422(sign_in, people, create_assignment, dispatched):
    assignment = create_assignment(
        due_at=utcnow() - timedelta(days=3), cutoff_at=utcnow() - timedelta(hours=1)
    )
    client = sign_in(people["trainee"])
    response = upload(client, assignment.id, answer(assignment))
    assert response.status_code == 422 and "cut-off" in error_text(response)
    assert "submissions are closed" in client.get(f"/assignments/{assignment.id}").get_data(as_text=True)


def test_late_submission_shows_its_penalty(sign_in, people, create_assignment, dispatched):
    assignment = create_assignment(due_at=utcnow() - timedelta(hours=1), late_penalty_percent=10)
    client = sign_in(people["trainee"])
    assert "loses the late penalty" in client.get(f"/assignments/{assignment.id}").get_data(as_text=True)
    submission_id = submission_id_from(upload(client, assignment.id, answer(assignment)))
    assert client.get(f"/submissions/{submission_id}/status.json").get_json()["late_penalty"] == 0.7
    assert "Late penalty: 0.7 points" in client.get(f"/submissions/{submission_id}").get_data(as_text=True)


def test_repairs_are_reported_on_the_submission_page(sign_in, people, small_assignment, dispatched):
    notebook = json.loads(answer(small_assignment))
    notebook["cells"] = [
        cell
        for cell in notebook["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade_id") != "test-mul"
    ]
    client = sign_in(people["trainee"])
    submission_id = submission_id_from(upload(client, small_assignment.id, json.dumps(notebook).encode()))
    html = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert "We restored these cells from the assignment: test-mul." in html


def test_anonymous_grading_hides_the_trainees_name_from_trainers(
    sign_in, people, create_assignment, dispatched
):
    assignment = create_assignment(anonymous_grading=True)
    submission_id = submission_id_from(upload(sign_in(people["trainee"]), assignment.id, answer(assignment)))
    html = sign_in(people["trainer"]).get(f"/submissions/{submission_id}").get_data(as_text=True)
    submission = db.session.get(Submission, submission_id)
    assert str(escape(services.pseudonym(submission))) in html
    assert people["trainee"].real_name not in html


def test_trainers_of_other_cohorts_get_404_on_submissions(
    sign_in, people, small_assignment, dispatched, other_trainer
):
    submission_id = submission_id_from(
        upload(sign_in(people["trainee"]), small_assignment.id, answer(small_assignment))
    )
    client = sign_in(other_trainer)
    for path in (f"/submissions/{submission_id}", f"/submissions/{submission_id}/status.json"):
        assert client.get(path).status_code == 404
    trainer = sign_in(people["trainer"])
    assert trainer.get(f"/submissions/{submission_id}").status_code == 200
    assert trainer.get(f"/submissions/{submission_id}/feedback").status_code == 404  # not graded yet


def test_status_script_is_served(client):
    response = client.get("/graders/static/graders/status.js")
    assert response.status_code == 200 and b"aria-live" in response.get_data()
    response.close()


# --- dashboard panels ----------------------------------------------------------------------------------


def test_trainee_panel_lists_work_to_hand_in_then_awaiting_scores(
    sign_in, people, create_assignment, dispatched, grade_pending
):
    assignment = create_assignment(due_at=utcnow() + timedelta(days=1))
    assert [row.assignment.id for row in trainee_panel(people["trainee"])["items"]] == [assignment.id]
    client = sign_in(people["trainee"])
    html = client.get("/dashboard").get_data(as_text=True)
    assert "graders-panel-trainee" in html and f'href="/assignments/{assignment.id}"' in html
    submission_id = submission_id_from(upload(client, assignment.id, answer(assignment)))
    grade_pending()
    [row] = trainee_panel(people["trainee"])["items"]
    assert not row.to_hand_in and row.latest.id == submission_id
    submission = db.session.get(Submission, submission_id)
    services.grade_cell(submission, "answer", people["trainer"], points=1, comment="")
    db.session.commit()
    assert trainee_panel(people["trainee"])["items"] == []
    assert "graders-panel-trainee" not in client.get("/dashboard").get_data(as_text=True)


def test_trainee_panel_leaves_out_closed_assignments(people, create_assignment):
    create_assignment(due_at=utcnow() - timedelta(days=2), cutoff_at=utcnow() - timedelta(days=1))
    assert trainee_panel(people["trainee"])["items"] == []


def test_trainer_panel_counts_submissions_awaiting_manual_grading(
    app, sign_in, people, small_assignment, dispatched, grade_pending
):
    with app.test_request_context():
        assert trainer_panel(people["trainer"])["awaiting"] == 0
    upload(sign_in(people["trainee"]), small_assignment.id, answer(small_assignment))
    grade_pending()
    with app.test_request_context():
        assert trainer_panel(people["trainer"])["awaiting"] == 1
    html = sign_in(people["trainer"]).get("/dashboard").get_data(as_text=True)
    assert "1 submission awaits your grading." in html
