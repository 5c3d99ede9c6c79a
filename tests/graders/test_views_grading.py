"""The trainers' grading pages: a cohort's assignments and publishing, rules and rubric, the manual
grading queue, grading a submission (with its audit history), regrade and release, the gradebook and its
nbgrader-style CSV, and who may see what.

Most tests build submissions directly as rows (status and cell grades as a worker would leave them);
one test goes through real grading first.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import nbformat
import pytest
from sqlalchemy import event, func, select

from graders import services
from graders.forms_grading import RubricError, format_rubric, local_to_utc, parse_rubric, utc_to_local
from graders.models import (
    Assignment,
    CellGrade,
    CellKind,
    GradingJob,
    JobKind,
    Submission,
    SubmissionStatus,
)
from graders.views_grading import EXPORT_COLUMNS, split_name
from lms.extensions import db
from lms.models import AuditLog, Cohort, CourseModule, CourseUnit, CourseVersion, Role, UnitKind, User
from lms.services import cohorts
from lms.timeutil import utcnow
from tests.conftest import AuthActions
from tests.graders.conftest import answer, small_source

# --- pure helpers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "max_points", "expected"),
    [
        ("", 2.0, []),
        ("2 | Complete and correct", 2.0, [(2.0, "Complete and correct")]),
        ("\n  1,5|Half right  \n\n0 | Missing\n", 2.0, [(1.5, "Half right"), (0.0, "Missing")]),
        ("1 | a | b", None, [(1.0, "a | b")]),
        ("100 | Any amount", None, [(100.0, "Any amount")]),
    ],
)
def test_rubric_lines_are_read_as_points_and_text(text, max_points, expected):
    marks = parse_rubric(text, max_points)
    assert [(m.points, m.text) for m in marks] == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Complete", 1),
        ("2 | ok\n\nabc | wrong", 3),
        ("2 |", 1),
        ("| no points", 1),
        ("-1 | negative", 1),
        ("3 | above the cell's 2 points", 1),
        ("nan | not a number", 1),
        ("1 | fine\ninf | infinite", 2),
    ],
)
def test_a_malformed_rubric_line_is_named(text, line):
    with pytest.raises(RubricError) as caught:
        parse_rubric(text, 2.0)
    assert caught.value.line == line
    assert f"Line {line}" in str(caught.value)


def test_a_stored_rubric_reads_back_the_same():
    stored = [{"points": 2.0, "text": "Complete"}, {"points": 0.5, "text": "Only a start"}]
    assert format_rubric(stored) == "2 | Complete\n0.5 | Only a start"
    assert [m.as_dict() for m in parse_rubric(format_rubric(stored), 2.0)] == stored


@pytest.mark.parametrize(
    ("day", "at", "zone", "expected"),
    [
        (date(2030, 3, 1), time(18, 0), "Asia/Shanghai", datetime(2030, 3, 1, 10, 0, tzinfo=UTC)),
        (date(2030, 3, 1), None, "Asia/Shanghai", datetime(2030, 3, 1, 15, 59, tzinfo=UTC)),
        (date(2030, 7, 1), time(12, 0), "Europe/Berlin", datetime(2030, 7, 1, 10, 0, tzinfo=UTC)),  # summer
        (date(2030, 1, 1), time(12, 0), "Europe/Berlin", datetime(2030, 1, 1, 11, 0, tzinfo=UTC)),
        (None, time(12, 0), "Asia/Shanghai", None),
    ],
)
def test_local_deadlines_become_utc_and_back(day, at, zone, expected):
    assert local_to_utc(day, at, zone) == expected
    if expected is not None:
        assert utc_to_local(expected, zone) == (day, at or time(23, 59))


@pytest.mark.parametrize(
    ("real_name", "last", "first"),
    [
        ("张三丰", "张", "三丰"),
        ("王 小明", "王", "小明"),
        ("李雷", "李", "雷"),
        ("Ada King Lovelace", "Lovelace", "Ada King"),
        ("  Bob   Smith ", "Smith", "Bob"),
        ("Alice", "Alice", ""),
        ("", "", ""),
    ],
)
def test_names_split_into_last_and_first_as_nbgrader_keeps_them(real_name, last, first):
    assert split_name(real_name) == (last, first)


# --- fixtures and helpers --------------------------------------------------------------------------------


def sign_in(app, username: str) -> AuthActions:
    auth = AuthActions(app.test_client())
    assert auth.login(username).status_code == 302
    return auth


def page(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def trainer(app, people) -> AuthActions:
    """``trainer1``, who teaches ``dummy_cohort``, signed in."""
    return sign_in(app, people["trainer"].username)


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    """Job ids handed to the broker (recorded instead of sent)."""
    sent: list[int] = []
    monkeypatch.setattr("graders.tasks.dispatch", lambda ids: sent.extend(ids))
    return sent


@pytest.fixture
def make_assignment(dummy_cohort) -> Callable[..., Assignment]:
    """An assignment of ``dummy_cohort`` with the small notebook, marked released without running nbgrader
    (the grading pages never read the release notebook)."""

    def make(**params: Any) -> Assignment:
        text = nbformat.writes(small_source())
        params.setdefault("cohort", dummy_cohort)
        params.setdefault("unit_key", "small")
        params.setdefault("slug", params["unit_key"])
        params.setdefault("notebook", params["slug"])
        params.setdefault("title", {"en": "Small exercise", "zh_CN": "小练习"})
        params.setdefault("max_points", 7.0)
        assignment = Assignment(
            source_notebook=text,
            source_sha256=hashlib.sha256(text.encode()).hexdigest(),
            release_notebook="{}",
            released_at=utcnow(),
            **params,
        )
        db.session.add(assignment)
        db.session.commit()
        return assignment

    return make


@pytest.fixture
def assignment(make_assignment) -> Assignment:
    return make_assignment()


def hand_in(
    assignment: Assignment,
    user: User,
    *,
    status: SubmissionStatus = SubmissionStatus.AUTOGRADED,
    manual_points: float | None = None,
    submitted_at: datetime | None = None,
    attempt: int = 1,
    late_penalty: float = 0.0,
) -> Submission:
    """A submission as the worker leaves it: both tests passed (2 + 3 points), the written answer
    (2 points) graded by hand only when ``manual_points`` is given."""
    submission = Submission(
        assignment=assignment,
        user=user,
        attempt=attempt,
        content=b"{}",
        sha256=f"{user.id:064d}",
        size=2,
        submitted_at=submitted_at or utcnow(),
        status=status,
        max_score=assignment.max_points,
        late_penalty=late_penalty,
        graded_at=utcnow() if status in (SubmissionStatus.AUTOGRADED, SubmissionStatus.GRADED) else None,
    )
    if status in (SubmissionStatus.AUTOGRADED, SubmissionStatus.GRADED):
        submission.cells = [
            CellGrade(grade_id="test-add", position=0, kind=CellKind.TESTS, max_points=2.0, auto_points=2.0),
            CellGrade(grade_id="test-mul", position=1, kind=CellKind.TESTS, max_points=3.0, auto_points=3.0),
            CellGrade(
                grade_id="answer",
                position=2,
                kind=CellKind.MANUAL,
                max_points=2.0,
                manual_points=manual_points,
            ),
        ]
        submission.auto_score = 5.0 + (manual_points or 0.0)
        if status == SubmissionStatus.GRADED:
            submission.score = max(0.0, 5.0 + (manual_points or 0.0) - late_penalty)
    db.session.add(submission)
    db.session.commit()
    return submission


def grade_data(submission: Submission, **changes: dict[str, str]) -> dict[str, str]:
    """The grading form as the page fills it, with ``changes`` by grade_id (points, comment, extra_credit)."""
    data: dict[str, str] = {}
    for index, cell in enumerate(submission.cells):
        values = {
            "grade_id": cell.grade_id,
            "points": "" if cell.manual_points is None else f"{cell.manual_points:g}",
            "comment": cell.comment,
            "extra_credit": "" if not cell.extra_credit else f"{cell.extra_credit:g}",
        }
        values.update(changes.get(cell.grade_id, {}))
        data.update({f"cells-{index}-{name}": value for name, value in values.items()})
    return data


def audit_lines(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


@pytest.fixture
def outsider_trainer(app, create_user, create_cohort) -> AuthActions:
    """A trainer of another cohort, signed in."""
    other = create_user(Role.TRAINER, username="othertrainer")
    create_cohort(code="OTHER", trainers=[other])
    db.session.commit()
    return sign_in(app, "othertrainer")


# --- a cohort's assignments and publishing ---------------------------------------------------------------


def test_cohort_page_lists_assignments_with_rules_and_counts(trainer, people, assignment, dummy_cohort):
    hand_in(assignment, people["trainee"])
    html = page(trainer.client.get(f"/grading/cohorts/{dummy_cohort.id}"))
    assert "Small exercise" in html
    assert f"/grading/assignments/{assignment.id}/settings" in html
    assert f"/grading/queue?assignment={assignment.id}" in html  # one awaits manual grading
    assert "no course files yet" in html  # the dummy cohort follows no course version


def test_a_cohort_without_course_files_publishes_nothing(trainer, dummy_cohort, dispatched):
    response = trainer.post(f"/grading/cohorts/{dummy_cohort.id}/publish")
    assert response.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 0
    assert dispatched == []
    assert "nothing to publish" in page(trainer.client.get(response.headers["Location"]))


@pytest.fixture
def exercise_cohort(dummy_cohort, dummy_course) -> Cohort:
    """``dummy_cohort`` following a course version with one exercise unit."""
    version = CourseVersion(
        course=dummy_course, version="2030.1", schema_version=1, slug="aiet-p", content_hash="0" * 64
    )
    module = CourseModule(version=version, key="m01", position=1, title={"en": "Basics"}, summary={})
    CourseUnit(
        version=version,
        module=module,
        key="ex01-small",
        kind=UnitKind.EXERCISE,
        position=1,
        title={"en": "Small exercise", "zh_CN": "小练习"},
        body={"notebook": json.loads(nbformat.writes(small_source())), "points": 7, "due_days": 10},
    )
    db.session.add(version)
    db.session.flush()
    dummy_cohort.course_version_id = version.id
    db.session.commit()
    return dummy_cohort


def test_publishing_makes_an_assignment_per_exercise_and_queues_its_release(
    trainer, exercise_cohort, dispatched
):
    response = trainer.post(f"/grading/cohorts/{exercise_cohort.id}/publish")
    assert response.status_code == 303
    [assignment] = db.session.scalars(select(Assignment)).all()
    assert assignment.unit_key == "ex01-small" and assignment.max_points == 7.0
    assert assignment.due_at is not None and not assignment.is_released
    jobs = db.session.scalars(select(GradingJob).where(GradingJob.assignment_id == assignment.id)).all()
    assert [job.kind for job in jobs] == [JobKind.RELEASE] and dispatched == [jobs[0].id]
    html = page(trainer.client.get(response.headers["Location"]))
    assert "1 exercise published" in html and "Being prepared" in html
    again = trainer.post(f"/grading/cohorts/{exercise_cohort.id}/publish")
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 1
    assert dispatched == [jobs[0].id]
    assert "Nothing new to publish" in page(trainer.client.get(again.headers["Location"]))


# --- rules and rubric ------------------------------------------------------------------------------------

SETTINGS = {
    "due_date": "2030-03-01",
    "due_time": "18:00",
    "cutoff_date": "2030-03-03",
    "cutoff_time": "",
    "late_penalty_percent": "20",
    "max_submissions": "3",
    "cell_timeout": "120",
    "total_timeout": "1800",
    "anonymous_grading": "y",
    "rubric-0": "2 | Complete\n1 | Partly right",
}


def settings_path(assignment: Assignment) -> str:
    return f"/grading/assignments/{assignment.id}/settings"


def test_settings_are_saved_in_utc_and_audited(trainer, assignment):
    form = page(trainer.client.get(settings_path(assignment)))
    assert 'name="rubric-0"' in form and "Marks for answer" in form and "Asia/Shanghai" in form
    response = trainer.post(settings_path(assignment), SETTINGS)
    assert response.status_code == 303, page(response)
    db.session.refresh(assignment)
    # trainer1 lives in Asia/Shanghai (UTC+8); a cut-off without a time is at 23:59
    assert assignment.due_at == datetime(2030, 3, 1, 10, 0, tzinfo=UTC)
    assert assignment.cutoff_at == datetime(2030, 3, 3, 15, 59, tzinfo=UTC)
    assert assignment.late_penalty_percent == 20.0 and assignment.max_submissions == 3
    assert (assignment.cell_timeout, assignment.total_timeout) == (120, 1800)
    assert assignment.anonymous_grading is True
    assert assignment.rubric == {
        "answer": [{"points": 2.0, "text": "Complete"}, {"points": 1.0, "text": "Partly right"}]
    }
    [line] = audit_lines("graders.assignment_settings")
    changes = line.details["changes"]
    assert changes["due_at"] == {"old": None, "new": "2030-03-01T10:00:00+00:00"}
    assert changes["max_submissions"] == {"old": 5, "new": 3}
    assert line.actor_id == db.session.scalar(select(User.id).where(User.username == "trainer1"))
    assert len(audit_lines("graders.rubric_changed")) == 1
    # The form shows the stored values in the trainer's zone again; saving them unchanged audits nothing.
    again = page(trainer.client.get(settings_path(assignment)))
    assert 'value="2030-03-01"' in again and 'value="18:00"' in again and "1 | Partly right" in again
    assert trainer.post(settings_path(assignment), SETTINGS).status_code == 303
    assert len(audit_lines("graders.assignment_settings")) == 1
    assert len(audit_lines("graders.rubric_changed")) == 1


def test_a_cutoff_before_the_due_date_is_refused_with_422(trainer, assignment):
    response = trainer.post(settings_path(assignment), {**SETTINGS, "cutoff_date": "2030-02-28"})
    assert response.status_code == 422
    assert "The cut-off cannot be before the due date." in page(response)
    db.session.refresh(assignment)
    assert assignment.due_at is None and assignment.rubric == {}
    assert audit_lines("graders.assignment_settings") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"late_penalty_percent": "120"}, "Late penalty"),
        ({"max_submissions": "0"}, "Submissions allowed per trainee"),
        ({"due_date": "", "due_time": "18:00"}, "Give the date as well as the time."),
        ({"due_date": "yesterday"}, "Due date"),
    ],
)
def test_unreadable_settings_are_refused_with_422(trainer, assignment, changes, message):
    response = trainer.post(settings_path(assignment), {**SETTINGS, **changes})
    assert response.status_code == 422
    assert message in page(response)
    db.session.refresh(assignment)
    assert assignment.max_submissions == 5


def test_a_rubric_line_that_cannot_be_read_is_refused_naming_the_line(trainer, assignment):
    response = trainer.post(
        settings_path(assignment), {**SETTINGS, "rubric-0": "2 | Complete\nhalf marks for trying"}
    )
    assert response.status_code == 422
    html = page(response)
    assert "Line 2:" in html and 'aria-invalid="true"' in html
    assert "half marks for trying" in html  # what the trainer typed is kept
    db.session.refresh(assignment)
    assert assignment.rubric == {} and assignment.max_submissions == 5


# --- the queue -------------------------------------------------------------------------------------------


def test_queue_lists_autograded_submissions_but_not_graded_ones(
    trainer, people, assignment, create_user, dummy_cohort
):
    waiting = hand_in(assignment, people["trainee"], submitted_at=utcnow() - timedelta(hours=2))
    done_user = create_user(Role.TRAINEE, username="donetrainee", real_name="完成者", password=None)
    cohorts.enroll(done_user, dummy_cohort)
    hand_in(assignment, done_user, status=SubmissionStatus.GRADED, manual_points=2.0)
    html = page(trainer.client.get("/grading/queue"))
    assert people["trainee"].real_name in html and "完成者" not in html
    assert f"/grading/submissions/{waiting.id}" in html
    assert "1 submission awaits grading." in html
    assert "5 / 7" in html  # the autograded points so far


def test_queue_shows_only_the_latest_attempt_and_filters_by_assignment(
    trainer, people, make_assignment, assignment
):
    old = hand_in(assignment, people["trainee"], attempt=1, submitted_at=utcnow() - timedelta(days=1))
    new = hand_in(assignment, people["trainee"], attempt=2)
    other = make_assignment(unit_key="other", title={"en": "Other exercise"})
    elsewhere = hand_in(other, people["trainee"])
    html = page(trainer.client.get("/grading/queue"))
    assert f'/grading/submissions/{new.id}"' in html and f'/grading/submissions/{old.id}"' not in html
    assert f'/grading/submissions/{elsewhere.id}"' in html
    filtered = page(trainer.client.get(f"/grading/queue?assignment={other.id}"))
    assert f'/grading/submissions/{elsewhere.id}"' in filtered
    assert f'/grading/submissions/{new.id}"' not in filtered


def test_the_queue_runs_the_same_queries_for_5_or_60_submissions(app, trainer, assignment, create_user):
    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []

        def record(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", record)

    def add(count: int) -> None:
        for _ in range(count):
            trainee = create_user(Role.TRAINEE, password=None)
            hand_in(assignment, trainee)

    def queue_queries() -> int:
        db.session.commit()
        with counting() as statements:
            response = trainer.client.get("/grading/queue")
        assert response.status_code == 200
        return len(statements)

    add(5)
    few = queue_queries()
    add(55)
    many = queue_queries()
    assert many == few, f"{few} queries for 5 submissions, {many} for 60"
    html = page(trainer.client.get("/grading/queue"))
    assert "60 submissions await grading." in html and "Page 1 of 2" in html
    assert html.count('aria-label="Grade the submission of') == 50
    second = page(trainer.client.get("/grading/queue?page=2"))
    assert second.count('aria-label="Grade the submission of') == 10


# --- grading a submission --------------------------------------------------------------------------------


def grade_path(submission: Submission) -> str:
    return f"/grading/submissions/{submission.id}"


def test_grading_the_written_answer_makes_the_score_final_and_is_audited(
    trainer, people, assignment, dispatched
):
    submission = hand_in(assignment, people["trainee"])
    form = page(trainer.client.get(grade_path(submission)))
    assert 'name="cells-2-points"' in form and 'max="2"' in form and 'step="0.5"' in form
    data = grade_data(submission, answer={"points": "1.5", "comment": "Say why it holds."})
    response = trainer.post(grade_path(submission), {**data, "then": "stay"})
    assert response.status_code == 303 and response.headers["Location"].endswith(grade_path(submission))
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.GRADED and submission.score == 6.5
    answer_cell = submission.cells[2]
    assert answer_cell.manual_points == 1.5 and answer_cell.comment == "Say why it holds."
    [line] = audit_lines("graders.grade_changed")
    assert line.target_type == "Submission" and line.target_id == str(submission.id)
    # a second change, then the history shows both with who, the cell, old and new
    data = grade_data(submission, answer={"points": "2"})
    assert trainer.post(grade_path(submission), {**data, "then": "stay"}).status_code == 303
    db.session.refresh(submission)
    assert submission.score == 7.0
    history = page(trainer.client.get(f"{grade_path(submission)}/history"))
    assert history.count("Grade changed") == 2 and people["trainer"].real_name in history
    assert "answer" in history
    assert "1.5 points · “Say why it holds.”" in history  # new, then old of the second change
    assert "2 points · “Say why it holds.”" in history


def test_points_above_the_maximum_are_refused_and_nothing_changes(trainer, people, assignment):
    submission = hand_in(assignment, people["trainee"])
    data = grade_data(
        submission, answer={"points": "3", "comment": "too generous"}, **{"test-add": {"comment": "ok"}}
    )
    response = trainer.post(grade_path(submission), {**data, "then": "stay"})
    assert response.status_code == 422
    html = page(response)
    assert "Points for answer must be between 0 and 2." in html
    assert "too generous" in html  # the trainer's input is kept
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.AUTOGRADED and submission.score is None
    assert [c.comment for c in submission.cells] == ["", "", ""]
    assert [c.manual_points for c in submission.cells] == [None, None, None]
    assert audit_lines("graders.grade_changed") == []


def test_points_that_are_not_numbers_are_refused(trainer, people, assignment):
    submission = hand_in(assignment, people["trainee"])
    data = grade_data(submission, answer={"points": "two"})
    response = trainer.post(grade_path(submission), {**data, "then": "stay"})
    assert response.status_code == 422 and "must be numbers" in page(response)


def test_an_override_and_extra_credit_on_a_test_cell_count(trainer, people, assignment):
    submission = hand_in(assignment, people["trainee"])
    data = grade_data(
        submission,
        answer={"points": "2"},
        **{"test-mul": {"points": "1", "extra_credit": "0.5", "comment": "Hard-coded the answer."}},
    )
    assert trainer.post(grade_path(submission), {**data, "then": "stay"}).status_code == 303
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.GRADED
    assert submission.score == 2 + 1 + 2 + 0.5


def test_save_and_next_opens_the_oldest_waiting_submission(trainer, people, assignment, create_user):
    first = hand_in(assignment, people["trainee"], submitted_at=utcnow() - timedelta(hours=3))
    second = hand_in(
        assignment, create_user(Role.TRAINEE, password=None), submitted_at=utcnow() - timedelta(hours=1)
    )
    data = grade_data(first, answer={"points": "2"})
    response = trainer.post(grade_path(first), {**data, "then": "next"})
    assert response.headers["Location"].endswith(grade_path(second))
    data = grade_data(second, answer={"points": "1"})
    response = trainer.post(grade_path(second), {**data, "then": "next"})
    assert response.headers["Location"].endswith("/grading/queue")


def test_a_regrade_that_finished_meanwhile_saves_nothing(trainer, people, assignment):
    submission = hand_in(assignment, people["trainee"])
    data = grade_data(submission, answer={"points": "2"})
    data["cells-0-grade_id"] = "something-else"
    response = trainer.post(grade_path(submission), {**data, "then": "stay"})
    assert response.status_code == 409
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.AUTOGRADED


def test_anonymous_grading_hides_the_trainees_name(trainer, people, make_assignment):
    assignment = make_assignment(anonymous_grading=True)
    submission = hand_in(assignment, people["trainee"])
    name = people["trainee"].real_name
    pseudonym = services.pseudonym(submission)
    for path in ("/grading/queue", grade_path(submission), f"{grade_path(submission)}/history"):
        html = page(trainer.client.get(path))
        assert pseudonym in html, path
        assert name not in html and people["trainee"].username not in html, path


def test_rubric_marks_are_offered_while_grading(trainer, people, make_assignment):
    assignment = make_assignment(rubric={"answer": [{"points": 1.5, "text": "Mostly there"}]})
    submission = hand_in(assignment, people["trainee"])
    html = page(trainer.client.get(grade_path(submission)))
    assert 'data-points="1.5"' in html and 'data-text="Mostly there"' in html
    assert "<script>" in html


def test_regrade_queues_a_job_and_keeps_the_trainers_points(trainer, people, assignment, dispatched):
    submission = hand_in(assignment, people["trainee"], status=SubmissionStatus.GRADED, manual_points=2.0)
    response = trainer.post(f"{grade_path(submission)}/regrade")
    assert response.status_code == 303
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.QUEUED
    [job] = db.session.scalars(select(GradingJob).where(GradingJob.submission_id == submission.id)).all()
    assert job.kind == JobKind.AUTOGRADE and dispatched == [job.id]
    assert submission.cells[2].manual_points == 2.0
    # a second request while it waits is refused with a message and queues nothing
    again = trainer.post(f"{grade_path(submission)}/regrade")
    assert "already waiting" in page(trainer.client.get(again.headers["Location"]))
    assert dispatched == [job.id]
    assert "Regrade requested" in page(trainer.client.get(f"{grade_path(submission)}/history"))


def test_release_shows_the_feedback_to_the_trainee_before_manual_grading(trainer, people, assignment):
    submission = hand_in(assignment, people["trainee"])
    assert submission.feedback_released_at is None
    assert trainer.post(f"{grade_path(submission)}/release").status_code == 303
    db.session.refresh(submission)
    assert submission.feedback_released_at is not None
    assert len(audit_lines("graders.feedback_released")) == 1


# --- gradebook and CSV -----------------------------------------------------------------------------------


def test_gradebook_shows_scores_marks_and_a_chart_with_a_text_alternative(
    trainer, people, assignment, dummy_cohort, create_user
):
    hand_in(assignment, people["trainee"], status=SubmissionStatus.GRADED, manual_points=1.5)
    waiting = create_user(Role.TRAINEE, username="waiting", real_name="等待者", password=None)
    cohorts.enroll(waiting, dummy_cohort)
    hand_in(assignment, waiting)
    absent = create_user(Role.TRAINEE, username="absent", real_name="缺席者", password=None)
    cohorts.enroll(absent, dummy_cohort)
    db.session.commit()
    html = page(trainer.client.get(f"/grading/cohorts/{dummy_cohort.id}/gradebook"))
    assert "6.5" in html and "awaits manual grading" in html and "not handed in" in html
    assert "<title id=" in html and "<desc id=" in html
    assert "1 final score in ten bands from 0 to 7 points" in html
    assert '<table class="visually-hidden">' in html and "6.3 to 7" in html
    assert 'class="table-wrap"' in html


def test_csv_has_nbgraders_columns_and_a_row_per_trainee_and_assignment(
    trainer, people, make_assignment, dummy_cohort, create_user
):
    due = datetime(2030, 3, 1, 15, 59, tzinfo=UTC)
    first = make_assignment(unit_key="ex01", due_at=due)
    make_assignment(unit_key="ex02")
    graded = hand_in(
        first,
        people["trainee"],
        status=SubmissionStatus.GRADED,
        manual_points=2.0,
        late_penalty=1.0,
        submitted_at=datetime(2030, 3, 2, 8, 30, 5, tzinfo=UTC),
    )
    other = create_user(Role.TRAINEE, username="ada", real_name="Ada King Lovelace", email="ada@example.org")
    cohorts.enroll(other, dummy_cohort)
    db.session.commit()
    response = trainer.client.get(f"/grading/cohorts/{dummy_cohort.id}/gradebook.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    lines = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert len(lines) == 2 * 2
    assert [(line["assignment"], line["student_id"]) for line in lines] == [
        ("ex01", "ada"),
        ("ex01", "trainee1"),
        ("ex02", "ada"),
        ("ex02", "trainee1"),
    ]
    trainee = people["trainee"]
    assert lines[1] == {
        "assignment": "ex01",
        "duedate": "2030-03-01 15:59:00",
        "timestamp": "2030-03-02 08:30:05",
        "student_id": "trainee1",
        "last_name": trainee.real_name[0],
        "first_name": trainee.real_name[1:],
        "email": trainee.email or "",
        "raw_score": "7.0",
        "late_submission_penalty": "1.0",
        "score": "6.0",
        "max_score": "7.0",
    }
    assert graded.score == 6.0
    assert lines[0] == {
        "assignment": "ex01",
        "duedate": "2030-03-01 15:59:00",
        "timestamp": "",
        "student_id": "ada",
        "last_name": "Lovelace",
        "first_name": "Ada King",
        "email": "ada@example.org",
        "raw_score": "0.0",
        "late_submission_penalty": "0.0",
        "score": "0.0",
        "max_score": "7.0",
    }
    assert lines[2]["duedate"] == "" and lines[3]["timestamp"] == ""


# --- who may see what ------------------------------------------------------------------------------------


def test_a_trainer_of_another_cohort_gets_404_everywhere(
    outsider_trainer, people, assignment, dummy_cohort, dispatched
):
    submission = hand_in(assignment, people["trainee"])
    gets = [
        f"/grading/cohorts/{dummy_cohort.id}",
        f"/grading/cohorts/{dummy_cohort.id}/gradebook",
        f"/grading/cohorts/{dummy_cohort.id}/gradebook.csv",
        settings_path(assignment),
        grade_path(submission),
        f"{grade_path(submission)}/history",
    ]
    for path in gets:
        assert outsider_trainer.client.get(path).status_code == 404, path
    posts = [
        f"/grading/cohorts/{dummy_cohort.id}/publish",
        settings_path(assignment),
        grade_path(submission),
        f"{grade_path(submission)}/regrade",
        f"{grade_path(submission)}/release",
    ]
    for path in posts:
        assert outsider_trainer.post(path, grade_data(submission, answer={"points": "2"})).status_code == 404
    queue = page(outsider_trainer.client.get("/grading/queue"))
    assert people["trainee"].real_name not in queue and "0 submissions await grading." in queue
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.AUTOGRADED and dispatched == []


def test_missing_records_are_404_and_trainees_are_refused(app, people, trainer, dummy_cohort):
    for path in ("/grading/cohorts/999999", "/grading/assignments/999999/settings", "/grading/submissions/9"):
        assert trainer.client.get(path).status_code == 404
    trainee = sign_in(app, people["trainee"].username)
    assert trainee.client.get("/grading/queue").status_code == 403
    assert trainee.client.get(f"/grading/cohorts/{dummy_cohort.id}/gradebook").status_code == 403


def test_an_admin_grades_any_cohort(app, people, assignment):
    submission = hand_in(assignment, people["trainee"])
    admin = sign_in(app, people["admin"].username)
    assert people["trainee"].real_name in page(admin.client.get("/grading/queue"))
    response = admin.post(
        grade_path(submission), {**grade_data(submission, answer={"points": "2"}), "then": "x"}
    )
    assert response.status_code == 303


# --- through real grading --------------------------------------------------------------------------------


def test_a_really_graded_submission_shows_its_notebook_and_is_graded_by_hand(
    app, trainer, people, small_assignment, grade_pending
):
    submission, _created = services.submit(
        small_assignment, people["trainee"], answer(small_assignment), max_bytes=10**7, max_cells=2000
    )
    db.session.commit()
    grade_pending()
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.AUTOGRADED and submission.auto_score == 5.0
    html = page(trainer.client.get(grade_path(submission)))
    feedback = f"/submissions/{submission.id}/feedback"
    assert f'sandbox src="{feedback}"' in html
    assert trainer.client.get(feedback).status_code == 200
    data = grade_data(submission, answer={"points": "2", "comment": "Right."})
    assert trainer.post(grade_path(submission), {**data, "then": "stay"}).status_code == 303
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.GRADED and submission.score == 7.0


def test_the_pages_render_in_chinese(app, people, assignment, dummy_cohort):
    people["trainer"].locale = "zh_CN"
    db.session.commit()
    submission = hand_in(assignment, people["trainee"], status=SubmissionStatus.GRADED, manual_points=1.0)
    trainer = sign_in(app, people["trainer"].username)
    for path in (
        f"/grading/cohorts/{dummy_cohort.id}",
        f"/grading/cohorts/{dummy_cohort.id}/gradebook",
        settings_path(assignment),
        "/grading/queue",
        grade_path(submission),
        f"{grade_path(submission)}/history",
    ):
        response = trainer.client.get(path)
        assert response.status_code == 200, path
        assert "小练习" in page(response), path
