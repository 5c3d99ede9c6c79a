"""Record resources: the caller's hours transcript."""

from __future__ import annotations
