"""Statement splitting and dialect normalisation for the SQL detector's fallback path.

Used only when PostgreSQL's grammar rejects the whole text: the text is cut into statements
the way psql would send them (``;`` outside strings, quoted identifiers, comments and dollar
quotes), so that a destructive statement next to garbage is still judged by the parser.
Every pattern is possessive and its alternatives start with distinct characters, so the
regex engine never backtracks: time is linear in the input.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator

_STRING = r"'[^']*+(?:''[^']*+)*+'?"
_IDENT = r'"[^"]*+(?:""[^"]*+)*+"?'
_LINE_COMMENT = r"--[^\n]*+"


def _block_comment(depth: int) -> str:
    """A /* comment */, nested as PostgreSQL nests them (to ``depth`` levels), or unterminated."""
    inner = r"[^*/]++|\*(?!/)|/(?!\*)" + ("|" + _block_comment(depth - 1) if depth else "")
    return r"/\*(?:" + inner + r")*+(?:\*/)?"


_BLOCK_COMMENT = _block_comment(4)
_DOLLAR = (r"(?<![\w$])\$(?P<TAG>[A-Za-z_\x80-\U0010ffff][\w\x80-\U0010ffff]*+)?\$"
           r"(?:.*?\$(?P=TAG)\$|.*+)")


def _body(tag: str) -> str:
    """Text up to the ``;`` that ends a statement (``tag``: the dollar-quote group's name)."""
    return r"(?:[^;'\"$/\-]++|-(?!-)|/(?!\*)|" + "|".join(
        (_STRING, _IDENT, _LINE_COMMENT, _BLOCK_COMMENT, _DOLLAR.replace("TAG", tag))
    ) + r"|\$)*+"


_LEAD = r"(?:\s++|" + _LINE_COMMENT + "|" + _BLOCK_COMMENT + r"|\()*+"
# Words a statement that can destroy data starts with (GO: T-SQL batches without semicolons).
_START = (r"(?i:drop|truncate|delete|update|alter|with|explain|do|create|merge|copy|prepare|go"
          r"|exec(?:ute)?)\b")
# One match: any number of statements that cannot be destructive, then (group 1) one that may
# be. The skipped statements are consumed inside the regex engine, never in a Python loop.
_CANDIDATE = re.compile(r"(?:(?!" + _LEAD + _START + ")" + _body("skipped") + r"(?:;|\Z))*+"
                        r"(?P<statement>" + _LEAD + _START + _body("tag") + ")?", re.DOTALL)


def candidate_statements(text: str) -> Iterator[str]:
    """The statements of ``text`` that start like one that can destroy data.

    Statements are cut the way psql cuts them: a ``;`` inside a string, quoted identifier,
    comment or dollar quote does not end one.
    """
    return (m["statement"] for m in _CANDIDATE.finditer(text) if m["statement"])


# MySQL and T-SQL spellings that PostgreSQL's grammar rejects, rewritten to what it accepts.
# Applied only to a statement that failed to parse; the verdict still comes from the parser.
_BACKTICK = re.compile(r"`([^`\n]*+)`")
_BRACKET = re.compile(r"\[([^\[\]\n]*+)\]")
_TOP = re.compile(r"\btop\s*+(?:\(\s*+\d++\s*+\)|\d++)(?:\s*+percent\b)?", re.IGNORECASE)
_MODIFIERS = re.compile(r"\b(delete|update)(?:\s++(?:low_priority|quick|ignore)\b)++",
                        re.IGNORECASE)
_DELETE_NO_FROM = re.compile(r"^(\s*+delete)\s++(?!from\b)(?=[\w\".]++\s++where\b)",
                             re.IGNORECASE)
_DELETE_ALIAS = re.compile(r"^(\s*+delete)\s++(?!from\b)[\w\".]++\s++(?=from\b)", re.IGNORECASE)
_LIMIT = re.compile(r"(?<!\s)\s++limit\s++\d++\s*+$", re.IGNORECASE)
_ORDER_BY = re.compile(r"\border\s++by\b", re.IGNORECASE)
_HASH_COMMENT = re.compile(r"#[^\n]*+")
_GO = re.compile(r"^\s*+go\s*+$", re.IGNORECASE | re.MULTILINE)
# Oracle: DROP TABLE t PURGE, DROP TABLE t CASCADE CONSTRAINTS
_ORACLE_DROP = re.compile(r"^(\s*+drop\s++table\s++[\w\".$]++)\s++(?:cascade\s++constraints"
                          r"(?:\s++purge)?|purge)\s*+$", re.IGNORECASE)
# MySQL multi-table DELETE: DELETE t1, t2 FROM t1 JOIN t2 ... [WHERE ...]
_MULTI_DELETE = re.compile(r"\s*+delete\s++[\w\".]++(?:\s*+,\s*+[\w\".]++)++\s++from\s++"
                           r"([\w\".]++)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"(?<=[\s=<>(,])\?(?=[\s)=<>,;]|$)")
# Driver placeholders (psycopg/MySQLdb %s and %(name)s, named :name) in a value's place.
_DRIVER_PLACEHOLDER = re.compile(r"(?<=[\s=<>(,])(?:%(?:\(\w{1,64}\))?s|:[A-Za-z_]\w{0,63})"
                                 r"(?=[\s)=<>,;]|$)")
# psql's \g (and \gx, \gset ...) ends a statement and runs it; ClickHouse's ON CLUSTER and
# a trailing SYNC change where and when a DROP runs, not what it drops.
_PSQL_GO = re.compile(r"\\g\w{0,8}(?=\s|$)")
_CLICKHOUSE = re.compile(r"\s++on\s++cluster\s++[\w.\"`{}-]{1,128}|\s++sync\s*+$", re.IGNORECASE)
_WHERE = re.compile(r"\bwhere\b", re.IGNORECASE)
_ON = re.compile(r"\b(?:on|using)\b", re.IGNORECASE)
# Dynamic SQL in other dialects: EXEC('...'), EXECUTE IMMEDIATE '...', EXEC sp_executesql N'...',
# PREPARE s FROM '...'
_DYNAMIC = re.compile(r"\s*+(?:exec(?:ute)?\s*+(?:\(\s*+|immediate\s++|sp_executesql\s++)"
                      r"|prepare\s++\w++\s++from\s++)n?'((?:[^']|'')*+)'", re.IGNORECASE)


def dynamic_sql_strings(statement: str) -> list[str]:
    """The SQL a T-SQL/Oracle/MySQL dynamic-SQL statement runs (its string constant), if any."""
    m = _DYNAMIC.match(statement)
    return [m.group(1).replace("''", "'")] if m else []


def _quote(m: re.Match[str]) -> str:
    return '"' + m.group(1).replace('"', '""') + '"'


def normalise_dialect(statement: str) -> str:
    """``statement`` with MySQL/T-SQL quoting, TOP, LIMIT, modifiers and GO in PostgreSQL form."""
    s, low = statement, statement.lower()
    if "#" in s:
        s = _HASH_COMMENT.sub("", s)
    if "go" in low:
        s = _GO.sub(";", s)
    if "`" in s:
        s = _BACKTICK.sub(_quote, s)
    if "[" in s:
        s = _BRACKET.sub(_quote, s)
    if "top" in low:
        s = _TOP.sub("", s)
    if "low_priority" in low or "quick" in low or "ignore" in low:
        s = _MODIFIERS.sub(r"\1", s)
    if re.match(r"\s*+delete\b", s, re.IGNORECASE):
        # `DELETE t1 FROM t1 ...` (MySQL), `DELETE users WHERE ...` (T-SQL). A bare
        # `DELETE users` is not rewritten: "Delete unused imports" would read as a DELETE
        s = _DELETE_NO_FROM.sub(r"\1 from ", _DELETE_ALIAS.sub(r"\1 ", s, count=1), count=1)
    if "purge" in low or "constraints" in low:
        s = _ORACLE_DROP.sub(r"\1", s)
    multi = _MULTI_DELETE.match(s) if "," in s else None
    if multi:
        where = _WHERE.search(s, multi.end())
        if where:
            s = "DELETE FROM " + multi.group(1) + " " + s[where.start():]
        elif not _ON.search(s, multi.end()):
            s = "DELETE FROM " + multi.group(1)
    if "?" in s:  # JDBC/MySQL placeholders: WHERE id = ? (a parameter, like $1)
        s = _PLACEHOLDER.sub(" $1 ", s)
    if "%" in s or ":" in s:  # WHERE id = %s / %(id)s / :id
        s = _DRIVER_PLACEHOLDER.sub(" $1 ", s)
    if "\\g" in s:
        s = _PSQL_GO.sub(";", s)
    if "cluster" in low or "sync" in low:
        s = _CLICKHOUSE.sub("", s)
    if "limit" in low and re.match(r"\s*+(?:delete|update)\b", s, re.IGNORECASE):
        s, limited = _LIMIT.subn("", s)
        orders = list(_ORDER_BY.finditer(s)) if limited else []
        if orders and not any(c in s[orders[-1].end():] for c in "()'\""):
            s = s[:orders[-1].start()]
    return s


# PostgreSQL's lexer re-reads a run of operator characters (``+-*/<>=~!@#%^&|`?``) from a cut
# point to its end each time it cuts it: at ``/*`` (a comment start: its rule reads every
# operator character after the ``/*`` and then puts them back), at ``*/`` and at a trailing
# ``+``/``-`` (``+++`` is read as ``+`` then ``++`` again). A run of n such cut points costs
# n * len(run): ``/*`` * 500,000 takes minutes. Real SQL has short runs or runs with one or two
# cut points (``/*****/``, ``-- -----``).
_OP_RUN = re.compile(r"[~!@#^&|`?+\-*/%<>=]{16,}")
_CUT_POINT = re.compile(r"/\*|\*/|\+|-(?!-)")


def lexer_rereads(sql: str) -> int:
    """An upper bound of the characters PostgreSQL's lexer re-reads in ``sql``'s operator runs.

    Runs shorter than 16 characters are not counted (they cost at most 16 times their length);
    the count is done in C (``findall`` and ``map``), one pass over the text.
    """
    runs = _OP_RUN.findall(sql)
    if not runs:
        return 0
    return sum(map(operator.mul, map(len, runs), map(len, map(_CUT_POINT.findall, runs))))
