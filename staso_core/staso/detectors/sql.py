"""Destructive SQL, judged by PostgreSQL's own parser (pglast / libpg_query).

Only text that parses as SQL is SQL: "Delete my account please" fails the grammar and is
prose. Destructive means any DROP statement, TRUNCATE, ALTER TABLE ... DROP COLUMN or
CONSTRAINT, and a DELETE or UPDATE (or MERGE ... THEN DELETE/UPDATE) whose WHERE is absent or
always true (``WHERE TRUE``, ``1=1``, ``'a'='a'``, ``x = x``, ``x LIKE '%'``, ``x = 0 OR x <> 0``,
an OR with such a branch) or does not depend on the row: a condition that names no column
(``now() IS NOT NULL``, ``random() < 2``, ``EXISTS (SELECT 1)``, ``(SELECT true)``, a parameter
``$1`` or ``?`` alone) is the same for every row, so unless it evaluates to false it is judged
destructive. A subquery that names any column counts as row-dependent. Data-modifying CTEs,
``EXPLAIN ANALYZE`` (which runs its statement; plain ``EXPLAIN`` does not and is left alone),
``COPY (DELETE ...)``, rules, ``DO`` blocks and function bodies (SQL and PL/pgSQL, including
``EXECUTE 'DROP ...' || name``) are looked into.

When the whole text does not parse, it is cut into statements the way psql sends them, and
each statement that starts like one that can destroy data (DROP, TRUNCATE, DELETE, UPDATE,
ALTER, WITH, EXPLAIN, DO, CREATE, MERGE, COPY, PREPARE, GO) is parsed on its own; one that
still fails is retried once with MySQL/T-SQL spellings (backticks, ``[brackets]``,
``TOP (n)``, ``LIMIT n``, ``GO``, ``#`` comments, Oracle ``PURGE``/``CASCADE CONSTRAINTS``,
``?`` placeholders, MySQL ``DELETE t1, t2 FROM ...``) rewritten; the string of ``EXEC('...')``,
``EXECUTE IMMEDIATE '...'``, ``EXEC sp_executesql N'...'`` or ``PREPARE s FROM '...'`` is judged
as SQL. The verdict is always the parser's. Text that still fails is searched for SQL given as
the value of a key (``{'q': 'DROP TABLE users'}``, ``q: DROP TABLE users``, JSON with trailing
text): a ``:`` followed by a quoted string or by a statement word.

Labels are not statements: a text that is only ``DELETE FROM`` or ``TRUNCATE [TABLE]`` and one or
two plain words, without ``;``, is prose when written in sentence or title case (``Delete from
cart``, ``Truncate Logs``: how buttons and sentences are written, while SQL keywords are written
in capitals or all in lower case), or when its table is an English determiner (``DELETE FROM the
queue``). ``DELETE FROM users``, ``delete from cart``, ``TRUNCATE orders`` and ``Delete from
users;`` stay destructive. The price: an agent sending exactly ``Delete from users`` is allowed.

Speed: a keyword gate lets ordinary strings through for the cost of a ``lower()``. Parsing
is C; the JSON parse tree is searched with substring counts and regexes in C (``{"DropStmt":{``
can only be a node: quotes inside JSON strings are escaped), the everyday
``... WHERE column op constant`` form is recognised in bulk, and only the remaining statements
are decoded and walked in Python.

Budgets -- where the detector gives up, it blocks (judges destructive), never allows:
``PARSE_BUDGET`` characters of SQL reach the parser in total (a failed parse is charged up to
its error position, so prose costs next to nothing); ``MAX_PARSES`` separate parses;
``DECODE_BUDGET`` characters of parse tree decoded into Python; ``REREAD_BUDGET`` characters
PostgreSQL's lexer may re-read in runs of operator characters (it re-reads a run such as
``/*/*/*`` or ``+++`` from every cut point: 1 MiB of ``delete /*/*...`` took 14 s; every run of
16 or more such characters is costed, in C, before a parse). In practice they bite on
more than 128 KiB of valid SQL whose statements start with the words above (a large migration
script, a single 1 MiB UPDATE), on a statement whose parse tree is too big to decode (a
hundreds-of-kilobytes DELETE/UPDATE whose WHERE is not ``column op constant``), and on more
than 2000 fragments that start like SQL but do not parse (``"drop x;" * 150000``), and on
thousands of ``/*`` or ``+`` in a row (nonsense in any real text).

Not caught: statements run indirectly (``EXECUTE`` of a prepared name, ``CALL`` of a
procedure, dynamic SQL built from values other than string constants), column conditions
that happen to hold for every row (``WHERE id IS NOT NULL``: ``deleted_at IS NOT NULL`` is an
everyday cleanup), uncorrelated subqueries that name a column (``WHERE EXISTS (SELECT 1 FROM s
WHERE s.flag)``), sentence-case labels (above), and dialect syntax that stays outside
PostgreSQL's grammar after the rewrites above.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from .sql_lex import candidate_statements, dynamic_sql_strings, lexer_rereads, normalise_dialect

PARSE_BUDGET = 128 * 1024
MAX_PARSES = 2000
# ... and parses for all the strings of one tool input together (see ``evaluation``): a
# megabyte split into tens of thousands of short statements would otherwise cost tens of
# thousands of parses. Past it the input is judged destructive.
MAX_EVALUATION_PARSES = 4000
_EVALUATION: ContextVar[list[int] | None] = ContextVar("staso_sql_evaluation", default=None)


def open_evaluation() -> Token[list[int] | None]:
    """Open the evaluation's parse budget (see ``evaluation``); close it with the token."""
    return _EVALUATION.set([MAX_EVALUATION_PARSES])


def close_evaluation(token: Token[list[int] | None]) -> None:
    _EVALUATION.reset(token)


@contextmanager
def evaluation() -> Iterator[None]:
    """One parse budget for every string of one policy evaluation."""
    token = _EVALUATION.set([MAX_EVALUATION_PARSES])
    try:
        yield
    finally:
        _EVALUATION.reset(token)
DECODE_BUDGET = 512 * 1024
# Characters PostgreSQL's lexer may re-read in runs of operator characters (``/*/*/*...``,
# ``+++...``): ~1.7 ns each, so 4M is ~7 ms. Only such runs can make the parser super-linear.
REREAD_BUDGET = 4_000_000
_MAX_DEPTH = 4  # nesting of function bodies / DO blocks / EXECUTE strings judged recursively

_KEYWORDS = ("drop", "truncate", "delete", "update", "alter")  # also inline in is_destructive_sql
_DECODER = json.JSONDecoder()

# Keys in the JSON parse tree. A node is always written `{"Name":{`; inside a JSON string
# every quote is escaped, so these substrings cannot come from text in the input. Node names
# are capitalised and field names are not, so `{"Drop` is exactly the DROP statements.
_ALWAYS = ('{"Drop', '{"TruncateStmt":{', '"subtype":"AT_DropColumn"',
           '"subtype":"AT_DropConstraint"')
_DML = ('{"DeleteStmt":{', '{"UpdateStmt":{')
_SPECIAL = ('{"MergeStmt":{', '{"DoStmt":{', '{"CreateFunctionStmt":{')
# Functions that run the SQL they are given as a string (dblink_exec('dbname=prod', 'DROP
# TABLE users'), query_to_xml('DELETE ...', ...)): their string arguments are judged as SQL.
_SQL_RUNNERS = frozenset(("dblink_exec", "dblink", "dblink_send_query", "dblink_open",
                          "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema"))
_RUNNER_KEYS = tuple(f'{{"String":{{"sval":"{name}"}}}}' for name in sorted(_SQL_RUNNERS))
_NEEDS_LOOK = _DML + _SPECIAL + _RUNNER_KEYS

# Bulk recognition of the everyday safe form: UPDATE/DELETE of a plain table whose WHERE is
# `column op constant` (or an AND whose first term is): such a WHERE can never be always true.
_STR = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'


def _obj(depth: int) -> str:
    inner = r'[^{}"]++|' + _STR + ("|" + _obj(depth - 1) if depth else "")
    return r"\{(?:" + inner + r")*+\}"


_OBJ = _obj(12)
_NAME = r'\{"String":\{"sval":' + _STR + r"\}\}"
_COLUMN = r'\{"ColumnRef":\{"fields":\[' + _NAME + "(?:," + _NAME + r')*+\],"location":\d++\}\}'
_CONST = r'\{"(?:A_Const|ParamRef)":' + _obj(2) + r"\}"
_COMPARE = (r'\{"A_Expr":\{"kind":"AEXPR_OP",'
            r'"name":\[\{"String":\{"sval":"(?:=|<>|!=|<|>|<=|>=)"\}\}\],'
            r'"lexpr":' + _COLUMN + r',"rexpr":' + _CONST + r',"location":\d++\}\}')
_SAFE_WHERE = r'"whereClause":(?:' + _COMPARE + r'|\{"BoolExpr":\{"boolop":"AND_EXPR","args":\[' \
    + _COMPARE + ")"
_RELATION = r'"relation":' + _obj(2)
_SAFE_DELETE = re.compile(r'\{"DeleteStmt":\{' + _RELATION + "," + _SAFE_WHERE)
_SAFE_UPDATE = re.compile(r'\{"UpdateStmt":\{' + _RELATION + r',"targetList":\[' + _OBJ
                          + r"(?:," + _OBJ + r")*+\]," + _SAFE_WHERE)


_GO_LINE = re.compile(r"^[ \t]*+go[ \t]*+\r?$", re.IGNORECASE | re.MULTILINE)
# `key: value` (quoted or not) in text that is not JSON: the value is judged
_KEYED = re.compile(r""":(?<!::)(?!:)[ \t]*+(?:(?P<q>['"])(?P<quoted>(?:\\.|(?!(?P=q))[^\\\n])*+)"""
                    r"""|(?P<bare>(?i:drop|truncate|delete|update|alter)\b[^\n]*+))""")


def _keyed_values(text: str) -> Iterator[str]:
    for m in _KEYED.finditer(text):
        value = m["bare"] if m["quoted"] is None else m["quoted"]
        low = value.lower()
        if any(k in low for k in _KEYWORDS):
            yield value.replace("\\" + (m["q"] or ""), m["q"] or "") if m["q"] else value


# A UI label or a sentence, not a statement: 'Delete from cart', 'Truncate Logs', 'DELETE FROM
# the queue'. The whole text is DELETE FROM / TRUNCATE [TABLE] and one or two plain words,
# with no `;`, written in sentence or title case (SQL keywords are written in capitals or all in
# lower case), or naming a table that is an English determiner.
_LABEL = re.compile(r"\s*+(?:(?i:delete)\s++(?i:from)|(?i:truncate)(?:\s++(?i:table))?)"
                    r"\s++([A-Za-z]++)(?:\s++([A-Za-z]++))?\s*+")
_DETERMINERS = {"the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this",
                "that", "these", "those", "all", "every", "some", "any", "each"}


def _is_label(text: str) -> bool:
    m = _LABEL.fullmatch(text) if len(text) < 80 else None
    if m is None:
        return False
    words = text.split()
    if m[1].lower() in _DETERMINERS:
        return True
    sentence_case = words[0][0].isupper() and words[0][1:].islower()
    return sentence_case and all(w.islower() or (w[0].isupper() and w[1:].islower())
                                 for w in words[1:])


class _OverBudget(Exception):
    """The text needs more work than the budgets allow: judged destructive."""


class _Judge:
    def __init__(self) -> None:
        self.parsed = 0
        self.parses = 0
        self.decoded = 0
        self.rereads = 0

    # -- parsing -----------------------------------------------------------------------------
    def parse(self, sql: str) -> str | None:
        """The JSON parse tree of ``sql``, or None when PostgreSQL's grammar rejects it.

        Text longer than the budget left is parsed up to the budget: an error well before the
        cut is the error of the whole text (prose fails in its first words); a prefix that
        parses, or fails at the cut, cannot be judged within the budget.
        """
        from pglast import parser

        self.parses += 1
        left = _EVALUATION.get()
        if left is not None:
            left[0] -= 1
            if left[0] < 0:
                raise _OverBudget
        if self.parses > MAX_PARSES:
            raise _OverBudget
        cut = PARSE_BUDGET - self.parsed
        head = sql if len(sql) <= cut else sql[:cut]
        self.lex(head)
        try:
            tree: str = parser.parse_sql_json(head)
        except parser.ParseError as exc:
            where = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else len(sql)
            if len(sql) > cut and (where + 64 >= cut or "unterminated" in str(exc.args[0])
                                   or "end of input" in str(exc.args[0])):
                raise _OverBudget from None
            self.charge(min(where, len(sql)))
            return None
        if len(sql) > cut:
            raise _OverBudget
        self.charge(len(sql))
        return tree

    def lex(self, sql: str) -> None:
        """Charge the lexer's re-reading of operator runs (``delete /*/*/*...`` is quadratic)."""
        self.rereads += lexer_rereads(sql)
        if self.rereads > REREAD_BUDGET:
            raise _OverBudget

    def charge(self, n: int) -> None:
        self.parsed += n
        if self.parsed > PARSE_BUDGET:
            raise _OverBudget

    # -- text ----------------------------------------------------------------------------------
    def text(self, text: str, depth: int = 0) -> bool:
        low = text.lower()
        if not any(k in low for k in _KEYWORDS):
            return False
        if depth > _MAX_DEPTH:
            raise _OverBudget
        if depth == 0 and _is_label(text):
            return False
        if _GO_LINE.search(text):  # T-SQL batches: `GO` on its own line ends a statement
            text = _GO_LINE.sub(";", text)
        failed = over = False
        try:
            tree = self.parse(text)
            failed = tree is None
        except _OverBudget:  # too much valid SQL to parse at once: judge statement by statement
            if self.rereads > REREAD_BUDGET:
                raise
            tree, over = None, True
        if tree is not None:
            return self.tree(tree, depth)
        candidates: Iterator[str] = (sql for sql in candidate_statements(text)
                                     if any(k in sql.lower() for k in _KEYWORDS))
        if over:
            # Valid SQL too long to parse whole: parse the statements that may be destructive
            # together, if they fit in the budget (else no verdict is possible: fail closed).
            batch, size = [], 0
            for sql in candidates:
                size += len(sql) + 2
                if size > PARSE_BUDGET - self.parsed:
                    raise _OverBudget
                batch.append(sql)
            tree = self.parse(";\n".join(batch)) if batch else None
            if tree is not None:
                return self.tree(tree, depth)
            candidates = iter(batch)
        if any(self.statement(sql, depth, known_bad=failed and len(sql) == len(text))
               for sql in candidates):
            return True
        if not failed or over:
            return False
        # An injected fragment (`x'; DROP TABLE users; --`) starts inside the application's
        # string literal: read it that way too, so the quote it closes ends that string.
        if "'" in text and any(self.statement(sql, depth)
                               for sql in candidate_statements("'" + text)
                               if any(k in sql.lower() for k in _KEYWORDS)):
            return True
        # SQL as the value of a key in text that is not JSON: `{'q': 'DROP TABLE users'}`,
        # `q: DROP TABLE users`, `{"q": "DROP TABLE users"} trailing`.
        return depth == 0 and any(self.text(value, depth + 1) for value in _keyed_values(text))

    def statement(self, sql: str, depth: int, known_bad: bool = False) -> bool:
        tree = None if known_bad else self.parse(sql)
        if tree is None and "*/" in sql:  # a nested /* /* */ */ comment the splitter cut short
            tree = self.parse(sql[sql.rfind("*/") + 2:])
        if tree is None:
            # only what the parse budget can still take is rewritten (the rest is kept as it is:
            # the parser is never handed more than the budget)
            keep = max(PARSE_BUDGET - self.parsed + 1, 0)
            normal = normalise_dialect(sql[:keep]) + sql[keep:] if len(sql) > keep \
                else normalise_dialect(sql)
            if normal != sql:
                tree = self.parse(normal)
        if tree is None:
            # T-SQL / Oracle / MySQL dynamic SQL: EXEC('...'), EXECUTE IMMEDIATE '...',
            # EXEC sp_executesql N'...', PREPARE s FROM '...': the string is judged as SQL
            strings = dynamic_sql_strings(sql)
            return any(self.text(s, depth + 1) for s in strings)
        return self.tree(tree, depth)

    # -- parse tree ----------------------------------------------------------------------------
    def tree(self, tree: str, depth: int) -> bool:
        if any(k in tree for k in _ALWAYS):
            return True
        special = any(k in tree for k in _SPECIAL) or any(k in tree for k in _RUNNER_KEYS)
        dml = sum(tree.count(k) for k in _DML)
        if not dml and not special:
            return False
        if not special and dml == len(_SAFE_DELETE.findall(tree)) + len(_SAFE_UPDATE.findall(tree)):
            return False  # every DELETE/UPDATE has a `column op constant` WHERE
        return any(self.node(stmt, depth) for stmt in self.statements(tree))

    def statements(self, tree: str) -> Iterator[Any]:
        """The top-level statements that need a closer look, decoded one at a time."""
        pos = tree.find("{\"stmt\":")
        while pos >= 0:
            nxt = tree.find("{\"stmt\":", pos + 8)
            segment_end = nxt if nxt >= 0 else len(tree)
            if any(tree.find(k, pos, segment_end) >= 0 for k in _NEEDS_LOOK):
                self.decoded += segment_end - pos
                if self.decoded > DECODE_BUDGET:
                    raise _OverBudget
                yield _DECODER.raw_decode(tree, pos)[0]
            pos = nxt

    def node(self, root: Any, depth: int) -> bool:
        """Walk a decoded tree (iteratively: trees can be deep) for a destructive statement."""
        stack = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
                continue
            if not isinstance(item, dict):
                continue
            for key, value in item.items():
                if isinstance(value, list):
                    stack.append(value)
                    continue
                if not isinstance(value, dict):
                    continue
                if key == "ExplainStmt":
                    if _explain_runs(value):
                        stack.append(value.get("query"))
                    continue
                if key in ("DeleteStmt", "UpdateStmt") and _unbounded(value.get("whereClause")):
                    return True
                if key == "MergeStmt" and _merge_unbounded(value):
                    return True
                if key in ("DoStmt", "CreateFunctionStmt") and self.body(value, depth):
                    return True
                if key == "FuncCall" and self.runs(value, depth):
                    return True
                stack.append(value)
        return False

    def runs(self, call: dict[str, Any], depth: int) -> bool:
        """A call of a function that runs SQL given as a string: its string arguments."""
        names = call.get("funcname") or []
        if not names or (_sval(names[-1]) or "").lower() not in _SQL_RUNNERS:
            return False
        strings = (_constant(arg) for arg in call.get("args") or [])
        return any(self.text(sql, depth + 1) for sql in strings if isinstance(sql, str))

    def body(self, stmt: dict[str, Any], depth: int) -> bool:
        """A DO block or function body: SQL is judged as SQL, PL/pgSQL through its own parser."""
        options = {o["DefElem"].get("defname"): o["DefElem"].get("arg")
                   for o in stmt.get("args", []) + stmt.get("options", [])
                   if isinstance(o, dict) and "DefElem" in o}
        language = _sval(options.get("language")) or "plpgsql"
        source = options.get("as")
        if isinstance(source, dict) and "List" in source:
            items = source["List"].get("items", [])
            source = items[0] if items else None
        body = _sval(source)
        if body is None:
            return False
        if language.lower() == "sql":
            return self.text(body, depth + 1)
        if language.lower() != "plpgsql":
            return False
        low = body.lower()
        if not any(k in low for k in _KEYWORDS):
            return False
        return self.plpgsql(body, depth)

    def plpgsql(self, body: str, depth: int) -> bool:
        from pglast import parser

        tag = "$staso$"
        while tag in body:
            tag = tag[:-1] + "x$"
        source = f"CREATE FUNCTION staso_body() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}"
        self.charge(len(source))
        self.lex(source)
        try:
            functions = json.loads(parser.parse_plpgsql_json(source))
        except (parser.ParseError, ValueError):
            return self.text(body, depth + 1)  # not PL/pgSQL: judge the statements it holds
        for key, value in _pairs(functions):
            if key == "PLpgSQL_stmt_dynexecute" and self.dynamic(value, depth):
                return True
            if key == "PLpgSQL_expr" and isinstance(value, dict) \
                    and isinstance(value.get("query"), str) \
                    and self.text(value["query"], depth + 1):
                return True
        return False

    def dynamic(self, stmt: Any, depth: int) -> bool:
        """``EXECUTE 'DROP TABLE ' || name``: the string constants, joined, are judged as SQL."""
        expr = stmt.get("query", {}).get("PLpgSQL_expr", {}) if isinstance(stmt, dict) else {}
        query = expr.get("query") if isinstance(expr, dict) else None
        if not isinstance(query, str):
            return False
        tree = self.parse("SELECT " + query)
        if tree is None:
            return False
        constants = re.findall(r'"A_Const":\{"sval":\{"sval":(' + _STR + ")", tree)
        pieces = [json.loads(c) for c in constants]
        # 'DROP TABLE users' and 'DROP TABLE ' || 'x' are the constants joined; 'DROP TABLE ' ||
        # name needs a stand-in for the name
        return bool(pieces) and any(self.text(sql, depth + 1) for sql in dict.fromkeys(
            ("".join(pieces), " x ".join(pieces) + " x")))


def _sval(node: Any) -> str | None:
    if isinstance(node, dict):
        value = node.get("String", {}).get("sval")
        return value if isinstance(value, str) else None
    return None


def _explain_runs(explain: dict[str, Any]) -> bool:
    """EXPLAIN ANALYZE executes its statement; plain EXPLAIN only plans it."""
    for option in explain.get("options") or []:
        elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
        if elem.get("defname") == "analyze":
            return _truthy_option(elem.get("arg"))
    return False


def _truthy_option(arg: Any) -> bool:
    if not isinstance(arg, dict):
        return True  # bare ANALYZE
    if "Boolean" in arg:
        return bool(arg["Boolean"].get("boolval"))
    if "Integer" in arg:
        return bool(arg["Integer"].get("ival"))
    value = _sval(arg)
    return value is None or value.lower() not in ("false", "off", "0", "no")


def _merge_unbounded(merge: dict[str, Any]) -> bool:
    """MERGE that deletes or rewrites every row: an always-true join and an unconditional action."""
    if not _unbounded(merge.get("joinCondition")):
        return False
    for clause in merge.get("mergeWhenClauses") or []:
        when = clause.get("MergeWhenClause", {}) if isinstance(clause, dict) else {}
        if when.get("commandType") in ("CMD_DELETE", "CMD_UPDATE") \
                and when.get("matchKind") == "MERGE_WHEN_MATCHED" \
                and _unbounded(when.get("condition")):
            return True
    return False


# -- WHERE clauses ----------------------------------------------------------------------------

_TRUE_WHEN_EQUAL = {"=", "<=", ">=", "~~", "~~*"}  # x = x, x <= x, x LIKE x, ...
_UNKNOWN = object()
_BOOL_WORDS = {"t": True, "true": True, "f": False, "false": False}


def _unbounded(where: Any) -> bool:
    """True when a WHERE clause (None: absent) selects every row, judged from the parse tree."""
    if where is None:
        return True
    return _always_true(where)


def _node(expr: Any) -> tuple[str, dict[str, Any]] | None:
    """A parse-tree node ``{"Kind": {fields}}`` as (kind, fields); None for anything else."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    (kind, node), = expr.items()
    return (kind, node) if isinstance(node, dict) else None


_ROWS = object()  # a clause that names a column: its value depends on the row


def _constant_value(expr: Any) -> Any:
    """The value of a clause that names no column (True, False, None for NULL, or _UNKNOWN),
    the same for every row; ``_ROWS`` when it names one."""
    return _ROWS if _has_row_reference(expr) else _evaluate(expr)


def _always_true(expr: Any) -> bool:
    found = _node(expr)
    if found is None:
        return False
    kind, node = found
    if kind == "BoolExpr":
        args = node.get("args") or []
        if node.get("boolop") == "OR_EXPR":
            return any(_always_true(a) for a in args) or _covers_null(args) \
                or _complementary(args)
        if node.get("boolop") == "AND_EXPR":
            return bool(args) and all(_always_true(a) for a in args)
        if node.get("boolop") == "NOT_EXPR":
            return len(args) == 1 and _never_true(args[0])
    if kind == "A_Expr" and node.get("kind") == "AEXPR_BETWEEN":
        bounds = node.get("rexpr")
        bounds = bounds.get("List", {}).get("items") if isinstance(bounds, dict) else bounds
        left = node.get("lexpr")
        if isinstance(bounds, list) and len(bounds) == 2 and left is not None \
                and all(_same(left, b) for b in bounds):
            return True  # x BETWEEN x AND x
    if kind == "A_Expr" and node.get("kind") in ("AEXPR_OP", "AEXPR_LIKE", "AEXPR_ILIKE",
                                                 "AEXPR_NOT_DISTINCT"):
        op = _operator(node)
        left, right = node.get("lexpr"), node.get("rexpr")
        if (op in _TRUE_WHEN_EQUAL or node.get("kind") == "AEXPR_NOT_DISTINCT") \
                and left is not None and _same(left, right):
            return True
        if node.get("kind") in ("AEXPR_LIKE", "AEXPR_ILIKE") and op in ("~~", "~~*"):
            pattern = _constant(right)
            if isinstance(pattern, str) and pattern and set(pattern) == {"%"}:
                return True
    value = _constant_value(expr)  # row-independent: true, or unknown (fail closed)
    return value is not _ROWS and (value is _UNKNOWN or bool(value))


_FALSE_WHEN_EQUAL = {"<>", "!=", "<", ">"}  # x <> x, x < x: false (or NULL) for every row


def _never_true(expr: Any) -> bool:
    """True when ``expr`` holds for no row (``x <> x``, ``1 = 0``, ``x = 1 AND x <> 1``), so
    ``NOT expr`` holds for every row whose values are not NULL. Fails closed like
    ``_always_true``: a row-independent expression of unknown value counts."""
    found = _node(expr)
    if found is None:
        return False
    kind, node = found
    if kind == "BoolExpr":
        args = node.get("args") or []
        if node.get("boolop") == "AND_EXPR":
            return any(_never_true(a) for a in args) or _complementary(args)
        if node.get("boolop") == "OR_EXPR":
            return bool(args) and all(_never_true(a) for a in args)
        if node.get("boolop") == "NOT_EXPR":
            return len(args) == 1 and _always_true(args[0])
    if kind == "A_Expr":
        left, right = node.get("lexpr"), node.get("rexpr")
        same = left is not None and _same(left, right)
        if same and (node.get("kind") == "AEXPR_DISTINCT" or
                     (node.get("kind") == "AEXPR_OP" and _operator(node) in _FALSE_WHEN_EQUAL)):
            return True
    value = _constant_value(expr)  # row-independent: false, NULL, or unknown (fail closed)
    return value is not _ROWS and (value is _UNKNOWN or not value)


def _operator(node: dict[str, Any]) -> str | None:
    names = node.get("name") or []
    return _sval(names[-1]) if names else None


def _covers_null(args: list[Any]) -> bool:
    """``x IS NULL OR x IS NOT NULL``."""
    seen: dict[str, set[str]] = {}
    for arg in args:
        tested = _null_test(arg)
        if tested is not None:
            key = json.dumps(_without_location(tested[0]), sort_keys=True)
            seen.setdefault(key, set()).add(tested[1])
    return any(len(kinds) == 2 for kinds in seen.values())


def _null_test(expr: Any) -> tuple[Any, str] | None:
    """(x, IS_NULL or IS_NOT_NULL) for ``x IS [NOT] NULL`` and ``x IS [NOT] DISTINCT FROM
    NULL`` (the same tests, spelt another way)."""
    if not isinstance(expr, dict):
        return None
    test = expr.get("NullTest")
    if isinstance(test, dict):
        return test.get("arg"), str(test.get("nulltesttype"))
    node = expr.get("A_Expr")
    if isinstance(node, dict) and node.get("kind") in ("AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT"):
        for value, other in ((node.get("rexpr"), node.get("lexpr")),
                             (node.get("lexpr"), node.get("rexpr"))):
            if _constant(value) is None:  # compared with NULL
                kind = "IS_NOT_NULL" if node["kind"] == "AEXPR_DISTINCT" else "IS_NULL"
                return other, kind
    return None


_COMPLEMENT = {"=": {"<>", "!="}, "<>": {"="}, "!=": {"="}, "<": {">="}, ">=": {"<"},
               ">": {"<="}, "<=": {">"}}


def _complementary(args: list[Any]) -> bool:
    """``x = 0 OR x <> 0``, ``x < 5 OR x >= 5``: every row whose x is not NULL."""
    seen: dict[str, set[str]] = {}
    for arg in args:
        negated = False
        inner = arg.get("BoolExpr") if isinstance(arg, dict) else None
        if isinstance(inner, dict) and inner.get("boolop") == "NOT_EXPR" \
                and len(inner.get("args") or []) == 1:
            arg, negated = inner["args"][0], True  # NOT (x = 0) is x <> 0
        node = arg.get("A_Expr") if isinstance(arg, dict) else None
        if not isinstance(node, dict) or node.get("kind") != "AEXPR_OP":
            continue
        op = _operator(node)
        if op not in _COMPLEMENT:
            continue
        if negated:
            op = min(_COMPLEMENT[op])
        key = json.dumps([_without_location(node.get("lexpr")),
                          _without_location(node.get("rexpr"))], sort_keys=True)
        if seen.get(key, set()) & _COMPLEMENT[op]:
            return True
        seen.setdefault(key, set()).add(op)
    return False


def _same(a: Any, b: Any) -> bool:
    return _without_location(a) == _without_location(b)


def _without_location(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_location(v) for k, v in node.items() if "location" not in k}
    if isinstance(node, list):
        return [_without_location(v) for v in node]
    return node


def _has_row_reference(expr: Any) -> bool:
    """A column reference (anywhere, subqueries included) or ``CURRENT OF`` makes a clause
    row-dependent. Functions of constants (``now()``, ``random() < 2``, ``length('a') = 1``),
    subqueries that name no column (``(SELECT true)``, ``EXISTS (SELECT 1)``) and parameters
    (``WHERE $1``) do not: they are the same for every row, so they select all rows or none."""
    for key, value in _pairs(expr):
        if key in ("ColumnRef", "CurrentOfExpr"):
            return True
        if key == "SQLValueFunction" and isinstance(value, dict) and \
                value.get("op") in ("SVFOP_USER", "SVFOP_CURRENT_USER"):
            return True  # `WHERE user = 'x'`: a column named user in MySQL
    return False


def _pairs(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of every object in a decoded parse tree, walked iteratively (trees
    can be deep), each value looked into after it is yielded."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                yield key, value
                stack.append(value)


def _constant(expr: Any) -> Any:
    """The Python value of a constant node, or _UNKNOWN."""
    if not isinstance(expr, dict):
        return _UNKNOWN
    if "TypeCast" in expr:
        return _constant(expr["TypeCast"].get("arg"))
    const = expr.get("A_Const")
    if not isinstance(const, dict):
        return _UNKNOWN
    if const.get("isnull"):
        return None
    for key, field in (("ival", "ival"), ("fval", "fval"), ("sval", "sval"), ("boolval", "boolval"),
                       ("bsval", "bsval")):
        if key in const:
            value = const[key].get(field, 0 if key == "ival" else False if key == "boolval" else "")
            if key == "fval":
                try:
                    return float(value)
                except ValueError:
                    return _UNKNOWN
            return value
    return _UNKNOWN


def _evaluate(expr: Any) -> Any:
    """Evaluate a row-independent expression: True/False/None (NULL), or _UNKNOWN."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return _UNKNOWN
    (kind, node), = expr.items()
    if kind in ("A_Const", "TypeCast"):
        value = _constant(expr)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value != 0  # MySQL's WHERE 1
        if isinstance(value, str):
            return _BOOL_WORDS.get(value.lower(), _UNKNOWN)
        return value
    if kind == "BoolExpr":
        values = [_evaluate(a) for a in node.get("args") or []]
        if node.get("boolop") == "NOT_EXPR":
            return _UNKNOWN if not values or values[0] is _UNKNOWN else (
                None if values[0] is None else not values[0])
        if any(v is _UNKNOWN for v in values):
            return _UNKNOWN
        if node.get("boolop") == "AND_EXPR":
            return all(values)
        return any(values)
    if kind == "A_Expr" and node.get("kind") == "AEXPR_OP":
        left, right = _constant(node.get("lexpr")), _constant(node.get("rexpr"))
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        if left is None or right is None:
            return None
        if isinstance(left, str) != isinstance(right, str):
            try:
                left, right = float(left), float(right)
            except (TypeError, ValueError):
                return _UNKNOWN
        compare = {"=": lambda a, b: a == b, "<>": lambda a, b: a != b, "!=": lambda a, b: a != b,
                   "<": lambda a, b: a < b, ">": lambda a, b: a > b,
                   "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}.get(_operator(node) or "")
        if compare is None:
            return _UNKNOWN
        try:
            return bool(compare(left, right))
        except TypeError:
            return _UNKNOWN
    return _UNKNOWN


def is_destructive_sql(text: str) -> bool:
    """True when ``text`` holds a SQL statement that drops, truncates or rewrites a whole table.

    Never raises: text that would take more than the budgets to judge, or that trips an
    unexpected error in the parser, is judged destructive.
    """
    if not isinstance(text, str) or not text:
        return False
    low = text.lower()
    # (plain tests, not a generator over _KEYWORDS: this runs for every value of a call)
    if not ("drop" in low or "delete" in low or "update" in low or "truncate" in low or
            "alter" in low):
        return False
    try:
        return _Judge().text(text)
    except (_OverBudget, RecursionError, MemoryError):
        return True
    except Exception:
        return True
