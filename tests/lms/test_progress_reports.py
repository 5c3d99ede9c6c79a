"""Progress reports: the trainee's module progress and next steps, the trainers' cohort grid, unit
completion, quiz item analysis and CSV export, who may see them, and the learning API."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from curriculum.importer import import_course
from curriculum.loader import load_course
from curriculum.model import CourseFiles
from curriculum.plugin import DEMO_COURSE
from lms.extensions import db
from lms.models import (
    Cohort,
    Delivery,
    EnrollmentStatus,
    HoursSource,
    ProgressStatus,
    QuizAttempt,
    Role,
    UnitProgress,
    User,
)
from lms.services import cohorts, progress, tokens
from lms.services.hours import credit_hours
from lms.timeutil import utcnow

EN = {"Accept-Language": "en"}
M01_ONLINE = [
    "m01-l01-what-ai-is",
    "m01-l02-project-lifecycle",
    "m01-l03-business-to-ai-requirement",
    "m01-l04-platform-sizing",
    "m01-l05-frameworks-platforms",
    "m01-quiz",
]


@pytest.fixture(scope="module")
def course_files() -> CourseFiles:
    """The shipped primary-level course, read once (the loader is pure)."""
    return load_course(DEMO_COURSE)


@pytest.fixture
def course(app, course_files, dummy_cohort):
    """The shipped course imported; ``dummy_cohort`` (same course code) now follows it."""
    import_course(course_files)
    db.session.commit()
    assert dummy_cohort.course_version_id is not None
    return course_files


def complete(user: User, cohort: Cohort, *keys: str) -> None:
    for key in keys:
        db.session.add(
            UnitProgress(
                user_id=user.id,
                cohort_id=cohort.id,
                unit_key=key,
                status=ProgressStatus.COMPLETED,
                completed_at=utcnow(),
                credited=True,
            )
        )
    db.session.flush()


def credit(
    user: User, cohort: Cohort, minutes: int, delivery: Delivery = Delivery.ONLINE, ref: str = ""
) -> None:
    credit_hours(
        user,
        cohort,
        source=HoursSource.ADJUSTMENT,
        source_ref=ref or f"test:{user.id}:{delivery}:{minutes}",
        delivery=delivery,
        minutes=minutes,
        evidence={},
    )


def attempt(user: User, cohort: Cohort, results: dict[str, bool], submitted_at=None, unit_key="m01-quiz"):
    score = sum(results.values())
    row = QuizAttempt(
        user_id=user.id,
        cohort_id=cohort.id,
        unit_key=unit_key,
        version_id=progress.cohort_version_id(cohort),
        answers={},
        results=results,
        score=float(score),
        max_score=float(len(results)),
        passed=score * 100 >= 60 * len(results),
        submitted_at=submitted_at or utcnow(),
    )
    db.session.add(row)
    db.session.flush()
    return row


@pytest.fixture
def trainees(create_user, dummy_cohort, people) -> list[User]:
    """Three more trainees in the dummy cohort (four with people['trainee'])."""
    users = [create_user(Role.TRAINEE, username=f"t-{n}", real_name=f"学员{n}") for n in range(3)]
    for user in users:
        cohorts.enroll(user, dummy_cohort)
    db.session.commit()
    return users


# --- one trainee --------------------------------------------------------------------------------------------


def test_module_progress_counts_online_units_and_credited_minutes(course, people, dummy_cohort):
    from lms import signals

    trainee = people["trainee"]
    complete(trainee, dummy_cohort, "m01-l01-what-ai-is", "m01-l02-project-lifecycle", "m02-quiz")
    signals.lesson_completed.send(
        None, user=trainee, cohort=dummy_cohort, unit_id="m01-l01-what-ai-is", minutes=40, evidence={}
    )
    modules = progress.module_progress(trainee, dummy_cohort)
    assert [m.module.key for m in modules][:2] == ["m01-ai-foundations", "m02-python-data"]
    first = modules[0]
    assert (first.done, first.total, first.online_minutes) == (2, len(M01_ONLINE), 40)
    assert (modules[1].done, modules[1].online_minutes) == (1, 0)
    assert sum(m.total for m in modules) == 45  # 37 lessons + 8 quizzes; labs and exercises are not counted


def test_next_units_follow_teaching_order_and_the_next_exercise_is_the_one_due_next(
    course, people, create_cohort
):
    trainee = people["trainee"]
    cohort = create_cohort(code="FRESH", starts_on=date.today(), ends_on=date.today() + timedelta(days=60))
    cohorts.enroll(trainee, cohort)
    complete(trainee, cohort, "m01-l01-what-ai-is", "m01-l03-business-to-ai-requirement")
    steps = progress.next_units(trainee, cohort, limit=3)
    assert [u.key for u in steps.units] == [
        "m01-l02-project-lifecycle",
        "m01-l04-platform-sizing",
        "m01-l05-frameworks-platforms",
    ]
    assert steps.exercise is not None
    assert steps.exercise.unit.key == "ex01-platform-sizing"
    assert steps.exercise.due_on == cohort.starts_on + timedelta(days=7)
    # Once its due date has passed, the next exercise is the one due after it.
    later = progress.next_units(trainee, cohort, today=date.today() + timedelta(days=8))
    assert later.exercise is not None and later.exercise.due_on >= date.today() + timedelta(days=8)
    assert later.exercise.unit.key != "ex01-platform-sizing"


def test_next_units_without_course_content_are_empty(people, dummy_cohort):
    steps = progress.next_units(people["trainee"], dummy_cohort)
    assert steps.units == [] and steps.exercise is None
    assert progress.module_progress(people["trainee"], dummy_cohort) == []


def test_trainee_dashboard_shows_module_progress_and_links_to_the_next_units(
    client, auth, course, people, dummy_cohort
):
    complete(people["trainee"], dummy_cohort, "m01-l01-what-ai-is")
    db.session.commit()
    auth.login("trainee1")
    page = client.get("/dashboard", headers=EN).get_data(as_text=True)
    assert "Module progress" in page
    assert "AI fundamentals and platform demand analysis" in page
    assert 'aria-label="1 of 6 units done"' in page
    assert f'href="/learn/{dummy_cohort.id}/units/m01-l02-project-lifecycle"' in page
    assert f'href="/learn/{dummy_cohort.id}/units/m01-l01-what-ai-is"' not in page
    assert "0.0 of 64 hours" in page  # the hours chart is still there


# --- the cohort grid ----------------------------------------------------------------------------------------


def test_grid_flags_trainees_more_than_20_percent_below_todays_expectation(
    course, people, dummy_cohort, trainees
):
    # The cohort runs 28 days and is 14 days in: 32 of its 64 hours are expected, 25.6 h is the line.
    today = dummy_cohort.starts_on + timedelta(days=14)
    on_track, at_the_line, behind = trainees
    credit(on_track, dummy_cohort, 1000)
    credit(on_track, dummy_cohort, 1000, Delivery.OFFLINE)
    credit(at_the_line, dummy_cohort, 1536, Delivery.OFFLINE)
    credit(behind, dummy_cohort, 1535)
    complete(on_track, dummy_cohort, *M01_ONLINE, "m02-l01-python-essentials", "m01-lab")
    db.session.commit()

    grid = progress.cohort_grid(dummy_cohort, today=today)
    assert grid.expected_minutes == pytest.approx(1920)
    rows = {row.trainee.username: row for row in grid.rows}
    assert not rows[on_track.username].behind
    assert not rows[at_the_line.username].behind
    assert rows[behind.username].behind
    assert rows["trainee1"].behind  # nothing credited
    assert grid.behind_count == 2
    assert [row.behind for row in grid.rows] == [True, True, False, False]  # behind first
    first = rows[on_track.username]
    assert (first.online_minutes, first.offline_minutes, first.total_minutes) == (1000, 1000, 2000)
    assert first.module_done[:2] == (6, 1)  # the lab is not an online unit
    assert first.units_done == 7 and grid.units_total == 45
    assert grid.module_totals[0] == 6


def test_nobody_is_behind_before_the_cohort_starts(people, dummy_cohort):
    grid = progress.cohort_grid(dummy_cohort, today=dummy_cohort.starts_on - timedelta(days=1))
    assert [row.behind for row in grid.rows] == [False]
    assert grid.modules == ()  # no course content imported: hours only


def test_withdrawn_trainees_leave_the_grid_and_the_completion_counts(course, people, dummy_cohort, trainees):
    complete(trainees[0], dummy_cohort, "m01-l01-what-ai-is")
    complete(trainees[1], dummy_cohort, "m01-l01-what-ai-is", "m01-quiz")
    cohorts.withdraw(_enrollment(trainees[1], dummy_cohort), actor=None)
    db.session.commit()
    grid = progress.cohort_grid(dummy_cohort)
    assert trainees[1].username not in {row.trainee.username for row in grid.rows}
    completion = {item.unit.key: item for item in progress.unit_completion(dummy_cohort)}
    assert (completion["m01-l01-what-ai-is"].completed, completion["m01-l01-what-ai-is"].trainees) == (1, 3)
    assert completion["m01-quiz"].completed == 0
    assert "m01-lab" not in completion and "ex01-platform-sizing" not in completion
    keys = list(completion)
    assert keys[: len(M01_ONLINE)] == M01_ONLINE  # teaching order


def _enrollment(user: User, cohort: Cohort):
    from lms.models import Enrollment

    return db.session.query(Enrollment).filter_by(user_id=user.id, cohort_id=cohort.id).one()


def test_grid_runs_the_same_few_queries_for_any_cohort_size(app, course, people, dummy_cohort, create_user):
    def queries() -> int:
        count = 0

        def count_query(*_args, **_kwargs) -> None:
            nonlocal count
            count += 1

        db.session.expire_all()
        cohort = db.session.get(Cohort, dummy_cohort.id)
        event.listen(db.engine, "before_cursor_execute", count_query)
        try:
            grid = progress.cohort_grid(cohort)
            progress.unit_completion(cohort)
        finally:
            event.remove(db.engine, "before_cursor_execute", count_query)
        assert len(grid.rows) == len(
            [e for e in cohort.enrollments if e.status != EnrollmentStatus.WITHDRAWN]
        )
        return count

    small = queries()
    for n in range(6):
        user = create_user(Role.TRAINEE, username=f"many-{n}")
        cohorts.enroll(user, dummy_cohort)
        complete(user, dummy_cohort, "m01-l01-what-ai-is")
        credit(user, dummy_cohort, 60 * n + 1)
    db.session.commit()
    assert queries() == small
    assert small <= 12


# --- quiz item analysis -------------------------------------------------------------------------------------


@pytest.fixture
def quiz_attempts(course, people, dummy_cohort, trainees, create_cohort, create_user):
    t1, t2, t3 = trainees
    now = utcnow()
    # t1's latest attempt is the one submitted last, even though it was stored first.
    attempt(t1, dummy_cohort, {"q1": True, "q2": False, "q3": True}, submitted_at=now)
    attempt(t1, dummy_cohort, {"q1": False, "q2": False, "q3": False}, submitted_at=now - timedelta(days=1))
    attempt(t2, dummy_cohort, {"q1": True, "q2": False, "q3": False})
    attempt(t3, dummy_cohort, {"q1": False, "q2": True, "q3": True})
    # Neither an attempt in another cohort nor one of a withdrawn trainee counts.
    other = create_cohort(code="ELSEWHERE")
    cohorts.enroll(people["trainee"], other)
    attempt(people["trainee"], other, {"q1": False, "q2": False, "q3": False})
    gone = create_user(Role.TRAINEE, username="gone")
    cohorts.withdraw(cohorts.enroll(gone, dummy_cohort), actor=None)
    attempt(gone, dummy_cohort, {"q1": False, "q2": False, "q3": False})
    db.session.commit()
    return trainees


def test_item_analysis_uses_latest_attempts_and_puts_the_most_missed_question_first(
    quiz_attempts, dummy_cohort
):
    analysis = progress.quiz_item_analysis(dummy_cohort, "m01-quiz")
    assert analysis is not None
    assert (analysis.attempts, analysis.attempted, analysis.trainees) == (4, 3, 4)
    answered = [q for q in analysis.questions if q.answered]
    assert [q.question_id for q in answered] == ["q2", "q1", "q3"]  # 1/3, then 2/3 in quiz order
    shares = {q.question_id: q.share_correct for q in answered}
    assert shares == {"q2": pytest.approx(1 / 3), "q1": pytest.approx(2 / 3), "q3": pytest.approx(2 / 3)}
    assert {q.question_id: (q.answered, q.correct) for q in answered} == {
        "q1": (3, 2),
        "q2": (3, 1),
        "q3": (3, 2),
    }
    unanswered = analysis.questions[len(answered) :]
    assert unanswered and all(q.share_correct is None for q in unanswered)
    assert [q.position for q in unanswered] == sorted(q.position for q in unanswered)
    assert analysis.questions[0].prompt["en"].startswith("In a region only 1 %")


def test_item_analysis_is_none_for_units_that_are_not_quizzes(course, dummy_cohort):
    assert progress.quiz_item_analysis(dummy_cohort, "m01-l01-what-ai-is") is None
    assert progress.quiz_item_analysis(dummy_cohort, "no-such-quiz") is None


def test_quiz_page_shows_questions_in_the_users_language_most_missed_first(
    client, auth, quiz_attempts, dummy_cohort
):
    auth.login("trainer1")
    response = client.get(f"/cohorts/{dummy_cohort.id}/quizzes/m01-quiz", headers=EN)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    q2 = page.index("In a region only 1 %")
    q1 = page.index("Which statement about artificial intelligence (AI)")
    assert q2 < q1
    assert 'aria-label="33% correct"' in page and "<caption" in page and 'scope="row"' in page
    assert client.get(f"/cohorts/{dummy_cohort.id}/quizzes/m01-l01-what-ai-is").status_code == 404


# --- trainer pages ------------------------------------------------------------------------------------------


def test_progress_page_highlights_trainees_behind_and_links_quiz_analysis(
    client, auth, course, people, dummy_cohort, trainees
):
    credit(trainees[0], dummy_cohort, 64 * 60)
    complete(trainees[0], dummy_cohort, "m01-l01-what-ai-is")
    db.session.commit()
    auth.login("trainer1")
    page = client.get(f"/cohorts/{dummy_cohort.id}/progress", headers=EN).get_data(as_text=True)
    assert page.count('class="behind"') == 3  # everyone but trainees[0]
    assert f"/cohorts/{dummy_cohort.id}/progress.csv" in page
    assert f"/cohorts/{dummy_cohort.id}/quizzes/m01-quiz" in page
    assert "1/6" in page and 'class="table-wrap"' in page and "<caption" in page
    cohort_page = client.get(f"/cohorts/{dummy_cohort.id}").get_data(as_text=True)
    assert f"/cohorts/{dummy_cohort.id}/progress" in cohort_page


def test_csv_export_is_utf8_with_bom_and_holds_the_grid(
    client, auth, course, people, dummy_cohort, create_user
):
    sneaky = create_user(Role.TRAINEE, username="sneaky", real_name='=HYPERLINK("http://x")')
    cohorts.enroll(sneaky, dummy_cohort)
    credit(people["trainee"], dummy_cohort, 90)
    credit(people["trainee"], dummy_cohort, 240, Delivery.OFFLINE)
    complete(people["trainee"], dummy_cohort, "m01-l01-what-ai-is", "m01-quiz")
    db.session.commit()
    auth.login("trainer1")
    response = client.get(f"/cohorts/{dummy_cohort.id}/progress.csv", headers=EN)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Username", "Real name", "Employer"]
    assert header[11] == "AI fundamentals and platform demand analysis (of 6 units)"
    assert len(header) == 11 + 8
    by_username = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    mine = by_username["trainee1"]
    assert mine["Real name"] == people["trainee"].real_name and "测试用户" in mine["Real name"]
    assert (mine["Online hours"], mine["Offline hours"], mine["Total hours"]) == ("1.5", "4.0", "5.5")
    assert (mine["Units done"], mine["Units in the course"], mine["Required hours"]) == ("2", "45", "64")
    assert mine[header[11]] == "2"
    assert by_username["sneaky"]["Real name"] == '\'=HYPERLINK("http://x")'


@pytest.mark.parametrize(
    "path", ["/cohorts/{id}/progress", "/cohorts/{id}/progress.csv", "/cohorts/{id}/quizzes/m01-quiz"]
)
def test_reports_are_for_the_cohorts_own_trainers_and_admins(
    client, auth, course, people, dummy_cohort, create_user, path
):
    create_user(Role.TRAINER, username="other-trainer")
    db.session.commit()
    url = path.format(id=dummy_cohort.id)
    auth.login("other-trainer")
    assert client.get(url).status_code == 404
    auth.logout()
    auth.login("trainee1")
    assert client.get(url).status_code == 403
    auth.logout()
    auth.login("admin1")
    assert client.get(url).status_code == 200
    assert client.get(path.format(id=2**70)).status_code == 404


# --- the API ------------------------------------------------------------------------------------------------


@pytest.fixture
def api(client):
    def get(user: User, path: str):
        _token, plain = tokens.issue_token(user, "test", None, actor=None)
        db.session.commit()
        return client.get(path, headers={"Authorization": f"Bearer {plain}"})

    return get


def test_courses_are_the_trainees_own_and_all_for_staff(api, course, people, dummy_cohort, create_course):
    create_course(code="OTHER-COURSE")
    db.session.commit()
    mine = api(people["trainee"], "/api/v1/courses").get_json()["items"]
    assert [c["code"] for c in mine] == ["AIET-P"]
    item = mine[0]
    assert item["title"] == {
        "zh_CN": "人工智能工程技术人员（初级）",
        "en": "AI Engineering Technician (Primary Level)",
    }
    assert item["level"] == "primary"
    assert item["hours"] == {"total": 64, "online": 32, "offline": 32}
    assert item["current_version"]["version"] == "2026.1"
    staff = api(people["trainer"], "/api/v1/courses").get_json()["items"]
    assert {c["code"] for c in staff} == {"AIET-P", "OTHER-COURSE"}
    other = next(c for c in staff if c["code"] == "OTHER-COURSE")
    assert other["current_version"] is None
    assert api(people["trainee"], f"/api/v1/courses/{other['id']}/outline").status_code == 404
    assert api(people["trainer"], f"/api/v1/courses/{other['id']}/outline").get_json()["modules"] == []


def test_outline_lists_modules_and_units_in_teaching_order(api, course, people, dummy_cohort):
    response = api(people["trainee"], f"/api/v1/courses/{dummy_cohort.course_id}/outline")
    assert response.status_code == 200
    outline = response.get_json()
    assert outline["course"]["code"] == "AIET-P"
    assert len(outline["modules"]) == 8
    first = outline["modules"][0]
    assert first["key"] == "m01-ai-foundations"
    assert [u["key"] for u in first["units"]][:2] == M01_ONLINE[:2]
    lesson = first["units"][0]
    assert lesson == {
        "key": "m01-l01-what-ai-is",
        "kind": "lesson",
        "title": {
            "zh_CN": "人工智能、机器学习与深度学习：是什么，不是什么",
            "en": "What AI, machine learning and deep learning are (and are not)",
        },
        "minutes": 40,
        "points": None,
        "due_days": None,
    }
    exercise = next(u for u in first["units"] if u["kind"] == "exercise")
    assert (exercise["key"], exercise["points"], exercise["due_days"]) == ("ex01-platform-sizing", 13, 7)
    assert api(people["trainee"], "/api/v1/courses/999999/outline").status_code == 404


def test_my_progress_reports_hours_units_and_statuses(api, course, people, dummy_cohort):
    trainee = people["trainee"]
    complete(trainee, dummy_cohort, "m01-l01-what-ai-is")
    db.session.add(
        UnitProgress(
            user_id=trainee.id, cohort_id=dummy_cohort.id, unit_key="m01-quiz", attempts=2, best_score=50.0
        )
    )
    credit(trainee, dummy_cohort, 40)
    credit(trainee, dummy_cohort, 240, Delivery.OFFLINE)
    db.session.commit()
    body = api(trainee, "/api/v1/me/progress").get_json()
    assert len(body["items"]) == 1
    item = body["items"][0]
    assert item["cohort"] == {"id": dummy_cohort.id, "code": "AIET-P-T1", "name": dummy_cohort.name}
    assert item["course_id"] == dummy_cohort.course_id and item["enrollment_status"] == "active"
    assert item["required_hours"] == 64
    assert item["hours"] == {"online_minutes": 40, "offline_minutes": 240, "required_minutes": 64 * 60}
    assert (item["units_done"], item["units_total"]) == (1, 45)
    units = {u["key"]: u for u in item["units"]}
    assert len(units) == 63
    assert units["m01-l01-what-ai-is"]["status"] == "completed" and units["m01-l01-what-ai-is"]["credited"]
    assert units["m01-quiz"] == {
        "key": "m01-quiz",
        "kind": "quiz",
        "module_key": "m01-ai-foundations",
        "status": "started",
        "credited": False,
        "best_score": 50.0,
        "attempts": 2,
    }
    assert units["m01-lab"]["status"] == "not_started"
    assert api(people["trainer"], "/api/v1/me/progress").get_json() == {"items": []}


def test_my_quiz_attempts_latest_first_and_filtered_by_cohort(api, quiz_attempts, people, dummy_cohort):
    t1 = quiz_attempts[0]
    items = api(t1, "/api/v1/me/quiz-attempts").get_json()["items"]
    assert [i["score"] for i in items] == [2.0, 0.0]
    assert set(items[0]) == {"id", "cohort_id", "unit_key", "score", "max_score", "passed", "submitted_at"}
    assert items[0]["unit_key"] == "m01-quiz" and items[0]["max_score"] == 3.0 and items[0]["passed"]
    trainee = people["trainee"]
    assert len(api(trainee, "/api/v1/me/quiz-attempts").get_json()["items"]) == 1
    assert api(trainee, f"/api/v1/me/quiz-attempts?cohort_id={dummy_cohort.id}").get_json() == {"items": []}
    bad = api(trainee, "/api/v1/me/quiz-attempts?cohort_id=abc")
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_request"
