"""Walks every registered route as anonymous, trainee, trainer, assessor and admin.

The table below is the access policy written out by hand. A route missing from it fails the test, so
no route can be added without deciding who may use it; a route answering differently from its row
fails too.
"""

from __future__ import annotations

import re

import pytest

from lms.extensions import db
from lms.services import tokens
from tests.conftest import csrf_from

ANON, TRAINEE, TRAINER, ASSESSOR, ADMIN = "anonymous", "trainee", "trainer", "assessor", "admin"
EVERYONE = {ANON, TRAINEE, TRAINER, ASSESSOR, ADMIN}
SIGNED_IN = {TRAINEE, TRAINER, ASSESSOR, ADMIN}

# endpoint -> who may use it
POLICY: dict[str, set[str]] = {
    "static": EVERYONE,
    "auth.login": EVERYONE,
    "auth.logout": SIGNED_IN,
    "auth.set_locale": EVERYONE,
    "main.index": EVERYONE,
    "main.dashboard": SIGNED_IN,
    "main.show_cohort": {TRAINER, ADMIN},
    "account.settings": SIGNED_IN,
    "account.change_password": SIGNED_IN,
    "admin.list_users": {ADMIN},
    "admin.create_user": {ADMIN},
    "admin.edit_user": {ADMIN},
    "admin.reset_user_password": {ADMIN},
    "admin.deactivate_user": {ADMIN},
    "admin.reactivate_user": {ADMIN},
    "admin.add_grant": {ADMIN},
    "admin.revoke_grant": {ADMIN},
    "admin.import_users": {ADMIN},
    "admin.list_institutions": {ADMIN},
    "admin.list_cohorts": {ADMIN},
    "admin.create_cohort": {ADMIN},
    "admin.enroll_trainees": {ADMIN},
    "admin.withdraw_enrollment": {ADMIN},
    "api.get_me": SIGNED_IN,
    "api.list_users": {ADMIN},
    "api.list_cohorts": SIGNED_IN,
    "api.list_enrollments": {TRAINER, ADMIN},
    "api.openapi_document": EVERYONE,
    "learn.show_course": {TRAINEE, TRAINER, ADMIN},
    "learn.show_unit": {TRAINEE, TRAINER, ADMIN},
    "learn.record_heartbeat": {TRAINEE, TRAINER, ADMIN},
    "learn.complete_unit": {TRAINEE, TRAINER, ADMIN},
    "learn.submit_quiz": {TRAINEE, TRAINER, ADMIN},
    "learn.show_asset": {TRAINEE, TRAINER, ADMIN},
    "labs_feeds.get_feed": EVERYONE,
    "labs_feeds.show_my_feed": SIGNED_IN,
    "labs_feeds.regenerate_my_feed": SIGNED_IN,
    "labs_feeds.revoke_my_feed": SIGNED_IN,
    "labs_feeds.show_room_feed": {ADMIN},
    "labs_feeds.regenerate_room_feed": {ADMIN},
    "labs_feeds.revoke_room_feed": {ADMIN},
    "labs_reports.list_reports": {TRAINER, ADMIN},
    "labs_reports.show_cohort_attendance": {TRAINER, ADMIN},
    "labs_reports.export_cohort_attendance": {TRAINER, ADMIN},
    "labs_reports.show_room_seat_use": {ADMIN},
    "labs_reports.export_room_seat_use": {ADMIN},
    "labs_planner.plan_cohort": {TRAINER, ADMIN},
    "labs_planner.accept_plan": {TRAINER, ADMIN},
    "labs.list_sites": {ADMIN},
    "labs.show_site": {ADMIN},
    "labs.create_room": {ADMIN},
    "labs.list_sessions": {TRAINER, ADMIN},
    "labs.create_session": {TRAINER, ADMIN},
    "labs.calendar": {TRAINER, ADMIN},
    "labs.show_occurrence": {TRAINER, ADMIN},
    "labs.cancel_occurrence": {TRAINER, ADMIN},
    "labs.assign_cohort": {TRAINER, ADMIN},
    "labs.list_upcoming": {TRAINEE},
    "labs.my_bookings": {TRAINEE},
    "labs.book_seat": {TRAINEE},
    "labs.cancel_booking": {TRAINEE},
    "labs_checkin.show_checkin_screen": {TRAINER, ADMIN},
    "labs_checkin.get_checkin_code": {TRAINER, ADMIN},
    "labs_checkin.list_open_checkins": {TRAINEE},
    "labs_checkin.check_in": {TRAINEE},
    "labs_checkin.show_roster": {TRAINER, ADMIN},
    "labs_checkin.mark_attendance": {TRAINER, ADMIN},
    "labs_checkin.print_sign_in_sheet": {TRAINER, ADMIN},
    "labs_api.list_occurrences": SIGNED_IN,
    "labs_api.create_booking": {TRAINEE},
    "labs_api.get_booking": SIGNED_IN,
    "labs_api.cancel_booking": SIGNED_IN,
    "labs_api.get_checkin_code": {TRAINER, ADMIN},
    "labs_api.check_in": {TRAINEE},
    "labs_api.get_calendar_feed": SIGNED_IN,
    "reports.show_progress": {TRAINER, ADMIN},
    "reports.export_progress": {TRAINER, ADMIN},
    "reports.show_quiz_analysis": {TRAINER, ADMIN},
    "api.list_courses": SIGNED_IN,
    "api.get_course_outline": SIGNED_IN,
    "api.get_my_progress": SIGNED_IN,
    "api.list_my_quiz_attempts": SIGNED_IN,
    "api.list_my_certificates": SIGNED_IN,
    "api.get_my_completion": SIGNED_IN,
    "completion.show_checklist": SIGNED_IN,
    "completion.show_eligibility": {TRAINER, ADMIN},
    "completion.export_eligibility": {TRAINER, ADMIN},
    "completion.download_certificate": SIGNED_IN,
    "completion.revoke": {TRAINER, ADMIN},
    "completion.change_rules": {ADMIN},
    "completion.verify_form": EVERYONE,
    "completion.verify": EVERYONE,
    "assessment.hand_over": {TRAINER, ADMIN},
    "assessment.list_sites": {ASSESSOR, ADMIN},
    "assessment.show_site": {ASSESSOR, ADMIN},
    "assessment.create_room": {ASSESSOR, ADMIN},
    "assessment.schedule_exam": {ASSESSOR, ADMIN},
    "assessment.show_exam": {ASSESSOR, ADMIN},
    "assessment.import_results": {ASSESSOR, ADMIN},
    "assessment.admission_slip": SIGNED_IN,
    "records.show_my_transcript": SIGNED_IN,
    "records.export_my_transcript": SIGNED_IN,
    "records.print_my_transcript": SIGNED_IN,
    "records.print_trainee_transcript": {TRAINER, ADMIN},
    "records.download_subsidy_pack": {TRAINER, ADMIN},
    "records.list_audit": {ADMIN},
    "api.get_my_transcript": SIGNED_IN,
    "graders.static": EVERYONE,
    "graders.list_assignments": {TRAINEE},
    "graders.show_assignment": {TRAINEE, TRAINER, ADMIN},
    "graders.download_release": {TRAINEE, TRAINER, ADMIN},
    "graders.submit": {TRAINEE},
    "graders.show_submission": {TRAINEE, TRAINER, ADMIN},
    "graders.submission_status": {TRAINEE, TRAINER, ADMIN},
    "graders.show_feedback": {TRAINEE, TRAINER, ADMIN},
    "graders_grading.cohort_assignments": {TRAINER, ADMIN},
    "graders_grading.publish": {TRAINER, ADMIN},
    "graders_grading.edit_settings": {TRAINER, ADMIN},
    "graders_grading.queue": {TRAINER, ADMIN},
    "graders_grading.grade_submission": {TRAINER, ADMIN},
    "graders_grading.regrade": {TRAINER, ADMIN},
    "graders_grading.release": {TRAINER, ADMIN},
    "graders_grading.history": {TRAINER, ADMIN},
    "graders_grading.gradebook": {TRAINER, ADMIN},
    "graders_grading.export_gradebook": {TRAINER, ADMIN},
    "graders_api.list_assignments": SIGNED_IN,
    "graders_api.download_release": SIGNED_IN,
    "graders_api.create_submission": {TRAINEE},
    "graders_api.get_submission": SIGNED_IN,
}

IDENTITIES = [ANON, TRAINEE, TRAINER, ASSESSOR, ADMIN]


def _routes(app) -> list[tuple[str, str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, rule.rule))
    return routes


def test_every_route_has_a_row_in_the_policy(app):
    missing = sorted({endpoint for endpoint, _m, _r in _routes(app)} - set(POLICY))
    assert not missing, f"routes without an access row in this test: {missing}"
    stale = sorted(set(POLICY) - {endpoint for endpoint, _m, _r in _routes(app)})
    assert not stale, f"rows for routes that no longer exist: {stale}"


def test_every_view_declares_an_access_rule(app):
    from lms.access import rule_for

    undeclared = sorted(e for e, _m, _r in _routes(app) if rule_for(app, e) is None)
    assert not undeclared


def _fill(rule: str, values: dict[str, int | str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        assert name in values, f"add a sample value for <{name}> in test_route_access"
        return str(values[name])

    return re.sub(r"<(?:(\w+):)?(\w+)>", replace, rule)


def _sample_room_id(cohort) -> int:
    """A labs room at the cohort's training base (for /labs/.../rooms/<room_id> routes)."""
    from labs.models import Room, Site

    site = Site(institution_id=cohort.training_base_id, code="ACCESS-SITE", name="实训楼")
    room = Room(site=site, code="R1", name="实训室", seats=30)
    db.session.add(room)
    db.session.commit()
    return room.id


@pytest.fixture
def sample_values(people, dummy_cohort) -> dict[str, int | str]:
    trainee = people["trainee"]
    return {
        "user_id": trainee.id,
        "grant_id": trainee.grants[0].id,
        "cohort_id": dummy_cohort.id,
        "serial": "AIET-P-2026-NOSUCH00",
        "exam_id": 999_999,
        "candidate_id": 999_999,
        "enrollment_id": dummy_cohort.enrollments[0].id,
        "filename": "lms.css",
        "feed_token": "not-a-feed-token-0123456789",
        "room_id": _sample_room_id(dummy_cohort),
        "unit_key": "m01-quiz",
        "course_id": dummy_cohort.course_id,
        "site_id": 999999,  # none: allowed users get 404, others are refused first
        "booking_id": 999999,
        "occurrence_id": 999999,
        "version_id": 999999,  # no such course version: allowed users get 404
        "path": "images/none.svg",
        "assignment_id": 999999,  # none: allowed users get 404
        "submission_id": 999999,
    }


def _answer_is_allowed(identity: str, endpoint: str, response) -> bool:
    status = response.status_code
    location = response.headers.get("Location", "")
    if status in (401, 403):
        return False
    # The access hook sends anonymous visitors to /login?next=...; other redirects are the view's own.
    return not (status == 302 and "/login?next=" in location)


@pytest.mark.parametrize("endpoint", sorted(POLICY))
def test_route_answers_as_the_policy_says(app, people, sample_values, endpoint):
    tokens_by_identity = {}
    for identity in SIGNED_IN:
        _token, plain = tokens.issue_token(people[identity], "access-test", 1, actor=None)
        tokens_by_identity[identity] = plain
    db.session.commit()
    routes = [(m, r) for e, m, r in _routes(app) if e == endpoint]
    assert routes, f"{endpoint} is not registered"
    for method, rule in routes:
        path = _fill(rule, sample_values)
        for identity in IDENTITIES:
            client = app.test_client()
            headers = {}
            if path.startswith("/api/"):
                if identity != ANON:
                    headers["Authorization"] = f"Bearer {tokens_by_identity[identity]}"
            elif identity != ANON:
                page = client.get("/login").get_data(as_text=True)
                login = client.post(
                    "/login",
                    data={
                        "username": people[identity].username,
                        "password": "correct-horse-9",
                        "csrf_token": csrf_from(page),
                    },
                )
                assert login.status_code == 302, f"{identity} could not sign in"
            data = None
            if method == "POST" and not path.startswith("/api/"):  # the API takes no CSRF token
                page = client.get("/login" if identity == ANON else "/dashboard").get_data(as_text=True)
                data = {"csrf_token": csrf_from(page)}
            response = client.open(path, method=method, data=data, headers=headers)
            response.close()  # static files are streamed from an open file
            assert response.status_code < 500, f"{method} {path} as {identity}: {response.status_code}"
            allowed = identity in POLICY[endpoint]
            assert _answer_is_allowed(identity, endpoint, response) == allowed, (
                f"{method} {path} as {identity}: got {response.status_code} "
                f"{response.headers.get('Location', '')}, expected {'access' if allowed else 'refusal'}"
            )
            if not allowed:
                expected = (401 if path.startswith("/api/") else 302) if identity == ANON else 403
                assert response.status_code == expected, f"{method} {path} as {identity}"
