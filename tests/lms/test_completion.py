"""Completion: the rules (pure), their check in the curriculum validator, evaluation as real evidence
arrives through the signals, the certificate (PDF with Chinese text, public verification, revocation)
and the API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from curriculum.importer import import_course
from curriculum.loader import load_course
from lms import signals
from lms.completion import (
    CompletionRules,
    RuleUnit,
    TraineeRecord,
    checklist,
    problems_in,
    rules_from,
)
from lms.extensions import db
from lms.models import AuditLog, Certificate, Cohort, Enrollment, EnrollmentStatus, User
from lms.services import completion, learning, tokens
from lms.services.certificates import (
    CertificateError,
    find_by_serial,
    masked_name,
    render_pdf,
    revoke_certificate,
)
from tests.conftest import csrf_from
from tests.lms.test_learning import course_dir  # noqa: F401  (fixture: the tiny course's files)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
UNITS = [
    RuleUnit("lab1", "lab", {"zh_CN": "实验一", "en": "Lab 1"}),
    RuleUnit("lab2", "lab", {"zh_CN": "实验二", "en": "Lab 2"}),
    RuleUnit("lab3", "lab", {"zh_CN": "实验三", "en": "Lab 3"}),
    RuleUnit("quiz1", "quiz", {"zh_CN": "测验", "en": "Quiz"}),
    RuleUnit("ex1", "exercise", {"zh_CN": "练习", "en": "Exercise"}),
    RuleUnit("capstone", "exercise", {"zh_CN": "综合项目", "en": "Capstone"}),
]
KINDS = {unit.key: unit.kind for unit in UNITS}
ALL_RIGHT = {"q1": "b", "q2": ["a", "c"], "q3": "true", "q4": "4"}
COMPLETION_BLOCK = """\
completion:
  hours: {total: 2, online: 1, offline: 1}
  lab_attendance: 1
  exercise_pass_mark: 60
  final_project: ex01-double
"""


# --- the rules, pure ----------------------------------------------------------------------------------


def test_layers_override_the_course_hours_and_each_other() -> None:
    course = {"total": 64, "online": 32, "offline": 32}
    rules = rules_from(
        course,
        {
            "hours": {"total": 58},
            "lab_attendance": 0.875,
            "pass_marks": {"ex1": 70},
            "final_project": "capstone",
        },
        {"hours": {"offline": 20}, "pass_marks": {"quiz1": 80}, "final_project": None},
    )
    assert (rules.total_hours, rules.online_hours, rules.offline_hours) == (58, 32, 20)
    assert rules.lab_attendance == 0.875 and rules.exercise_pass_mark == 60 and rules.quizzes
    assert dict(rules.pass_marks) == {"ex1": 70, "quiz1": 80}
    assert rules.final_project is None  # a cohort can drop the final project


@pytest.mark.parametrize(
    ("block", "where", "message"),
    [
        ({"hours": {"total": -1}}, ("hours", "total"), "hours.total must be a number of hours"),
        ({"hours": {"weekly": 3}}, ("hours", "weekly"), "unknown hours 'weekly'"),
        ({"lab_attendance": 80}, ("lab_attendance",), "share from 0 to 1"),
        ({"exercise_pass_mark": 101}, ("exercise_pass_mark",), "percentage from 0 to 100"),
        ({"quizzes": "yes"}, ("quizzes",), "true (every quiz passed) or false"),
        ({"pass_marks": {"lab1": 50}}, ("pass_marks", "lab1"), "not an exercise or quiz"),
        ({"pass_marks": {"ex1": "half"}}, ("pass_marks", "ex1"), "must be a percentage"),
        ({"final_project": "quiz1"}, ("final_project",), "not an exercise unit"),
        ({"attendance": 1}, ("attendance",), "unknown rule 'attendance'"),
        ("all", (), "must be a mapping"),
    ],
)
def test_every_bad_rule_is_named_with_where_it_is(block: Any, where: tuple, message: str) -> None:
    problems = problems_in(block, KINDS)
    assert len(problems) == 1
    assert problems[0][0] == where and message in problems[0][1]


def _record(**values: Any) -> TraineeRecord:
    return TraineeRecord(**values)


def test_lab_share_rounds_up_and_the_final_project_comes_first() -> None:
    rules = CompletionRules(
        total_hours=0,
        online_hours=0,
        offline_hours=0,
        lab_attendance=0.5,
        pass_marks={"capstone": 70},
        final_project="capstone",
    )
    result = checklist(rules, UNITS, _record(attended_labs=frozenset({"lab1"})))
    labs = next(item for item in result.items if item.kind == "lab_attendance")
    assert (labs.have, labs.need, labs.done) == (1, 2, False)  # half of 3 labs is 2, not 1
    assert [item.kind for item in result.items][:2] == ["lab_attendance", "final_project"]
    capstone = result.items[1]
    assert capstone.need == 70 and not capstone.done


def test_checklist_holds_exactly_when_every_requirement_does() -> None:
    rules = CompletionRules(total_hours=2, online_hours=1, offline_hours=1, lab_attendance=1)
    done = _record(
        online_minutes=60,
        offline_minutes=60,
        attended_labs=frozenset({"lab1", "lab2", "lab3"}),
        best_percent={"ex1": 60.0, "capstone": 100.0, "quiz1": 80.0},
        quizzes_passed=frozenset({"quiz1"}),
    )
    assert checklist(rules, UNITS, done).complete
    for short in (
        {"online_minutes": 59},
        {"attended_labs": frozenset({"lab1", "lab2"})},
        {"best_percent": {"ex1": 59.9, "capstone": 100.0, "quiz1": 80.0}},
        {"quizzes_passed": frozenset()},
    ):
        result = checklist(rules, UNITS, TraineeRecord(**{**done.__dict__, **short}))
        assert not result.complete and len(result.left) >= 1


def test_a_quiz_pass_mark_override_replaces_the_quizs_own() -> None:
    rules = CompletionRules(total_hours=0, online_hours=0, offline_hours=0, pass_marks={"quiz1": 90})
    passed_at_own_mark = _record(best_percent={"quiz1": 80.0}, quizzes_passed=frozenset({"quiz1"}))
    quiz = next(i for i in checklist(rules, UNITS, passed_at_own_mark).items if i.kind == "quiz")
    assert not quiz.done and quiz.need == 90


@pytest.mark.parametrize(
    ("name", "masked"),
    [("王志强", "王*强"), ("欧阳娜娜", "欧**娜"), ("李娜", "李*"), ("Wang Fang", "W*** F***"), ("", "")],
)
def test_names_are_masked_for_strangers(name: str, masked: str) -> None:
    assert masked_name(name) == masked


# --- the curriculum validator ----------------------------------------------------------------------------


def test_validator_reports_a_bad_rule_with_file_and_line(course_dir: Path) -> None:  # noqa: F811
    text = (course_dir / "course.yaml").read_text()
    bad = COMPLETION_BLOCK.replace("final_project: ex01-double", "final_project: m01-lab")
    written = text.replace("modules:\n", bad + "modules:\n")
    (course_dir / "course.yaml").write_text(written)
    from curriculum.loader import CourseInvalid

    with pytest.raises(CourseInvalid) as raised:
        load_course(course_dir)
    line = 1 + written.splitlines().index("  final_project: m01-lab")
    assert any(
        p.line == line and "final_project names 'm01-lab', which is not an exercise unit" in p.message
        for p in raised.value.problems
    )


# --- evaluation as evidence arrives ----------------------------------------------------------------------


@pytest.fixture
def cohort(app, people, dummy_cohort, course_dir: Path) -> Cohort:  # noqa: F811
    """``dummy_cohort`` on the tiny course (lesson 40 min, quiz 20 min, lab 60 min, exercise 3 points),
    with rules asking for everything, the exercise as final project."""
    text = (course_dir / "course.yaml").read_text()
    (course_dir / "course.yaml").write_text(text.replace("modules:\n", COMPLETION_BLOCK + "modules:\n"))
    import_course(load_course(course_dir))
    db.session.commit()
    return dummy_cohort


def test_a_course_without_rules_asks_for_its_hours_and_the_defaults(
    app,
    people,
    dummy_cohort,
    course_dir: Path,  # noqa: F811
) -> None:
    import_course(load_course(course_dir))
    db.session.commit()
    rules = completion.cohort_rules(dummy_cohort)
    assert (rules.online_hours, rules.offline_hours) == (1, 1)
    assert rules.total_hours == max(2, dummy_cohort.required_hours)
    assert (rules.lab_attendance, rules.exercise_pass_mark, rules.final_project) == (0.8, 60, None)
    # evidence arriving is checked against those rules
    signals.lesson_completed.send(
        None, user=people["trainee"], cohort=dummy_cohort, unit_id="m01-l01-intro", minutes=40, evidence={}
    )
    left = completion.trainee_checklist(people["trainee"], dummy_cohort).left
    assert "hours_online" in {item.kind for item in left}


def _do_everything_but_the_exercise(trainee: User, cohort: Cohort, *, lab: bool = True) -> None:
    signals.lesson_completed.send(
        None, user=trainee, cohort=cohort, unit_id="m01-l01-intro", minutes=40, evidence={"kind": "test"}
    )
    quiz = learning.get_unit(cohort, "m01-quiz")
    assert quiz is not None
    learning.submit_quiz(trainee, cohort, quiz, ALL_RIGHT, attempt_number=1, locale="en")
    signals.lesson_completed.send(
        None, user=trainee, cohort=cohort, unit_id="m01-quiz", minutes=20, evidence={"kind": "test"}
    )
    if not lab:
        db.session.flush()
        return
    signals.lab_attendance_recorded.send(
        None,
        user=trainee,
        cohort=cohort,
        occurrence_id=7,
        minutes=60,
        evidence={"kind": "lab_attendance", "unit_key": "m01-lab", "occurrence_id": 7},
    )
    db.session.flush()


def _grade_exercise(trainee: User, cohort: Cohort, score: float) -> None:
    signals.submission_graded.send(
        None, user=trainee, cohort=cohort, assignment_id=1, unit_key="ex01-double", score=score, max_score=3.0
    )
    db.session.flush()


def _certificates() -> int:
    return db.session.scalar(select(func.count()).select_from(Certificate)) or 0


def test_the_certificate_is_issued_when_the_last_evidence_arrives(cohort, people) -> None:
    trainee = people["trainee"]
    _do_everything_but_the_exercise(trainee, cohort)
    result = completion.trainee_checklist(trainee, cohort)
    assert [item.kind for item in result.left] == ["final_project"]
    assert _certificates() == 0

    _grade_exercise(trainee, cohort, 1.0)  # 33%: below the pass mark
    assert _certificates() == 0
    _grade_exercise(trainee, cohort, 3.0)
    db.session.commit()

    certificate = db.session.scalar(select(Certificate))
    assert certificate is not None and certificate.user_id == trainee.id
    assert re.fullmatch(r"AIET-P-\d{4}-[2-9A-HJ-NP-Z]{8}", certificate.serial)
    assert (certificate.online_minutes, certificate.offline_minutes) == (60, 60)
    assert certificate.holder_name == trainee.real_name and certificate.issuer_id == cohort.training_base_id
    enrollment = db.session.scalar(select(Enrollment).where(Enrollment.user_id == trainee.id))
    assert (
        enrollment is not None and enrollment.status == EnrollmentStatus.COMPLETED and enrollment.completed_at
    )
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "certificate.issued")) is not None

    _grade_exercise(trainee, cohort, 3.0)  # more evidence: still one certificate
    completion.reevaluate(trainee, cohort)
    assert _certificates() == 1


def test_a_withdrawn_trainee_gets_no_certificate(cohort, people) -> None:
    trainee = people["trainee"]
    enrollment = db.session.scalar(select(Enrollment).where(Enrollment.user_id == trainee.id))
    assert enrollment is not None
    enrollment.status = EnrollmentStatus.WITHDRAWN
    _do_everything_but_the_exercise(trainee, cohort)
    _grade_exercise(trainee, cohort, 3.0)
    assert _certificates() == 0


def test_cohort_overrides_are_checked_audited_and_applied(cohort, people) -> None:
    trainee = people["trainee"]
    _do_everything_but_the_exercise(trainee, cohort, lab=False)
    _grade_exercise(trainee, cohort, 3.0)
    assert {item.kind for item in completion.trainee_checklist(trainee, cohort).left} == {
        "hours_total",
        "hours_offline",
        "lab_attendance",
    }
    with pytest.raises(completion.InvalidCompletionRules, match="not an exercise unit"):
        completion.set_cohort_overrides(cohort, {"final_project": "m01-lab"}, people["admin"])
    assert cohort.completion_overrides == {} and _certificates() == 0
    # this cohort's labs could not take place: the trainer drops them, and the trainee completes at once
    overrides = {"hours": {"total": 1, "offline": 0}, "lab_attendance": 0}
    rules = completion.set_cohort_overrides(cohort, overrides, people["admin"])
    assert (rules.total_hours, rules.offline_hours, rules.lab_attendance) == (1, 0, 0)
    assert _certificates() == 1
    change = db.session.scalar(select(AuditLog).where(AuditLog.action == "completion.rules_changed"))
    assert change is not None and change.details == {"old": {}, "new": overrides}


def test_eligibility_page_and_csv_show_what_is_left(client, auth, cohort, people) -> None:
    _do_everything_but_the_exercise(people["trainee"], cohort)
    db.session.commit()
    auth.login("trainer1")
    html = client.get(f"/cohorts/{cohort.id}/eligibility").get_data(as_text=True)
    assert "0 of 1 trainees have completed" in html
    assert "Final project: Doubling" in html
    csv_text = client.get(f"/cohorts/{cohort.id}/eligibility.csv").data.decode("utf-8-sig")
    assert csv_text.splitlines()[1].startswith("trainee1,") and ",no,ex01-double," in csv_text


def test_admin_changes_the_cohorts_rules_on_the_page(client, auth, cohort, people) -> None:
    _do_everything_but_the_exercise(people["trainee"], cohort, lab=False)
    _grade_exercise(people["trainee"], cohort, 3.0)
    db.session.commit()
    auth.login("admin1")
    page = client.get(f"/cohorts/{cohort.id}/eligibility").get_data(as_text=True)
    assert 'name="total_hours"' in page and 'value="2.0"' in page
    form = {
        "csrf_token": csrf_from(page),
        "total_hours": "1",
        "online_hours": "1",
        "offline_hours": "0",
        "lab_attendance": "0",
        "exercise_pass_mark": "60",
        "quizzes": "y",
        "final_project": "ex01-double",
    }
    assert (
        client.post(
            f"/cohorts/{cohort.id}/completion-rules", data={**form, "lab_attendance": "150"}
        ).status_code
        == 302
    )
    assert _certificates() == 0 and cohort.completion_overrides == {}
    assert client.post(f"/cohorts/{cohort.id}/completion-rules", data=form).status_code == 302
    db.session.expire_all()
    assert _certificates() == 1
    assert cohort.completion_overrides["lab_attendance"] == 0
    assert cohort.completion_overrides["final_project"] == "ex01-double"
    reset = client.post(f"/cohorts/{cohort.id}/completion-rules", data={**form, "reset": "y"})
    assert reset.status_code == 302
    db.session.expire_all()
    assert cohort.completion_overrides == {} and _certificates() == 1  # the certificate stands


def test_trainee_checklist_page_shows_done_and_left(client, auth, cohort, people) -> None:
    _do_everything_but_the_exercise(people["trainee"], cohort)
    db.session.commit()
    auth.login("trainee1")
    html = client.get(f"/learn/{cohort.id}/completion").get_data(as_text=True)
    assert "1 requirement left of 6." in html
    assert html.count('class="done"') == 5 and html.count('class="left"') == 1
    assert "not graded yet; pass mark 60%" in html


# --- the certificate -------------------------------------------------------------------------------------


@pytest.fixture
def certificate(cohort, people) -> Certificate:
    trainee = people["trainee"]
    trainee.real_name = "王志强"
    _do_everything_but_the_exercise(trainee, cohort)
    _grade_exercise(trainee, cohort, 3.0)
    db.session.commit()
    found = db.session.scalar(select(Certificate))
    assert found is not None
    return found


def test_certificate_pdf_shows_the_chinese_text_in_noto_cjk(app, certificate) -> None:
    import pypdf
    import pypdfium2

    with app.test_request_context():
        pdf = render_pdf(certificate, f"https://lms.example.cn/verify/{certificate.serial}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "certificate.pdf").write_bytes(pdf)
    reader = pypdf.PdfReader(ARTIFACTS / "certificate.pdf")
    text = reader.pages[0].extract_text()
    for expected in (
        "培训合格证书",
        "王志强",
        certificate.course_title["zh_CN"],
        "经考核合格，特发此证",
        certificate.serial,
    ):
        assert expected in text.replace(" ", "")
    fonts = {
        str(font["/BaseFont"])
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()
        if "/BaseFont" in font.get_object()
        for font in [font.get_object()]
    }
    assert any("CJK" in name for name in fonts), fonts  # the glyphs come from an embedded Noto CJK font

    document = pypdfium2.PdfDocument(pdf)
    try:
        page = document[0]
        assert "培训合格证书" in page.get_textpage().get_text_range().replace(" ", "")
        image = page.render(scale=1.5).to_pil()
        page.close()
    finally:
        document.close()
    image.save(ARTIFACTS / "certificate.png")
    width, height = image.size
    assert width > height  # A4 landscape
    # the title is drawn: dark red ink across the top middle of the page
    title = image.crop((int(width * 0.3), int(height * 0.1), int(width * 0.7), int(height * 0.25)))
    reds = sum(1 for r, g, b in title.convert("RGB").get_flattened_data() if r > 90 and g < 70 and b < 70)
    assert reds > 500


def test_verification_page_is_public_and_masks_the_name(app, certificate) -> None:
    client = app.test_client()
    html = client.get(f"/verify/{certificate.serial.lower()}").get_data(as_text=True)
    assert "王*强" in html and "王志强" not in html
    assert "Valid" in html or "有效" in html
    assert client.get("/verify/AIET-P-2026-NOSUCH00").status_code == 404
    assert client.get("/verify?serial=" + certificate.serial).headers["Location"].endswith(certificate.serial)


def test_revocation_is_audited_and_shown(app, client, auth, certificate, people) -> None:
    with pytest.raises(CertificateError):
        revoke_certificate(certificate, people["admin"], "   ")
    auth.login("admin1")
    page = client.get(f"/cohorts/{certificate.cohort_id}/eligibility").get_data(as_text=True)
    response = client.post(
        f"/certificates/{certificate.serial}/revoke",
        data={"csrf_token": csrf_from(page), "reason": "Attendance records were forged."},
    )
    assert response.status_code == 302
    db.session.expire_all()
    revoked = find_by_serial(certificate.serial)
    assert revoked is not None and revoked.revoked and revoked.revoked_by_id == people["admin"].id
    line = db.session.scalar(select(AuditLog).where(AuditLog.action == "certificate.revoked"))
    assert line is not None and line.actor_id == people["admin"].id
    assert line.details["reason"] == "Attendance records were forged."
    html = app.test_client().get(f"/verify/{certificate.serial}").get_data(as_text=True)
    assert "Revoked" in html or "已撤销" in html
    with pytest.raises(CertificateError):
        revoke_certificate(revoked, people["admin"], "again")
    assert client.get(f"/certificates/{certificate.serial}.pdf").status_code == 410


def test_only_the_holder_and_the_cohorts_staff_get_the_pdf(app, create_user, certificate, people) -> None:
    from lms.models import Role

    stranger = create_user(Role.TRAINEE, username="stranger")
    db.session.commit()
    for username, status in (("trainee1", 200), ("trainer1", 200), ("stranger", 404)):
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        client.post(
            "/login",
            data={"username": username, "password": "correct-horse-9", "csrf_token": csrf_from(page)},
        )
        response = client.get(f"/certificates/{certificate.serial}.pdf")
        assert response.status_code == status, username
        if status == 200:
            assert response.data.startswith(b"%PDF") and response.mimetype == "application/pdf"
    assert stranger.id


def test_api_lists_certificates_and_the_checklist(app, certificate, people) -> None:
    _token, plain = tokens.issue_token(people["trainee"], "test", 1, actor=None)
    db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {plain}"}
    items = client.get("/api/v1/me/certificates", headers=headers).get_json()["items"]
    assert [item["serial"] for item in items] == [certificate.serial]
    assert items[0]["verification_url"].endswith(f"/verify/{certificate.serial}")
    assert items[0]["pdf_url"].endswith(f"/certificates/{certificate.serial}.pdf")
    assert items[0]["hours"] == {"online_minutes": 60, "offline_minutes": 60}
    completion_items = client.get("/api/v1/me/completion", headers=headers).get_json()["items"]
    assert completion_items[0]["complete"] is True
    assert {r["kind"] for r in completion_items[0]["requirements"]} >= {"hours_total", "final_project"}
