"""OpenAPI path items of the labs API (merged into /api/v1/openapi.json by the core)."""

from typing import Any

PATHS: dict[str, Any] = {}
