"""What an operator asks of the decision log: which decisions (filters), which page of them
(an opaque cursor), over which time range. Shared by the store, the HTTP API, the client and
the CLI, so a bad filter gets the same one-line message wherever it is given; nothing here
touches a database."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .masking import Masker
from .output_masking import mask_execution_fields, mask_strings

ACTIONS = ("allow", "block", "modify", "escalate")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_ISO = re.compile(r"\d{4}-\d\d-\d\d(?:$|[T ])", re.IGNORECASE)
MAX_EPOCH = 253402300799.0  # 9999-12-31 23:59:59 UTC: later is no time (nor a cursor's)
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,1400}")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# every field a decision shows, in the order a reader wants them
DECISION_FIELDS = (
    "id", "created_at", "agent_name", "environment", "tool_name", "tool_input", "context",
    "action", "reason", "rule_name", "severity", "results", "rules_triggered",
    "modified_input", "modifications", "escalation_id", "escalation_status", "latency_ms",
    "execution_status", "execution_error", "execution_output", "execution_ms",
    "policy_version", "policy_digest", "grant_id", "answers")


class BadFilter(ValueError):
    """A filter that cannot be used; ``param`` names it (a 422 says which one)."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


def parse_time(value: Any, param: str, now: float | None = None) -> float | None:
    """Epoch seconds from epoch seconds (``1733560000``), a duration back from now
    (``90s``, ``15m``, ``1h``, ``7d``, ``2w``) or an ISO 8601 date or date-time
    (``2026-12-01``, ``2026-12-01T09:00``, ``2026-12-01T09:00+01:00``; local time without
    an offset); None for nothing given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        found = _DURATION.fullmatch(text)
        if found is not None:
            back = float(found.group(1)) * _UNITS[found.group(2)]
            at = (now if now is not None else time.time()) - back
            if not math.isfinite(back) or at < 0:
                raise BadFilter(param, f"{text[:40]!r} is too long a duration (it reaches "
                                       "back before 1970)")
            return at
        try:
            seconds = float(text)
        except ValueError:
            seconds = _iso_time(str(value).strip(), param)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_EPOCH:
        raise BadFilter(param, f"{str(value)[:40]!r} is not a time from 1970 to 9999 "
                               f"(epoch seconds from 0 to {MAX_EPOCH:.0f})")
    return seconds


def _iso_time(text: str, param: str) -> float:
    """Epoch seconds of an ISO 8601 date or date-time (local time without an offset)."""
    if _ISO.match(text):
        try:
            found = datetime.fromisoformat(text.upper())
            return (found if found.tzinfo else found.astimezone()).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
    raise BadFilter(param, f"{text[:40]!r} is not a time: give epoch seconds, an ISO date "
                           "or date-time (2026-12-01, 2026-12-01T09:00, with or without an "
                           "offset) or a duration like 90s, 15m, 1h or 7d")


def parse_actions(value: Any) -> tuple[str, ...]:
    """One action or a comma-separated list of them (``block,escalate``)."""
    if value is None:
        return ()
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    actions = tuple(dict.fromkeys(str(p).strip().lower() for p in parts if str(p).strip()))
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise BadFilter("action", f"{unknown[0][:40]!r} is not an action (one of "
                                  f"{', '.join(ACTIONS)}, or several joined by commas)")
    return actions


def parse_limit(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise BadFilter("limit", f"{str(value)[:40]!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadFilter("limit", f"must be from 1 to {MAX_LIMIT}, not {limit}")
    return limit


def _text(value: Any, param: str) -> str | None:
    """A text filter. A NUL is allowed: names an agent sent may hold one (they are stored
    escaped, and matched in that form); a lone surrogate cannot be sent or stored."""
    if value is None:
        return None
    text = str(value)
    if len(text) > 1000:
        raise BadFilter(param, "longer than 1000 characters")
    if not _encodable(text):
        raise BadFilter(param, "holds an unpaired surrogate character; no search can "
                               "match it")
    return text or None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class DecisionFilter:
    """Which decisions, newest first. ``agent``, ``tool`` and ``rule`` match a whole name
    or a glob with ``*``; ``q`` is a substring of the id, tool, agent, rule, reason or
    escalation id; every text match ignores case; ``%`` and ``_`` are literal."""

    agent: str | None = None
    tool: str | None = None
    rule: str | None = None
    actions: tuple[str, ...] = ()
    q: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @classmethod
    def parse(cls, *, agent: Any = None, tool: Any = None, rule: Any = None,
              action: Any = None, q: Any = None, since: Any = None, until: Any = None,
              limit: Any = None, cursor: Any = None, now: float | None = None
              ) -> DecisionFilter:
        """Filters as a person or a query string gives them; BadFilter names a bad one."""
        now = time.time() if now is None else now
        found = cls(agent=_text(agent, "agent"), tool=_text(tool, "tool"),
                    rule=_text(rule, "rule"), actions=parse_actions(action),
                    q=_text(q, "q"), since=parse_time(since, "since", now),
                    until=parse_time(until, "until", now), limit=parse_limit(limit),
                    cursor=_text(cursor, "cursor"))
        if found.cursor is not None:
            decode_cursor(found.cursor)
        if found.since is not None and found.until is not None and found.since > found.until:
            raise BadFilter("since", "is after until")
        return found

    def params(self) -> dict[str, str]:
        """The query string that asks a server for the same (times as epoch seconds)."""
        values: dict[str, Any] = {
            "agent": self.agent, "tool": self.tool, "rule": self.rule,
            "action": ",".join(self.actions) or None, "q": self.q,
            "since": None if self.since is None else repr(self.since),
            "until": None if self.until is None else repr(self.until),
            "limit": str(self.limit), "cursor": self.cursor}
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class DecisionPage:
    """One page of decisions, newest first; ``next_cursor`` asks for the next (None: the
    last page)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def encode_cursor(created_at: float, decision_id: str) -> str:
    """Where a page ended: the last row's (created_at, id). Rows written meanwhile are
    newer, so they never shift what the next page holds."""
    raw = json.dumps([created_at, decision_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """(created_at, id) from a cursor ``encode_cursor`` made; anything else (a number that
    is not a finite time, an id no database could hold, another shape) is a BadFilter."""
    if isinstance(cursor, str) and _CURSOR.fullmatch(cursor):
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            value = json.loads(raw, parse_constant=_not_a_number, parse_int=_short_int)
        except (binascii.Error, ValueError, RecursionError):
            value = None
        if isinstance(value, list) and len(value) == 2:
            created_at, decision_id = value
            if isinstance(created_at, (int, float)) and not isinstance(created_at, bool) \
                    and math.isfinite(created_at) and 0 <= created_at <= MAX_EPOCH \
                    and isinstance(decision_id, str) and 0 < len(decision_id) <= 1000 \
                    and "\x00" not in decision_id and _encodable(decision_id):
                return float(created_at), decision_id
    raise BadFilter("cursor", "not a cursor this server gave (use next_cursor as it came)")


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is no time")


def _short_int(digits: str) -> int:
    if len(digits) > 20:
        raise ValueError("too long a number")
    return int(digits)


def decision_json(row: dict[str, Any], masker: Masker | None = None) -> dict[str, Any]:
    """A decision row as operators see it. Inputs were masked with the policy's
    ``redact_in_log`` when recorded, and so were the tool's output and error (since
    ``output_masking``); all are masked again here with ``masker``, for rows recorded
    before, and for JSON held in a string of an input (``{"payload": "{\\"password\\":
    ...}"}``), which the masking of inputs when recorded does not read."""
    data = {name: row.get(name) for name in DECISION_FIELDS}
    if masker is not None:
        data = mask_execution_fields(data, masker)
        for name in ("tool_input", "context", "modified_input"):
            if data[name] is not None:
                with contextlib.suppress(RecursionError):  # (masked when recorded)
                    data[name] = mask_strings(data[name], masker)
    return data

