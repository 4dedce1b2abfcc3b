"""Destructive SQL: DROP and TRUNCATE, and DELETE or UPDATE without a WHERE clause.

Comments and string literals are removed first, so `DELETE FROM t -- WHERE id = 1` is caught
and `SELECT 'DROP TABLE x'` is not; only statement starts count, so prose that merely
mentions "drop table" is left alone.
"""

from __future__ import annotations

import re

_LEXEMES = re.compile(
    r"""--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*(?:'|\Z)|"(?:[^"]|"")*(?:"|\Z)|\$\$.*?(?:\$\$|\Z)""",
    re.DOTALL,
)
_STATEMENT = re.compile(
    r"""^\s*(?:with\b.*?\)\s*)?(?P<verb>drop|truncate|delete|update|alter)\b(?P<rest>.*)$""",
    re.IGNORECASE | re.DOTALL,
)
_DROP_OBJECTS = re.compile(
    r"^\s*(?:table|database|schema|view|index|materialized\s+view|user|role|sequence|"
    r"function|procedure|trigger|type|collection|keyspace|tablespace)\b", re.IGNORECASE)
_WHERE = re.compile(r"\bwhere\b", re.IGNORECASE)
_ALTER_DROP = re.compile(r"^\s*table\b.*\bdrop\s+(?:column|constraint|partition)?\b",
                         re.IGNORECASE | re.DOTALL)
_DELETE_FROM = re.compile(r"^\s*(?:from\s+)?[\w.\"`\[\]]+", re.IGNORECASE)
_UPDATE_SET = re.compile(r"^\s*[\w.\"`\[\]]+(?:\s+(?:as\s+)?\w+)?\s+set\b", re.IGNORECASE)


def _strip(text: str) -> str:
    return _LEXEMES.sub(lambda m: " " if m.group(0)[:2] in ("--", "/*") else "''", text)


def _is_destructive(statement: str) -> bool:
    m = _STATEMENT.match(statement)
    if not m:
        return False
    verb, rest = m.group("verb").lower(), m.group("rest")
    if verb == "drop":
        return bool(_DROP_OBJECTS.match(rest))
    if verb == "truncate":
        return True
    if verb == "alter":
        return bool(_ALTER_DROP.match(rest))
    if verb == "delete":
        return bool(_DELETE_FROM.match(rest)) and not _WHERE.search(rest)
    return bool(_UPDATE_SET.match(rest)) and not _WHERE.search(rest)  # update


def is_destructive_sql(text: str) -> bool:
    """True when ``text`` holds a SQL statement that drops, truncates or rewrites a whole table."""
    if not text or not any(k in text.lower() for k in ("drop", "truncate", "delete", "update",
                                                       "alter")):
        return False
    return any(_is_destructive(stmt) for stmt in _strip(text).split(";"))
