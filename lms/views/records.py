"""Records: hours transcripts, the subsidy evidence pack, and the audit log."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("records", __name__)
