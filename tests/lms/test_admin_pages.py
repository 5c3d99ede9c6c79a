from sqlalchemy import select

from lms.extensions import db
from lms.models import AuditLog, Enrollment, EnrollmentStatus, User

EN = {"Accept-Language": "en"}


def test_admin_creates_a_user_who_can_then_sign_in(client, auth, people, dummy_training_base):
    auth.login("admin1")
    response = auth.post(
        "/admin/users/new",
        {
            "username": "newtrainee",
            "real_name": "新学员",
            "email": "new@example.cn",
            "phone": "13900000000",
            "employer": "中原建设工程局",
            "role": "trainee",
            "institution_id": dummy_training_base.id,
            "password": "a-good-password",
        },
        form_page="/admin/users/new",
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.username == "newtrainee"))
    assert user is not None and user.real_name == "新学员"
    auth.logout()
    assert auth.login("newtrainee", "a-good-password").status_code == 302


def test_bad_user_form_input_gets_400_with_message_and_writes_nothing(
    client, auth, people, dummy_training_base
):
    auth.login("admin1")
    for username, email in (
        ("trainee1", "x@example.cn"),
        ("Bad Name!", "y@example.cn"),
        ("okname", "not-an-email"),
    ):
        response = auth.post(
            "/admin/users/new",
            {
                "username": username,
                "real_name": "某人",
                "email": email,
                "role": "trainee",
                "institution_id": dummy_training_base.id,
                "password": "a-good-password",
            },
            form_page="/admin/users/new",
            headers=EN,
        )
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert "already taken" in page or "Username must be" in page or "not a valid e-mail" in page
    assert db.session.scalar(select(User).where(User.username == "okname")) is None


def test_admin_resets_password_and_deactivates_with_audit(client, auth, people):
    trainee = people["trainee"]
    auth.login("admin1")
    page = f"/admin/users/{trainee.id}"
    assert (
        auth.post(
            f"/admin/users/{trainee.id}/password", {"new_password": "brand-new-pass"}, form_page=page
        ).status_code
        == 302
    )
    assert auth.post(f"/admin/users/{trainee.id}/deactivate", form_page=page).status_code == 303
    actions = {
        a.action for a in db.session.scalars(select(AuditLog).where(AuditLog.actor_id == people["admin"].id))
    }
    assert {"user.password_reset", "user.deactivated"} <= actions
    auth.logout()
    assert auth.login("trainee1", "brand-new-pass").status_code == 401  # deactivated
    auth.login("admin1")
    assert auth.post(f"/admin/users/{trainee.id}/reactivate", form_page=page).status_code == 303
    auth.logout()
    assert auth.login("trainee1", "brand-new-pass").status_code == 302


def test_a_signed_in_user_who_is_deactivated_loses_the_session(client, auth, people):
    auth.login("trainee1")
    people["trainee"].active = False
    db.session.commit()
    assert client.get("/dashboard").status_code == 302


def test_admin_cannot_deactivate_themselves(client, auth, people):
    auth.login("admin1")
    response = auth.post(
        f"/admin/users/{people['admin'].id}/deactivate", form_page=f"/admin/users/{people['admin'].id}"
    )
    assert response.status_code == 303
    assert db.session.get(User, people["admin"].id).active


def test_enrolment_is_all_or_nothing_and_withdrawal_keeps_the_record(
    client, auth, people, dummy_cohort, create_user
):
    other = create_user(username="trainee-b")
    db.session.commit()
    auth.login("admin1")
    page = f"/cohorts/{dummy_cohort.id}"
    auth.post(
        f"/admin/cohorts/{dummy_cohort.id}/enrollments",
        {"usernames": "trainee-b, no-such-user"},
        form_page=page,
    )
    assert db.session.scalar(select(Enrollment).where(Enrollment.user_id == other.id)) is None
    auth.post(f"/admin/cohorts/{dummy_cohort.id}/enrollments", {"usernames": "trainee-b"}, form_page=page)
    enrollment = db.session.scalar(select(Enrollment).where(Enrollment.user_id == other.id))
    assert enrollment is not None and enrollment.status == EnrollmentStatus.ACTIVE
    auth.post(f"/admin/cohorts/{dummy_cohort.id}/enrollments/{enrollment.id}/withdraw", form_page=page)
    assert db.session.get(Enrollment, enrollment.id).status == EnrollmentStatus.WITHDRAWN


def test_trainer_sees_own_cohort_but_not_anothers(
    client, auth, people, dummy_cohort, create_user, create_cohort
):
    other_trainer = create_user(role=people["trainer"].grants[0].role, username="trainer-x")
    other = create_cohort(code="OTHER", trainers=[other_trainer])
    db.session.commit()
    auth.login("trainer1")
    assert client.get(f"/cohorts/{dummy_cohort.id}").status_code == 200
    assert client.get(f"/cohorts/{other.id}").status_code == 404
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "AIET-P-T1" in dashboard and "OTHER" not in dashboard


def test_trainee_dashboard_shows_hours_against_requirement(client, auth, people, dummy_cohort):
    from lms import signals

    signals.lesson_completed.send(
        None, user=people["trainee"], cohort=dummy_cohort, unit_id="u1", minutes=90, evidence={}
    )
    db.session.commit()
    auth.login("trainee1")
    page = client.get("/dashboard", headers=EN).get_data(as_text=True)
    assert "1.5 of 64 hours" in page
    assert 'role="img"' in page  # the chart has a text alternative
