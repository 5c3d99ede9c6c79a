"""JSON API v1: bearer-token authentication, JSON errors, an OpenAPI 3 document."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from lms.api import completion, core, learning, records  # noqa: E402,F401  (registers the routes)
