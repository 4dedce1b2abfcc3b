"""Recorded calls from the decision log, for checking and replaying a candidate policy. Read
through ``Client.list_decisions``, so the embedded store and a server are one code path."""

from __future__ import annotations

from typing import Any

from ..masking import MASK
from .check import Sample

PAGE = 500  # the most one page of the decision log holds


def recorded_decisions(client: Any, *, since: str | None = None, limit: int = 1000
                       ) -> list[dict[str, Any]]:
    """Up to ``limit`` recorded decisions, newest first, page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while len(items) < limit:
        page = client.list_decisions(since=since, limit=min(PAGE, limit - len(items)),
                                     cursor=cursor)
        items += page.items
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    return items[:limit]


def as_sample(decision: dict[str, Any]) -> Sample:
    return Sample(f"decision {decision.get('id')}", str(decision.get("tool_name") or ""),
                  _mapping(decision.get("tool_input")), _mapping(decision.get("context")))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def masked(value: Any) -> bool:
    """Whether a recorded value holds a field masked by ``redact_in_log``."""
    if value == MASK:
        return True
    if isinstance(value, dict):
        return any(masked(v) for v in value.values())
    if isinstance(value, list):
        return any(masked(v) for v in value)
    return False
