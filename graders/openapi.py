"""OpenAPI path items of the graders API (merged into /api/v1/openapi.json by the core).

Schemas are written inline (a plugin adds paths, not components); every object is closed and lists
every property as required, like the core's, so a field added to graders/api.py without a line here
fails tests/lms/test_openapi.py.
"""

from typing import Any

# The core's row-id limit (lms.web.MAX_ID), kept literal so importing this module stays cheap.
MAX_ID = 2**31 - 1

ID = {"type": "integer", "minimum": 1}
STRING = {"type": "string"}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}
POINTS = {"type": "number", "minimum": 0}
URL = {"type": "string", "description": "An absolute address."}
STATUS = {
    "type": "string",
    "enum": ["queued", "grading", "autograded", "graded", "failed"],
    "description": (
        "`queued`: stored, waiting for a grader; `grading`: running; `autograded`: tests scored, a "
        "trainer still grades the written answers; `graded`: the score is final; `failed`: grading could "
        "not run (`message` says why)."
    ),
}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


UNAUTHENTICATED = {"$ref": "#/components/responses/Unauthenticated"}
FORBIDDEN = {"$ref": "#/components/responses/Forbidden"}
NOT_FOUND = {"$ref": "#/components/responses/NotFound"}

ASSIGNMENT = _object(
    {
        "id": ID,
        "title": {"type": "string", "description": "In the caller's language."},
        "slug": {"type": "string", "description": "nbgrader's assignment id."},
        "cohort": {"type": "string", "description": "The cohort's code."},
        "due_at": {**NULLABLE_DATETIME, "description": "Later submissions lose points; None: no due date."},
        "cutoff_at": {**NULLABLE_DATETIME, "description": "No submissions after it; None: no cut-off."},
        "max_points": POINTS,
        "max_submissions": {"type": "integer", "minimum": 1},
        "submissions_used": {"type": "integer", "minimum": 0},
        "late_penalty_percent": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "description": "Share of the maximum points lost per started day after the due date.",
        },
        "download_url": {**URL, "description": "The release notebook to work on (absolute address)."},
        "latest_submission": {
            **_object(
                {
                    "id": ID,
                    "status": STATUS,
                    "score": {**POINTS, "nullable": True, "description": "The final score; None until then."},
                    "url": {**URL, "description": "The submission in this API (absolute address)."},
                }
            ),
            "nullable": True,
            "description": "The caller's latest submission; None before the first.",
        },
    },
    "A released notebook assignment of one of the caller's cohorts.",
)

RECEIPT = _object(
    {
        "id": ID,
        "attempt": {"type": "integer", "minimum": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "Of the bytes stored."},
        "submitted_at": DATETIME,
        "status": STATUS,
        "status_url": {**URL, "description": "Poll it for the grading status (absolute address)."},
    },
    "The stored submission: what was received and when.",
)

SUBMISSION = _object(
    {
        "id": ID,
        "assignment_id": ID,
        "attempt": {"type": "integer", "minimum": 1},
        "status": STATUS,
        "score": {
            **POINTS,
            "nullable": True,
            "description": "Final points after late penalty and extra credit; None until final.",
        },
        "auto_score": {
            **POINTS,
            "nullable": True,
            "description": "Graded cells' points before late penalty and extra credit; None before grading.",
        },
        "max_score": POINTS,
        "late_penalty": {**POINTS, "description": "Points lost for handing in late."},
        "submitted_at": DATETIME,
        "graded_at": NULLABLE_DATETIME,
        "final": {"type": "boolean", "description": "True when the status is `graded`."},
        "feedback_url": {
            "type": "string",
            "nullable": True,
            "description": (
                "The feedback page (absolute address) once the caller may read it: its trainee when "
                "it is released, the cohort's trainers and admins once autograded; None before."
            ),
        },
        "message": {"type": "string", "description": "Why grading failed; empty otherwise."},
        "repairs": _object(
            {
                "restored": {
                    "type": "array",
                    "items": STRING,
                    "description": "Cells restored from the assignment because they were deleted or changed.",
                },
                "missing_answers": {
                    "type": "array",
                    "items": STRING,
                    "description": "Answer cells that were deleted (graded as unanswered).",
                },
                "stripped": {
                    "type": "array",
                    "items": STRING,
                    "description": "Cells claiming grading metadata of their own: they earn nothing.",
                },
            },
            "What the structure check changed (cell grade ids).",
        ),
    },
    "A submission's grading status and scores.",
)

ASSIGNMENT_ID = {
    "name": "assignment_id",
    "in": "path",
    "required": True,
    "description": "Row ids are 32-bit; an id that cannot exist gets 404.",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
SUBMISSION_ID = {**ASSIGNMENT_ID, "name": "submission_id"}

PATHS: dict[str, Any] = {
    "/api/v1/assignments": {
        "get": {
            "operationId": "listAssignments",
            "summary": "The caller's released notebook assignments",
            "description": (
                "Released assignments of every cohort the caller is enrolled in, by due date, with the "
                "caller's latest submission. Users enrolled nowhere (trainers, assessors, admins) get an "
                "empty list."
            ),
            "tags": ["assignments"],
            "responses": {
                "200": _json(
                    _object({"assignments": {"type": "array", "items": ASSIGNMENT}}), "The assignments."
                ),
                "401": UNAUTHENTICATED,
            },
        },
    },
    "/api/v1/assignments/{assignment_id}/release": {
        "parameters": [ASSIGNMENT_ID],
        "get": {
            "operationId": "downloadAssignmentRelease",
            "summary": "The release notebook to work on",
            "description": (
                "The notebook trainees start from (no solutions, no hidden tests), as a file "
                "`<slug>.ipynb`. For the cohort's trainees, trainers and admins; 404 until released."
            ),
            "tags": ["assignments"],
            "responses": {
                "200": {
                    "description": "A Jupyter notebook (nbformat 4).",
                    "content": {"application/x-ipynb+json": {"schema": {"type": "object"}}},
                    "headers": {
                        "Content-Disposition": {
                            "schema": {"type": "string"},
                            "description": 'attachment; filename="<slug>.ipynb"',
                        }
                    },
                },
                "401": UNAUTHENTICATED,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/v1/assignments/{assignment_id}/submissions": {
        "parameters": [ASSIGNMENT_ID],
        "post": {
            "operationId": "createSubmission",
            "summary": "Hand in a notebook (the calling trainee)",
            "description": (
                "The notebook is stored before anything else happens and then graded in the background: "
                "poll `status_url`. Sending the same bytes as the latest submission again returns that "
                "submission (200) instead of using another attempt. Graded and test cells always come "
                "from the assignment; deleted or changed ones are restored (see `repairs`)."
            ),
            "tags": ["assignments"],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": "The .ipynb file (nbformat 4, UTF-8).",
                                }
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": {
                    **_json(RECEIPT, "Stored and queued for grading."),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "The submission."}},
                },
                "200": _json(RECEIPT, "The same notebook was already the latest submission: that one."),
                "400": _error("`missing_file`: no multipart field named `file`."),
                "401": UNAUTHENTICATED,
                "403": FORBIDDEN,
                "404": _error(
                    "`not_found`: no such assignment, or the caller is not a trainee of its cohort."
                ),
                "409": _error(
                    "`not_released`: the assignment is not open yet; `past_cutoff`: submissions are "
                    "closed; `submission_limit`: every allowed submission is used; `conflict`: another "
                    "upload was being stored at the same moment (try again)."
                ),
                "413": _error("`too_large`: the request body is over the server's limit."),
                "422": _error(
                    "The file cannot be graded; `error` says why: `empty`, `too_large`, `not_utf8`, "
                    "`not_json`, `not_notebook`, `old_format`, `new_format`, `too_many_cells`, "
                    "`invalid_notebook` or `wrong_assignment`."
                ),
            },
        },
    },
    "/api/v1/submissions/{submission_id}": {
        "parameters": [SUBMISSION_ID],
        "get": {
            "operationId": "getSubmission",
            "summary": "A submission's status and score (its trainee, or the cohort's trainers and admins)",
            "tags": ["assignments"],
            "responses": {
                "200": _json(SUBMISSION, "The submission."),
                "401": UNAUTHENTICATED,
                "404": NOT_FOUND,
            },
        },
    },
}
