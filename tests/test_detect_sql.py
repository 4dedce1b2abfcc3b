"""The destructive-SQL detector: parsed, not grepped; evasions caught, prose left alone; linear."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staso.detectors.sql import PARSE_BUDGET, is_destructive_sql

DESTRUCTIVE = [
    "DROP TABLE users", "drop database prod;", "DROP SCHEMA s CASCADE", "DROP VIEW v",
    "DROP INDEX i", "DROP USER bob", "DROP ROLE bob", "DROP FUNCTION f", "DROP TABLE IF EXISTS t",
    "DROP OWNED BY bob", "DROP TABLESPACE ts", "DROP MATERIALIZED VIEW mv",
    "TRUNCATE orders", "TRUNCATE TABLE a, b RESTART IDENTITY",
    "DELETE FROM users", "UPDATE accounts SET balance = 0", 'UPDATE "t" SET x=1',
    "ALTER TABLE users DROP COLUMN email", "ALTER TABLE t DROP CONSTRAINT c",
    # tautological WHERE, judged from the tree's constants
    "DELETE FROM users WHERE 1=1", "DELETE FROM users WHERE TRUE",
    "DELETE FROM users WHERE 'a'='a'",
    "DELETE FROM users WHERE id = id", "DELETE FROM users WHERE id = 5 OR 1 = 1",
    "UPDATE t SET a = 1 WHERE NOT FALSE", "DELETE FROM t WHERE 2 > 1",
    "DELETE FROM t WHERE '1'::int = 1", "DELETE FROM t WHERE name LIKE '%'",
    "DELETE FROM t WHERE a IS NULL OR a IS NOT NULL", "UPDATE users SET a = 1 WHERE 1",
    # hidden inside other statements
    "WITH d AS (DELETE FROM t RETURNING *) SELECT 1", "EXPLAIN ANALYZE DELETE FROM t",
    "EXPLAIN (ANALYZE) UPDATE t SET a = 1", "COPY (DELETE FROM t RETURNING *) TO STDOUT",
    "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
    "DO $$ BEGIN DROP TABLE x; END $$", "DO $$ BEGIN DELETE FROM t; END $$",
    "DO $$ BEGIN EXECUTE 'DROP TABLE ' || quote_ident(t); END $$",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM t'",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN TRUNCATE t; END $f$",
    # comments, casing, whitespace, several statements
    "delete from users -- WHERE id = 1", "/* cleanup */ DELETE FROM sessions;",
    "DeLeTe\n\tFROM/**/users", "SELECT 1; DROP TABLE x", "select 1;\n\n  drop   table  x ;",
    "/* a /* nested */ comment */ DROP TABLE x",
    # a destructive statement next to text that does not parse
    "DROP TABLE users; ((((garbage", "garbage here; DELETE FROM t; more garbage (",
    "/* /* */ */ DROP TABLE x; ((((garbage", "DELETE FROM t; /* never closed",
    "SELECT 'it''s'; TRUNCATE t; select 'oops",
    # MySQL / T-SQL spellings
    "DROP TABLE `users`", "DELETE FROM users LIMIT 10", "DELETE FROM users ORDER BY id LIMIT 10",
    "DELETE TOP (10) FROM [dbo].[users]", "TRUNCATE TABLE [x]", "DELETE users WHERE 1=1",
    "UPDATE LOW_PRIORITY `t` SET a = 1", "drop table x\nGO\n", "DELETE FROM t # all of it",
]

SAFE = [
    "DELETE FROM users WHERE id = 1", "UPDATE accounts SET balance = 0 WHERE id = 7",
    "UPDATE t SET a = 1 WHERE id = 1 AND b = 2", "DELETE FROM t WHERE id IN (1, 2)",
    "DELETE FROM t WHERE 1 = 0", "DELETE FROM sessions WHERE expires_at < now()",
    "UPDATE t SET a = (SELECT max(x) FROM s WHERE s.k = t.k) WHERE t.id = $1",
    "DELETE FROM users WHERE id = 1 LIMIT 1", "DELETE FROM t WHERE CURRENT OF c",
    "SELECT * FROM drop_log", "SELECT 'DROP TABLE x' AS s", "INSERT INTO t VALUES (1)",
    "-- DROP TABLE users\nSELECT 1", "SELECT 1 /* drop table x */", "SELECT $$DROP TABLE x$$",
    "EXPLAIN DELETE FROM t", "EXPLAIN (ANALYZE false) DELETE FROM t",
    "INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1 WHERE t.id = 1",
    "DO $$ BEGIN DELETE FROM t WHERE id = 1; END $$",
    "CREATE TABLE updates (id int, dropped bool)", "SELECT update_at, deleted FROM t",
    # prose, commit messages, search queries, code
    "Delete my account please", "Truncate the summary to 100 words", "update the ticket",
    "We will drop table support next quarter.", "Drop support for py3.8",
    "Update README; drop the old badge; alter the intro.", "fix: delete stale cache entries",
    "how to delete a row in sql", "sql update without where clause", "alter ego",
    "Please DELETE my data; I no longer use the service.", "git commit -m 'Update deps'",
    "def delete(self, key): del self.store[key]", "rm -rf build && make update",
    "curl -X DELETE https://api.example.com/items/7", "UPDATE: the meeting moved to 3pm",
    "Truncate long lines; drop trailing whitespace; update tests.",
]


# red-team review of issue 13: evasions that were allowed
EVASIONS = [
    "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE ' || 'x';"
    " END $$",
    "DROP TABLE users PURGE", "DROP TABLE users CASCADE CONSTRAINTS",
    "USE prod\nGO\nDROP TABLE users\nGO", "EXEC('DROP TABLE users')",
    "EXECUTE IMMEDIATE 'DROP TABLE users'", "EXEC sp_executesql N'DROP TABLE users'",
    "PREPARE s FROM 'DELETE FROM users'",
    "DELETE FROM users WHERE (SELECT true)", "DELETE FROM users WHERE now() IS NOT NULL",
    "DELETE FROM users WHERE random() < 2", "DELETE FROM users WHERE length('a')=1",
    "DELETE FROM users WHERE EXISTS (SELECT 1)", "DELETE FROM users WHERE $1",
    "DELETE FROM users WHERE ? = ?", "DELETE FROM users WHERE id != 0 OR id = 0",
    "UPDATE t SET a = 1 WHERE x < 5 OR x >= 5",
    "{'q': 'DROP TABLE users'}", "q: DROP TABLE users", '{"q": "DROP TABLE users"} trailing',
    "DELETE t1, t2 FROM t1 INNER JOIN t2 INNER JOIN t3 WHERE t1.id=t2.id OR 1=1;",
    "DELETE t1, t2 FROM t1, t2",
]

# benign text that parses as SQL: UI labels and sentences (see the module docstring)
LABELS = ["Delete from cart", "Delete from favorites", "DELETE FROM the queue", "Truncate text",
          "Truncate Logs", "Delete From Saved Items", "Delete from my list"]

STILL_SQL = ["DELETE FROM users", "delete from cart", "TRUNCATE orders", "truncate logs",
             "Delete from users;", "DELETE FROM cart", "Delete FROM users",
             "Delete from users where 1=1", "TRUNCATE TABLE logs"]

SAFE_WHERE = [
    "DELETE FROM t WHERE id IN (SELECT id FROM s WHERE s.x = t.y)",
    "DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.id = t.id)",
    "DELETE FROM t WHERE id = (SELECT max(id) FROM s)", "DELETE FROM t WHERE lower(name) = 'x'",
    "DELETE FROM t WHERE id = ?", "DELETE FROM t WHERE id = $1",
    "DELETE FROM t WHERE deleted_at IS NOT NULL", "DELETE FROM t WHERE id = 0 OR id = 1",
    "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", "EXEC('SELECT 1')",
    "Note: drop the old badge", "a: 'update the ticket'", "SELECT 'x::drop table'",
]


@pytest.mark.parametrize("sql", EVASIONS + STILL_SQL)
def test_red_team_evasions_are_caught(sql: str) -> None:
    assert is_destructive_sql(sql)


@pytest.mark.parametrize("text", LABELS + SAFE_WHERE)
def test_labels_and_row_dependent_wheres_are_not_destructive(text: str) -> None:
    assert not is_destructive_sql(text)


@pytest.mark.parametrize("sql", DESTRUCTIVE)
def test_destructive(sql: str) -> None:
    assert is_destructive_sql(sql)


@pytest.mark.parametrize("text", SAFE)
def test_not_destructive(text: str) -> None:
    assert not is_destructive_sql(text)


@pytest.mark.parametrize("text", ["", "   ", ";;;", "(" * 20_000, "'" * 5, "$$", "/*"])
def test_degenerate_text_is_not_destructive(text: str) -> None:
    assert not is_destructive_sql(text)


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_never_raises(text: str) -> None:
    assert isinstance(is_destructive_sql(text), bool)


_WORDS = st.sampled_from(["DELETE", "FROM", "t", "WHERE", "1=1", "UPDATE", "SET", "a=1", "DROP",
                          "TABLE", ";", "'", '"', "$$", "/*", "*/", "--", "\n", "(", ")", "`",
                          "[", "]", "TOP", "LIMIT", "10", "WITH", "AS", "EXPLAIN", "ANALYZE"])


@given(st.lists(_WORDS, max_size=40))
@settings(max_examples=300, deadline=None)
def test_never_raises_on_sql_shaped_text(words: list[str]) -> None:
    assert isinstance(is_destructive_sql(" ".join(words)), bool)


@given(st.lists(_WORDS, max_size=30))
@settings(max_examples=200, deadline=None)
def test_a_destructive_statement_is_found_after_anything(words: list[str]) -> None:
    """Whatever comes before, a ``;``-separated DROP on its own is caught (unless inside a literal
    or comment that the prefix leaves open)."""
    prefix = " ".join(words)
    text = prefix + ";\nDROP TABLE users"
    if any(opener in prefix for opener in ("'", '"', "$$", "/*", "--")):
        return
    assert is_destructive_sql(text)


def _fill(unit: str, size: int = 1 << 20) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _statements(make: object, size: int = 1 << 20) -> str:
    out, total, i = [], 0, 0
    while total < size - 100:
        s = make(i)  # type: ignore[operator]
        out.append(s)
        total += len(s) + 1
        i += 1
    return ";".join(out)


CRAFTED = {
    "delete words": _fill("delete "),
    "drop x;": _fill("drop x;"),
    "updates with where": _statements(lambda i: f"UPDATE t SET a=1 WHERE id={i}"),
    "explain deletes": _statements(lambda i: f"EXPLAIN DELETE FROM t WHERE id={i}"),
    "one huge SET list": "UPDATE t SET " + ",".join(f"a{i}=1" for i in range(100_000))
    + " WHERE id=1",
    "delete using many": "DELETE FROM t USING " + ",".join(f"t{i}" for i in range(150_000))
    + " WHERE t.id=1",
    "parens": "(" * (1 << 20),
    "update parens": "UPDATE " + "(" * (1 << 20),
    "quotes": _fill("'; drop "),
    "dollar tags": "".join(f"$a{i}$ delete " for i in range(80_000)),
    "unterminated comment": "SELECT 1; /*" + "delete " * 140_000,
    "comments": _fill("/* drop */ -- delete\n"),
    "prose": _fill("Please delete my account and update the ticket; then drop it. "),
    "selects of drop_log": _statements(lambda i: f"SELECT * FROM drop_log WHERE id={i}"),
    "or chain": "DELETE FROM t WHERE " + " OR ".join(f"id={i}" for i in range(90_000)),
    # operator-character runs the PostgreSQL lexer re-reads from every cut point (quadratic)
    "nested comment opens": "delete " + "/*" * 524_278,
    "comment opens, no keyword gate": "drop " + _fill("/*x"),
    "comment closes": "delete " + _fill("*/"),
    "opens and closes": "delete " + _fill("/*/**/"),
    "plus run": "delete from t where a " + _fill("+"),
    "plus minus run": "update t set a = 1 " + _fill("+-"),
    "minus spaced": "delete from t where a " + _fill("- "),
    "E strings": "delete " + _fill("E'\\'"),
    "dollar quotes": "delete " + _fill("$a$ "),
    "long identifier": "delete from " + "a" * (1 << 20),
    "unary minus": "delete from t where " + _fill("-") + "1",
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_megabyte_inputs_are_judged_quickly(name: str) -> None:
    is_destructive_sql("DROP TABLE warm_up")
    text = CRAFTED[name]
    start = time.perf_counter()
    is_destructive_sql(text)
    assert time.perf_counter() - start < 1.0, name


@pytest.mark.parametrize("unit", ["/*", "*/", "/*/**/", "+", "+-", "/*x"])
def test_operator_runs_are_linear(unit: str) -> None:
    """libpg_query re-reads a run of operator characters from each cut point: ``delete /*/*/*``
    of 1 MiB took 14 s. The detector bounds that work (beyond it: judged destructive)."""
    is_destructive_sql("DROP TABLE warm_up")
    for size in (32 << 10, 1 << 20):
        text = "delete " + _fill(unit, size)
        start = time.perf_counter()
        is_destructive_sql(text)
        assert time.perf_counter() - start < 0.2, (unit, size)


def test_short_operator_runs_are_still_judged() -> None:
    assert is_destructive_sql("/*/*/* nested */ */ */ DROP TABLE x")
    assert not is_destructive_sql("/*/*/* nested */ */ */ DELETE FROM t WHERE id = 1")
    banner = "/" + "*" * 78 + "/\n-- " + "-" * 76 + "\n"
    assert not is_destructive_sql(banner * 200 + "DELETE FROM t WHERE id = 1")
    assert is_destructive_sql(banner * 200 + "DELETE FROM t")


def test_prose_megabyte_is_not_destructive() -> None:
    assert not is_destructive_sql(CRAFTED["prose"])
    assert not is_destructive_sql(CRAFTED["selects of drop_log"])
    assert not is_destructive_sql(CRAFTED["comments"])


def test_sql_within_the_budget_is_judged_not_failed_closed() -> None:
    benign = _statements(lambda i: f"UPDATE t SET a=1 WHERE id={i}", PARSE_BUDGET - 1000)
    assert not is_destructive_sql(benign)
    assert is_destructive_sql(benign + ";UPDATE t SET a=1 WHERE 1=1")
    assert is_destructive_sql(benign + ";DELETE FROM t")


def test_too_much_sql_to_judge_fails_closed() -> None:
    """Beyond the parse budget the detector gives up by blocking, never by allowing."""
    assert is_destructive_sql(CRAFTED["updates with where"])
    assert is_destructive_sql(CRAFTED["or chain"])


def test_a_destructive_statement_after_a_megabyte_of_prose() -> None:
    assert is_destructive_sql(CRAFTED["prose"] + ";\nDROP TABLE users")


def test_importing_staso_does_not_import_pglast() -> None:
    import subprocess
    import sys

    code = "import sys, staso; print('pglast' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("sql", "destructive"), [
    ("DELETE FROM users WHERE id = %s OR 1=1", True),
    ("DELETE FROM users WHERE id = %(id)s OR 1=1", True),
    ("DELETE FROM users WHERE id = :id OR 1=1", True),
    ("UPDATE users SET role='admin' WHERE name = %s OR 1=1", True),
    ("DROP TABLE users \\g", True),
    ("DROP TABLE users ON CLUSTER c", True),
    ("DROP TABLE users SYNC", True),
    ("DELETE FROM users WHERE id = %s", False),
    ("DELETE FROM users WHERE id = :id", False),
    ("UPDATE users SET name = %s WHERE id = %s", False),
    ("SELECT * FROM t WHERE a::int = 1", False),
    ("Please sync the drop folder", False),
])
def test_driver_placeholders_and_client_spellings(sql: str, destructive: bool) -> None:
    """Statements as drivers and clients send them (second outside review): %s, %(name)s,
    :name parameters, psql's \\g, ClickHouse's ON CLUSTER and SYNC."""
    assert is_destructive_sql(sql) is destructive
