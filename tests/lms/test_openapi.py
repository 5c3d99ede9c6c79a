"""The OpenAPI document: it covers every /api/v1 route, it is valid OpenAPI, and the API keeps to it."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from lms import create_app
from lms.api.openapi import HTTP_METHODS, build_document
from lms.services import tokens

API_PREFIX = "/api/v1"
RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def routed_operations(app) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every registered route under /api/v1."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.rule == API_PREFIX or rule.rule.startswith(API_PREFIX + "/"):
            path = RULE_ARGUMENT.sub(r"{\1}", rule.rule)
            operations |= {(path, method) for method in rule.methods - IGNORED_METHODS}
    return operations


def documented_operations(document) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("/api/v1/me", "/api/v1/me"),
        ("/api/v1/cohorts/<int:cohort_id>/enrollments", "/api/v1/cohorts/{cohort_id}/enrollments"),
        ("/api/v1/a/<int(max=9):a_id>/<path:rest>", "/api/v1/a/{a_id}/{rest}"),
        ("/api/v1/b/<name>", "/api/v1/b/{name}"),
    ],
)
def test_rule_arguments_become_path_templates(rule, path):
    assert RULE_ARGUMENT.sub(r"{\1}", rule) == path


def test_every_api_route_is_documented_and_nothing_else(app):
    document = build_document(app)
    routed = routed_operations(app)
    documented = {op for op in documented_operations(document) if op[0].startswith(API_PREFIX)}
    assert routed, "no API routes found"
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations with no route"


def test_document_is_valid_openapi(app):
    document = build_document(app)
    assert document["openapi"].startswith("3.")
    # Validates against the official OpenAPI meta-schema that schemathesis ships.
    schemathesis.openapi.from_dict(document).validate()


def test_every_reference_resolves(app):
    document = build_document(app)

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    refs = set(walk(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target = document
        for part in ref[2:].split("/"):
            assert part in target, f"unresolvable {ref}"
            target = target[part]


def test_path_parameters_are_declared(app):
    document = build_document(app)
    components = document["components"].get("parameters", {})

    def resolve(parameter):
        if "$ref" in parameter:
            return components[parameter["$ref"].rsplit("/", 1)[1]]
        return parameter

    for path, item in document["paths"].items():
        templated = set(re.findall(r"{([^}]+)}", path))
        for method in (m for m in item if m in HTTP_METHODS):
            declared = {
                resolve(p)["name"]
                for p in [*item.get("parameters", []), *item[method].get("parameters", [])]
                if resolve(p)["in"] == "path"
            }
            assert declared == templated, f"{method.upper()} {path}"


def test_document_is_served_without_a_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def test_plugin_paths_are_merged(app, monkeypatch):
    class ReportsPlugin:
        name = "reports"

        def openapi_paths(self):
            return {"/api/v1/reports": {"get": {"responses": {"200": {"description": "Reports."}}}}}

    monkeypatch.setitem(app.extensions, "lms.plugins", [ReportsPlugin()])
    document = build_document(app)
    assert document["paths"]["/api/v1/reports"]["get"]["responses"]["200"]["description"] == "Reports."
    assert "/api/v1/me" in document["paths"]


def test_plugin_cannot_redocument_a_core_operation(app, monkeypatch):
    class GreedyPlugin:
        name = "greedy"

        def openapi_paths(self):
            return {"/api/v1/me": {"get": {"responses": {"200": {"description": "Mine."}}}}}

    monkeypatch.setitem(app.extensions, "lms.plugins", [GreedyPlugin()])
    with pytest.raises(ValueError, match="greedy"):
        build_document(app)


@pytest.fixture
def admin_token(app, people) -> str:
    from lms.extensions import db

    _token, plaintext = tokens.issue_token(people["admin"], "schemathesis", None, actor=None)
    db.session.commit()
    return plaintext


def _collection_document() -> dict:
    """The document as a test app builds it, made at collection time so pytest can parametrize over it.

    No database is touched: the document depends only on the loaded plugins.
    """
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "collect-openapi",
            "DATABASE_URL": "sqlite://",
            "INSTANCE_PATH": str(Path(tempfile.gettempdir()) / "lms-openapi-collection" / "instance"),
        }
    )
    return build_document(app)


SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # The API is lenient by design: ?limit=abc means the default, ?offset=-1 means 0 (documented on
            # the parameters). Schema-violating input is still sent and must not cause a 500 or an
            # undocumented response.
            "negative_data_rejection": {"enabled": False},
        },
    }
)

COLLECTED_DOCUMENT = _collection_document()
schema = schemathesis.openapi.from_dict(copy.deepcopy(COLLECTED_DOCUMENT), config=SCHEMATHESIS_CONFIG)


@pytest.fixture
def populated_app(app, people, dummy_cohort):
    """The app with a user of every role and a cohort with an enrollment."""
    return app


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ example database in the working tree
    # The app and its data are function-scoped fixtures shared by every example of one operation; the
    # operations only read, so the examples cannot disturb each other.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_document(case, populated_app, admin_token, monkeypatch):
    # Send every request, the checks' own probes included, to this test's app (in-process WSGI).
    monkeypatch.setattr(case.operation, "app", populated_app)
    monkeypatch.setattr(case.operation.schema, "app", populated_app)
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"})


def test_served_document_is_the_one_tested(client):
    assert client.get(f"{API_PREFIX}/openapi.json").get_json() == COLLECTED_DOCUMENT


@pytest.mark.parametrize("role", ["admin", "trainer", "assessor", "trainee"])
def test_real_records_conform_for_every_role(populated_app, people, dummy_cohort, role):
    """Generated ids rarely hit the real cohort, so request every operation with real values too."""
    _token, plaintext = tokens.issue_token(people[role], "conformance", None, actor=None)
    from lms.extensions import db

    db.session.commit()
    served = schemathesis.openapi.from_wsgi(
        f"{API_PREFIX}/openapi.json", populated_app, config=SCHEMATHESIS_CONFIG
    )
    real_values = {
        "/api/v1/cohorts/{cohort_id}/enrollments": {"path_parameters": {"cohort_id": dummy_cohort.id}},
        "/api/v1/users": {"query": {"username": "trainee1"}},
        "/api/v1/courses/{course_id}/outline": {"path_parameters": {"course_id": dummy_cohort.course_id}},
        # No lab rows exist here, so these answer 404; tests/labs/test_api.py requests real ones.
        "/api/v1/labs/occurrences/{occurrence_id}/bookings": {"path_parameters": {"occurrence_id": 1}},
        "/api/v1/labs/occurrences/{occurrence_id}/checkin": {"path_parameters": {"occurrence_id": 1}},
        "/api/v1/labs/occurrences/{occurrence_id}/checkin-code": {"path_parameters": {"occurrence_id": 1}},
        "/api/v1/labs/bookings/{booking_id}": {"path_parameters": {"booking_id": 1}},
        "/api/v1/assignments/{assignment_id}/release": {"path_parameters": {"assignment_id": 1}},
        "/api/v1/assignments/{assignment_id}/submissions": {"path_parameters": {"assignment_id": 1}},
        "/api/v1/submissions/{submission_id}": {"path_parameters": {"submission_id": 1}},
    }
    statuses = {}
    for result in served.get_all_operations():
        operation = result.ok()
        case = operation.Case(**real_values.get(operation.path, {}))
        response = case.call_and_validate(headers={"Authorization": f"Bearer {plaintext}"})
        statuses[operation.path] = response.status_code
    expected_enrollments = 200 if role in ("admin", "trainer") else 403
    assert statuses["/api/v1/cohorts/{cohort_id}/enrollments"] == expected_enrollments
    assert statuses["/api/v1/users"] == (200 if role == "admin" else 403)
    assert statuses["/api/v1/me"] == statuses["/api/v1/cohorts"] == 200
