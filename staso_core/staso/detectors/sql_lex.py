"""Statement splitting and dialect normalisation for the SQL detector's fallback path.

Used only when PostgreSQL's grammar rejects the whole text: the text is cut into statements
the way psql would send them (``;`` outside strings, quoted identifiers, comments and dollar
quotes), so that a destructive statement next to garbage is still judged by the parser.
Every pattern is possessive and its alternatives start with distinct characters, so the
regex engine never backtracks: time is linear in the input.
"""

from __future__ import annotations

import re

_STRING = r"'[^']*+(?:''[^']*+)*+'?"
_ESTRING = r"(?<![\w$])[eE]'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'?"
_IDENT = r'"[^"]*+(?:""[^"]*+)*+"?'
_LINE_COMMENT = r"--[^\n]*+"
_BLOCK_COMMENT = r"/\*[^*]*+(?:\*(?!/)[^*]*+)*+(?:\*/)?"
_DOLLAR = r"(?<![\w$])\$(?P<tag>[A-Za-z_\x80-\U0010ffff][\w\x80-\U0010ffff]*+)?\$(?:.*?\$(?P=tag)\$|.*+)"
_FRAGMENT = re.compile(
    r"(?:[^;'\"$/\-eE]++|" + "|".join(
        (_ESTRING, _STRING, _IDENT, _LINE_COMMENT, _BLOCK_COMMENT, _DOLLAR)) + r"|[$/\-eE])++",
    re.DOTALL)


def split_statements(text: str) -> list[str]:
    """The ``;``-separated statements of ``text``; a ``;`` inside a literal or comment does not cut."""
    return [m.group(0) for m in _FRAGMENT.finditer(text)]


# MySQL and T-SQL spellings that PostgreSQL's grammar rejects, rewritten to what it accepts.
# Applied only to a statement that failed to parse; the verdict still comes from the parser.
_BACKTICK = re.compile(r"`([^`\n]*+)`")
_BRACKET = re.compile(r"\[([^\[\]\n]*+)\]")
_TOP = re.compile(r"\btop\s*+(?:\(\s*+\d++\s*+\)|\d++)(?:\s*+percent\b)?", re.IGNORECASE)
_MODIFIERS = re.compile(r"\b(delete|update)(?:\s++(?:low_priority|quick|ignore)\b)++", re.IGNORECASE)
_DELETE_ALIAS = re.compile(r"\bdelete\s++(?!from\b)[\w\".]++\s++(?=from\b)", re.IGNORECASE)
_DELETE_NO_FROM = re.compile(r"^(\s*+delete)\s++(?!from\b)", re.IGNORECASE)
_LIMIT = re.compile(r"(?<!\s)\s++limit\s++\d++\s*+$", re.IGNORECASE)
_ORDER_BY = re.compile(r"\border\s++by\b", re.IGNORECASE)
_HASH_COMMENT = re.compile(r"#[^\n]*+")
_GO = re.compile(r"^\s*+go\s*+$", re.IGNORECASE | re.MULTILINE)


def _quote(m: re.Match[str]) -> str:
    return '"' + m.group(1).replace('"', '""') + '"'


def normalise_dialect(statement: str) -> str:
    """``statement`` with MySQL/T-SQL quoting, TOP, LIMIT, modifiers and GO in PostgreSQL form."""
    s = _GO.sub(";", _HASH_COMMENT.sub("", statement))
    s = _BRACKET.sub(_quote, _BACKTICK.sub(_quote, s))
    s = _MODIFIERS.sub(r"\1", _TOP.sub("", s))
    s = _DELETE_NO_FROM.sub(r"\1 from ", _DELETE_ALIAS.sub("delete ", s))
    if re.match(r"\s*+(?:delete|update)\b", s, re.IGNORECASE):
        s, limited = _LIMIT.subn("", s)
        last = None
        for last in _ORDER_BY.finditer(s):
            pass
        if limited and last and not any(c in s[last.end():] for c in "()'\""):
            s = s[:last.start()]
    return s
