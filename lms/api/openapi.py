"""The OpenAPI 3.0 document of the JSON API, written by hand and checked against the routes by the tests.

tests/lms/test_openapi.py compares the documented operations with the registered ``/api/v1`` routes, so
a route cannot be added without a path item here (or in its plugin's ``openapi_paths()``), and runs
schemathesis against the app, so the schemas below must match what ``lms/api/core.py`` returns.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Flask

from lms.api.core import MAX_ID, MAX_INT64
from lms.models import CourseLevel, EnrollmentStatus, HoursSource, ProgressStatus, Role, UnitKind

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    """A closed object whose every property is required: an undocumented field fails the schema tests."""
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


ID = {"type": "integer", "minimum": 1}
STRING = {"type": "string"}

_USER_PROPERTIES: dict[str, Any] = {
    "id": ID,
    "username": STRING,
    "real_name": STRING,
    "employer": STRING,
    "active": {"type": "boolean"},
    "roles": {"type": "array", "items": _ref("RoleGrant")},
}

_PRIVATE_USER_PROPERTIES: dict[str, Any] = {
    "email": {"type": "string", "nullable": True, "description": "None when the account has no e-mail."},
    "phone": {"type": "string", "description": "Empty when unknown."},
    "locale": {"type": "string", "nullable": True, "description": "None: follow the browser."},
    "timezone": {"type": "string", "example": "Asia/Shanghai"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": {
                "type": "string",
                "description": "A stable code such as `unauthenticated`.",
                "example": "not_found",
            },
            "message": {"type": "string", "description": "A sentence for people, in the caller's language."},
        },
        "Every error response of the API.",
    ),
    "RoleGrant": _object(
        {
            "role": {"type": "string", "enum": [role.value for role in Role]},
            "institution_id": {
                "type": "integer",
                "minimum": 1,
                "nullable": True,
                "description": "None for a platform-wide admin grant.",
            },
        },
        "A role held at one institution.",
    ),
    "User": _object(_USER_PROPERTIES, "A person, as other users see them."),
    "UserDetail": _object(
        {**_USER_PROPERTIES, **_PRIVATE_USER_PROPERTIES},
        "A person with contact details and preferences (the caller, or a user seen by an admin).",
    ),
    "UserList": _object(
        {
            "items": {"type": "array", "items": _ref("UserDetail")},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_INT64},
        },
        "A page of users, ordered by username.",
    ),
    "CourseSummary": _object(
        {"id": ID, "code": STRING, "title": STRING, "title_en": STRING},
    ),
    "InstitutionSummary": _object({"id": ID, "code": STRING, "name": STRING}),
    "TrainerSummary": _object({"id": ID, "username": STRING, "real_name": STRING}),
    "Cohort": _object(
        {
            "id": ID,
            "code": STRING,
            "name": STRING,
            "course": _ref("CourseSummary"),
            "training_base": _ref("InstitutionSummary"),
            "starts_on": {"type": "string", "format": "date"},
            "ends_on": {"type": "string", "format": "date"},
            "required_hours": {"type": "integer", "minimum": 0},
            "trainers": {"type": "array", "items": _ref("TrainerSummary")},
        },
        "One run of a course at a training base.",
    ),
    "CohortList": _object(
        {"items": {"type": "array", "items": _ref("Cohort")}},
        "The cohorts the caller may see, latest start first.",
    ),
    "HoursSummary": _object(
        {
            "online_minutes": {"type": "integer"},
            "offline_minutes": {"type": "integer"},
            "required_minutes": {"type": "integer"},
        },
        "Credited minutes of the trainee in the cohort.",
    ),
    "Enrollment": _object(
        {
            "id": ID,
            "status": {"type": "string", "enum": [status.value for status in EnrollmentStatus]},
            "enrolled_at": {"type": "string", "format": "date-time"},
            "user": _ref("User"),
            "hours": _ref("HoursSummary"),
        },
        "A trainee's place in a cohort, with their credited hours.",
    ),
    "EnrollmentList": _object(
        {"cohort_id": ID, "items": {"type": "array", "items": _ref("Enrollment")}},
    ),
    "LocalizedText": _object({"zh_CN": STRING, "en": STRING}, "A text in both languages."),
    "Course": _object(
        {
            "id": ID,
            "code": STRING,
            "title": _ref("LocalizedText"),
            "level": {"type": "string", "enum": [level.value for level in CourseLevel]},
            "hours": _object(
                {
                    "total": {"type": "integer", "minimum": 0},
                    "online": {"type": "integer", "minimum": 0},
                    "offline": {"type": "integer", "minimum": 0},
                },
                "Hours the course requires, in total and by delivery.",
            ),
            "current_version": {
                **_object(
                    {"id": ID, "version": STRING, "imported_at": {"type": "string", "format": "date-time"}}
                ),
                "nullable": True,
                "description": "The imported version of the course files in use; None before any import.",
            },
        },
        "A course a training base teaches.",
    ),
    "CourseList": _object(
        {"items": {"type": "array", "items": _ref("Course")}},
        "The courses the caller may see, by code.",
    ),
    "OutlineUnit": _object(
        {
            "key": {"type": "string", "description": "The unit's stable id; progress is kept by it."},
            "kind": {"type": "string", "enum": [kind.value for kind in UnitKind]},
            "title": _ref("LocalizedText"),
            "minutes": {"type": "integer", "minimum": 0, "description": "0 for exercises."},
            "points": {"type": "number", "nullable": True, "description": "Exercises only; None otherwise."},
            "due_days": {
                "type": "integer",
                "nullable": True,
                "description": "Exercises only: due this many days after the cohort starts; None otherwise.",
            },
        },
        "A lesson, quiz, lab or exercise.",
    ),
    "OutlineModule": _object(
        {
            "key": STRING,
            "title": _ref("LocalizedText"),
            "units": {"type": "array", "items": _ref("OutlineUnit")},
        },
        "A module and its units in teaching order.",
    ),
    "CourseOutline": _object(
        {"course": _ref("Course"), "modules": {"type": "array", "items": _ref("OutlineModule")}},
        "The modules and units of the course's current version; empty before any import.",
    ),
    "UnitProgress": _object(
        {
            "key": STRING,
            "kind": {"type": "string", "enum": [kind.value for kind in UnitKind]},
            "module_key": STRING,
            "status": {
                "type": "string",
                "enum": ["not_started", *(status.value for status in ProgressStatus)],
            },
            "credited": {"type": "boolean", "description": "True once the unit's minutes are in the ledger."},
            "best_score": {
                "type": "number",
                "nullable": True,
                "description": "Quizzes: the best percentage.",
            },
            "attempts": {"type": "integer", "minimum": 0},
        },
        "The caller's progress on one unit.",
    ),
    "EnrollmentProgress": _object(
        {
            "cohort": _object({"id": ID, "code": STRING, "name": STRING}),
            "course_id": ID,
            "enrollment_status": {"type": "string", "enum": [status.value for status in EnrollmentStatus]},
            "required_hours": {"type": "integer", "minimum": 0},
            "hours": _ref("HoursSummary"),
            "units_done": {"type": "integer", "minimum": 0, "description": "Lessons and quizzes completed."},
            "units_total": {
                "type": "integer",
                "minimum": 0,
                "description": "Lessons and quizzes of the cohort's course version (labs count as hours).",
            },
            "units": {
                "type": "array",
                "items": _ref("UnitProgress"),
                "description": "Every unit of the cohort's course version, in teaching order.",
            },
        },
        "The caller's hours and units in one cohort.",
    ),
    "ProgressList": _object(
        {"items": {"type": "array", "items": _ref("EnrollmentProgress")}},
        "One item per enrollment of the caller that is not withdrawn, latest cohort first.",
    ),
    "QuizAttempt": _object(
        {
            "id": ID,
            "cohort_id": ID,
            "unit_key": STRING,
            "score": {"type": "number"},
            "max_score": {"type": "number"},
            "passed": {"type": "boolean"},
            "submitted_at": {"type": "string", "format": "date-time"},
        },
        "One submitted quiz.",
    ),
    "Certificate": _object(
        {
            "serial": {**STRING, "description": "The serial printed on the certificate."},
            "cohort_id": ID,
            "course_code": STRING,
            "course_title": _ref("LocalizedText"),
            "hours": _object(
                {
                    "online_minutes": {"type": "integer", "minimum": 0},
                    "offline_minutes": {"type": "integer", "minimum": 0},
                }
            ),
            "issued_at": {"type": "string", "format": "date-time"},
            "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
            "pdf_url": {
                "type": "string",
                "format": "uri",
                "nullable": True,
                "description": "The PDF (sign-in needed); null once revoked.",
            },
            "verification_url": {
                "type": "string",
                "format": "uri",
                "description": "The public page that confirms the certificate (no sign-in).",
            },
        },
        "A training-completion certificate.",
    ),
    "CertificateList": _object(
        {"items": {"type": "array", "items": _ref("Certificate")}}, "The caller's certificates, newest first."
    ),
    "Requirement": _object(
        {
            "kind": {
                "type": "string",
                "enum": [
                    "hours_total",
                    "hours_online",
                    "hours_offline",
                    "lab_attendance",
                    "exercise",
                    "quiz",
                    "final_project",
                ],
            },
            "unit_key": {"type": "string", "nullable": True},
            "done": {"type": "boolean"},
            "have": {"type": "number", "description": "Hours, lab units, or best percent."},
            "need": {
                "type": "number",
                "description": "Hours, lab units, or pass mark in percent (0: the quiz's own).",
            },
        },
        "One completion requirement and how far the caller is.",
    ),
    "CompletionList": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "cohort_id": ID,
                        "complete": {"type": "boolean"},
                        "completed_at": {"type": "string", "format": "date-time", "nullable": True},
                        "requirements": {"type": "array", "items": _ref("Requirement")},
                    }
                ),
            }
        },
        "The caller's completion checklist per enrollment.",
    ),
    "TranscriptEvidence": _object(
        {
            "active_minutes": {
                "type": "integer",
                "minimum": 0,
                "nullable": True,
                "description": "Online units: minutes of active study the server accepted.",
            },
            "score_percent": {
                "type": "number",
                "nullable": True,
                "description": "Quizzes: the best percentage when the unit was credited.",
            },
            "session_starts_at": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "Lab sessions: when the session began.",
            },
            "session_ends_at": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "Lab sessions: when the session ended.",
            },
            "checked_in_at": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "Lab sessions: the trainee's check-in.",
            },
            "attendance": {
                "type": "string",
                "nullable": True,
                "description": "Lab sessions: the trainer's mark, e.g. attended or late.",
            },
            "site": {"type": "string", "nullable": True, "description": "Lab sessions: the site's code."},
            "room": {"type": "string", "nullable": True, "description": "Lab sessions: the room's code."},
            "note": {"type": "string", "nullable": True, "description": "Adjustments: the stated reason."},
        },
        "What a ledger line was credited on; fields that do not apply to its source are null.",
    ),
    "TranscriptLine": _object(
        {
            "at": {
                "type": "string",
                "format": "date-time",
                "description": "When it happened (a lab starts, a unit is completed), else when recorded.",
            },
            "recorded_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string", "enum": [s.value for s in HoursSource]},
            "delivery": {"type": "string", "enum": ["online", "offline"]},
            "unit_key": {**STRING, "description": "Empty for adjustments that name no unit."},
            "title": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "nullable": True,
                "description": "The unit title by locale; null when the unit is not in the cohort version.",
            },
            "minutes": {"type": "integer", "description": "Negative for a correcting adjustment."},
            "evidence": _ref("TranscriptEvidence"),
        },
        "One line of the hours ledger with its evidence.",
    ),
    "TranscriptList": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "cohort_id": ID,
                        "cohort_code": STRING,
                        "course_code": STRING,
                        "online_minutes": {"type": "integer"},
                        "offline_minutes": {"type": "integer"},
                        "lines": {
                            "type": "array",
                            "items": _ref("TranscriptLine"),
                            "description": "Oldest first.",
                        },
                        "exercises": {
                            "type": "array",
                            "items": _object(
                                {
                                    "unit_key": STRING,
                                    "title": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                        "nullable": True,
                                        "description": "The exercise's title by locale.",
                                    },
                                    "best_percent": {"type": "number"},
                                    "attempts": {"type": "integer", "minimum": 0},
                                }
                            ),
                            "description": "Graded exercises with their best percentage, in teaching order.",
                        },
                    }
                ),
            }
        },
        "The caller's transcript per enrollment (not withdrawn), latest cohort first.",
    ),
    "QuizAttemptList": _object(
        {"items": {"type": "array", "items": _ref("QuizAttempt")}},
        "The caller's quiz attempts, latest first.",
    ),
}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


RESPONSES: dict[str, Any] = {
    "Unauthenticated": {
        **_json(
            "Error",
            "No bearer token, or one that is malformed, unknown, expired, revoked or belongs "
            "to a deactivated account.",
        ),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": 'Bearer realm="lms"'}},
    },
    "BadRequest": _json("Error", "A query parameter has a value the operation cannot use."),
    "Forbidden": _json("Error", "The caller holds none of the roles this operation needs."),
    "NotFound": _json("Error", "No such record, or one the caller may not see."),
}

PARAMETERS: dict[str, Any] = {
    "CohortId": {
        "name": "cohort_id",
        "in": "path",
        "required": True,
        "description": "Row ids are 32-bit; an id that cannot exist gets 404.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    },
    "CourseId": {
        "name": "course_id",
        "in": "path",
        "required": True,
        "description": "Row ids are 32-bit; an id that cannot exist gets 404.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    },
}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


CORE_PATHS: dict[str, Any] = {
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "getOpenApiDocument",
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document of the API, plugins' operations included.",
                    "content": {"application/json": {"schema": {"type": "object", "required": ["openapi"]}}},
                },
            },
        },
    },
    "/api/v1/me": {
        "get": {
            "operationId": "getMe",
            "summary": "The caller",
            "tags": ["users"],
            "responses": {
                "200": _json("UserDetail", "The user the bearer token belongs to."),
                "401": _error("Unauthenticated"),
            },
        },
    },
    "/api/v1/users": {
        "get": {
            "operationId": "listUsers",
            "summary": "Users (admins only)",
            "description": (
                "Platform admins see every user; an institution's admins see the users holding a role there."
            ),
            "tags": ["users"],
            "parameters": [
                {
                    "name": "username",
                    "in": "query",
                    "description": "Only the user with exactly this username (case-insensitive).",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Page size, clamped to 1–1000; 0 and non-numbers mean 100.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
                {
                    "name": "offset",
                    "in": "query",
                    "description": "Users to skip; negative values and non-numbers mean 0.",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INT64, "default": 0},
                },
            ],
            "responses": {
                "200": _json("UserList", "A page of users."),
                "401": _error("Unauthenticated"),
                "403": _error("Forbidden"),
            },
        },
    },
    "/api/v1/cohorts": {
        "get": {
            "operationId": "listCohorts",
            "summary": "Cohorts the caller may see",
            "description": (
                "All of them for platform admins; their institution's for admins; the ones they teach for "
                "trainers; the ones they are enrolled in for trainees."
            ),
            "tags": ["cohorts"],
            "responses": {
                "200": _json("CohortList", "The visible cohorts."),
                "401": _error("Unauthenticated"),
            },
        },
    },
    "/api/v1/cohorts/{cohort_id}/enrollments": {
        "parameters": [{"$ref": "#/components/parameters/CohortId"}],
        "get": {
            "operationId": "listEnrollments",
            "summary": "Enrollments of a cohort (its trainers and admins)",
            "tags": ["cohorts"],
            "responses": {
                "200": _json("EnrollmentList", "Every enrollment of the cohort, withdrawn ones included."),
                "401": _error("Unauthenticated"),
                "403": _error("Forbidden"),
                "404": _error("NotFound"),
            },
        },
    },
    "/api/v1/courses": {
        "get": {
            "operationId": "listCourses",
            "summary": "Courses the caller may see",
            "description": (
                "Every course for staff (anyone holding a role besides trainee); for trainees, the courses "
                "of the cohorts they are enrolled in."
            ),
            "tags": ["courses"],
            "responses": {
                "200": _json("CourseList", "The visible courses."),
                "401": _error("Unauthenticated"),
            },
        },
    },
    "/api/v1/courses/{course_id}/outline": {
        "parameters": [{"$ref": "#/components/parameters/CourseId"}],
        "get": {
            "operationId": "getCourseOutline",
            "summary": "Modules and units of a course's current version",
            "tags": ["courses"],
            "responses": {
                "200": _json("CourseOutline", "The outline."),
                "401": _error("Unauthenticated"),
                "404": _error("NotFound"),
            },
        },
    },
    "/api/v1/me/progress": {
        "get": {
            "operationId": "getMyProgress",
            "summary": "The caller's hours and units, per enrollment",
            "tags": ["learning"],
            "responses": {
                "200": _json(
                    "ProgressList", "The caller's progress; no items for users without enrollments."
                ),
                "401": _error("Unauthenticated"),
            },
        },
    },
    "/api/v1/me/certificates": {
        "get": {
            "operationId": "listMyCertificates",
            "summary": "The caller's training-completion certificates",
            "tags": ["completion"],
            "responses": {
                "200": _json("CertificateList", "The certificates, revoked ones included."),
                "401": _error("Unauthenticated"),
            },
        },
    },
    "/api/v1/me/transcript": {
        "get": {
            "operationId": "getMyTranscript",
            "summary": "The caller's hours transcript per enrollment, from the ledger with its evidence",
            "tags": ["completion"],
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "description": "json (default): every enrollment not withdrawn; csv or pdf: the latest "
                    "enrollment's transcript as a file. Any other value gets 400.",
                    "schema": {"type": "string", "enum": ["json", "csv", "pdf"], "default": "json"},
                },
            ],
            "responses": {
                "200": {
                    "description": "The transcripts (JSON), or one as a CSV or PDF file.",
                    "content": {
                        "application/json": {"schema": _ref("TranscriptList")},
                        "text/csv": {"schema": {"type": "string"}},
                        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "400": _error("BadRequest"),
                "401": _error("Unauthenticated"),
                "404": _error("NotFound"),
            },
        },
    },
    "/api/v1/me/completion": {
        "get": {
            "operationId": "getMyCompletion",
            "summary": "The caller's completion checklist per enrollment",
            "tags": ["completion"],
            "responses": {
                "200": _json("CompletionList", "What is done and what is left, per cohort."),
                "401": _error("Unauthenticated"),
            },
        },
    },
    "/api/v1/me/quiz-attempts": {
        "get": {
            "operationId": "listMyQuizAttempts",
            "summary": "The caller's quiz attempts",
            "tags": ["learning"],
            "parameters": [
                {
                    "name": "cohort_id",
                    "in": "query",
                    "description": "Only the attempts made in this cohort; a value that is no id gets 400.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
                },
            ],
            "responses": {
                "200": _json("QuizAttemptList", "The attempts, latest first."),
                "400": _error("BadRequest"),
                "401": _error("Unauthenticated"),
            },
        },
    },
}

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document: the core's operations, then those of every loaded plugin."""
    paths = copy.deepcopy(CORE_PATHS)
    for plugin in app.extensions.get("lms.plugins", []):
        for path, item in plugin.openapi_paths().items():
            _merge_path_item(paths, path, copy.deepcopy(item), plugin.name)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Blended LMS API",
            "version": API_VERSION,
            "description": (
                "Read access to users, cohorts, enrollments, courses and the caller's progress. "
                "Authenticate with `Authorization: Bearer <token>`; `lms users token USERNAME` issues a "
                "token. "
                "Errors are JSON objects `{error, message}`."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": "meta", "description": "The API itself."},
            {"name": "users", "description": "People and their roles."},
            {"name": "cohorts", "description": "Cohorts and their enrollments."},
            {"name": "courses", "description": "Courses and their outlines."},
            {"name": "learning", "description": "The caller's own progress and quiz attempts."},
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `lms users token USERNAME`; only its SHA-256 is stored.",
                },
            },
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": copy.deepcopy(RESPONSES),
            "parameters": copy.deepcopy(PARAMETERS),
        },
    }


def _merge_path_item(paths: dict[str, Any], path: str, item: dict[str, Any], plugin_name: str) -> None:
    """Add a plugin's path item; documenting an operation that is already documented is an error."""
    existing = paths.setdefault(path, {})
    for key, value in item.items():
        if key in existing and (key in HTTP_METHODS or existing[key] != value):
            raise ValueError(f"plugin {plugin_name!r} documents {key.upper()} {path}, already documented")
        existing[key] = value
