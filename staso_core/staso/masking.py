"""Secrets in tool inputs are masked before anything is stored or shown (policy
``redact_in_log``): the decision log, escalations, the dashboard and the API see
``[MASKED]`` where a field is named like a secret, whatever it holds (text, a number, a
list, an object: ``password: 12345678`` and ``authorization: {bearer: ...}`` are secrets
too). The tool itself still gets the real value: masking touches copies, and an approval
restores what it masked."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from .jsonutil import value_key

MASK = "[MASKED]"
_KNOWN_LIMIT = 4096  # field names whose verdict is remembered

# field names whose values are secrets unless a policy says otherwise
DEFAULT_PATTERNS: tuple[str, ...] = (
    "password", "*password*", "passwd", "pwd", "*secret*", "token", "*_token", "*-token",
    "api_key", "apikey", "*_api_key", "*-api-key", "private_key", "*_private_key",
    "authorization", "cookie", "set-cookie", "credential", "credentials", "session_id")


class Masker:
    """Masks the values of fields whose names match glob patterns (case-insensitive), at
    any depth of dicts and lists. Only null and the empty string are left: they hold
    nothing to hide."""

    def __init__(self, patterns: tuple[str, ...] = DEFAULT_PATTERNS) -> None:
        self.patterns = tuple(patterns)
        self._match = re.compile("|".join(fnmatch.translate(p.lower()) for p in patterns)
                                 ).match if patterns else None
        self._known: dict[str, bool] = {}

    def secret(self, key: Any) -> bool:
        if self._match is None or not isinstance(key, str):
            return False
        # field names repeat from call to call: each is matched once (the decision log
        # masks every row's input and context; a dict hit costs a third of lower+match)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= _KNOWN_LIMIT:
                self._known.clear()  # names can be model-made: keep the memo bounded
            known = self._known[key] = self._match(key.lower()) is not None
        return known

    def mask(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked; ``value`` itself when nothing matched."""
        if self._match is None:
            return value
        return self._mask(value)

    def _mask(self, value: Any) -> Any:
        if isinstance(value, dict):
            out, changed = {}, False
            for k, v in value.items():
                new = MASK if v is not None and v != "" and self.secret(value_key(value, k)) \
                    else self._mask(v)
                changed = changed or new is not v
                out[k] = new
            return out if changed else value
        if isinstance(value, (list, tuple)):  # (a tuple is a JSON array too)
            # plain loops, no comprehensions: each comprehension is a frame of its own, and
            # a 500-level input (the limit check_json allows) must not run out of stack
            items, changed = [], False
            for v in value:
                new = self._mask(v)
                changed = changed or new is not v
                items.append(new)
            return items if changed else value
        return value


def unmask(edited: Any, original: Any) -> Any:
    """``edited`` (an approver's edit of a masked input) with every ``[MASKED]`` put back to
    the original's value at the same place: the approver never saw the secret, and the tool
    must still get it."""
    if edited == MASK:  # whatever it was: text, a number, a list, an object
        return original
    if isinstance(edited, dict) and isinstance(original, dict):
        out = {}
        for k, v in edited.items():  # (loops: one frame a level, as in Masker._mask)
            out[k] = unmask(v, original[k]) if k in original else v
        return out
    if isinstance(edited, list) and isinstance(original, (list, tuple)):
        items = []
        for i, v in enumerate(edited):
            items.append(unmask(v, original[i]) if i < len(original) else v)
        return items
    return edited
