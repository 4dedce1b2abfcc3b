"""Text a database cannot hold as is, stored in a lossless escaped form.

Tool names, inputs and outputs are attacker-controlled text. PostgreSQL's text type refuses
NUL characters, and no UTF-8 database takes a lone surrogate (what Python makes of a
file name that is not UTF-8). One such value used to fail a whole batch of the decision
log. A text column's value that holds either is stored as ``MARKER`` followed by its JSON
string literal (ASCII), and read back as the original; a value that merely starts with
``MARKER`` is escaped too, so reading back is never ambiguous. Every other value is stored
as it is, readable by anyone querying the database. JSON columns need none of this: their
text is ASCII JSON, where ``\\u0000`` and ``\\udcff`` are ordinary escapes.
"""

from __future__ import annotations

import json
from typing import Any

MARKER = "staso:escaped:"


def needs_escape(text: str) -> bool:
    if text.startswith(MARKER) or "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


def escape_text(value: Any) -> Any:
    """``value`` as a text column stores it (non-text values pass through)."""
    if isinstance(value, str) and needs_escape(value):
        return MARKER + json.dumps(value)  # ensure_ascii: NUL and surrogates as \\u escapes
    return value


def unescape_text(value: Any) -> Any:
    """What ``escape_text`` stored, as it was given. A value that starts with ``MARKER``
    but is not an escaped string (written before escaping existed) is returned as it is."""
    if isinstance(value, str) and value.startswith(MARKER):
        try:
            original = json.loads(value[len(MARKER):])
        except (ValueError, RecursionError):
            return value
        return original if isinstance(original, str) else value
    return value


def unescape_row(row: dict[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """A row read from the database with its text ``columns`` as they were given."""
    for name in columns:
        if name in row:
            row[name] = unescape_text(row[name])
    return row
