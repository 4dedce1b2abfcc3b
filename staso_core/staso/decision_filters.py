"""What an operator asks of the decision log: which decisions (filters), which page of them
(an opaque cursor), over which time range. Shared by the store, the HTTP API, the client and
the CLI, so a bad filter gets the same one-line message wherever it is given; nothing here
touches a database."""

from __future__ import annotations

import ast
import base64
import binascii
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .masking import Masker

ACTIONS = ("allow", "block", "modify", "escalate")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
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
    """Epoch seconds from epoch seconds (``1733560000``) or a duration back from now
    (``90s``, ``15m``, ``1h``, ``7d``, ``2w``); None for nothing given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        found = _DURATION.fullmatch(text)
        if found is not None:
            back = float(found.group(1)) * _UNITS[found.group(2)]
            if not math.isfinite(back):
                raise BadFilter(param, f"{text[:40]!r} is too long a duration")
            return (now if now is not None else time.time()) - back
        try:
            seconds = float(text)
        except ValueError:
            raise BadFilter(param, f"{str(value)[:40]!r} is neither epoch seconds nor a "
                                   "duration like 90s, 15m, 1h or 7d") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise BadFilter(param, f"{value!r} is not a time (epoch seconds, 0 or more)")
    return seconds


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
    if value is None:
        return None
    text = str(value)
    if len(text) > 1000:
        raise BadFilter(param, "longer than 1000 characters")
    if "\x00" in text or not _encodable(text):
        raise BadFilter(param, "holds a NUL or an unpaired surrogate character; no "
                               "search can match it")
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
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, decision_id = json.loads(raw)
        if isinstance(created_at, (int, float)) and not isinstance(created_at, bool) \
                and isinstance(decision_id, str):
            return float(created_at), decision_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise BadFilter("cursor", "not a cursor this server gave (use next_cursor as it came)")


def decision_json(row: dict[str, Any], masker: Masker | None = None) -> dict[str, Any]:
    """A decision row as operators see it. Inputs were masked with the policy's
    ``redact_in_log`` when recorded; the tool's output is stored as it came, so it is
    masked here (where it reads as a dict or list) with ``masker``."""
    data = {name: row.get(name) for name in DECISION_FIELDS}
    if masker is not None and isinstance(data["execution_output"], str):
        data["execution_output"] = masked_output(data["execution_output"], masker)
    return data


def masked_output(text: str, masker: Masker) -> str:
    """``text`` with secret-named fields masked, when it is JSON or a Python literal (a
    tool's repr'd dict); other text (or a truncated output) is left as it is."""
    if text[:1] not in ("{", "[") or len(text) > 20_000:
        return text
    parsed: Any
    as_json = True
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        as_json = False
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return text
    masked = masker.mask(parsed)
    if masked is parsed:
        return text
    try:
        return json.dumps(masked) if as_json else repr(masked)
    except (TypeError, ValueError, RecursionError):
        return text
