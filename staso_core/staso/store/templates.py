"""The ``rule_result_templates`` table (``Store`` inherits ``TemplateRows``): templates are
written with the decision rows that use them, in the same transaction, and read back to
expand a row's compact results (``result_templates.py`` says why they exist)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from ..result_templates import ResultTemplate, expand, is_compact
from .rows import SqlRows
from .schema import rule_result_templates

_KEPT = 4096  # templates remembered per store (one per policy and tool's rule set)


class TemplateRows(SqlRows):
    _mark: str

    def _templates(self) -> tuple[set[str], dict[str, list[dict[str, Any]]]]:
        """Keys known to be in this database, and templates read back (made on first use:
        ``Store`` has no ``__init__`` hook for its parts)."""
        state = self.__dict__.get("_template_state")
        if state is None:
            state = self.__dict__.setdefault("_template_state", (set(), {}))
        return state

    def _write_templates(self, conn: sa.Connection, used: dict[str, ResultTemplate]) -> list[str]:
        """Insert the templates these rows use that this store has not written; returns
        their keys, to remember once the transaction commits (``_written_templates``)."""
        written, _ = self._templates()
        # in key order: two writers inserting the same new keys in opposite orders would
        # each wait for the other's uncommitted one (PostgreSQL: a deadlock, a refused batch)
        new = sorted((t for key, t in used.items() if key not in written),
                     key=lambda t: t.key)
        if new:
            now = time.time()
            mark = self._mark
            conn.exec_driver_sql(
                f"INSERT INTO rule_result_templates (key, results, created_at) VALUES "
                f"({mark}, {mark}, {mark}) ON CONFLICT DO NOTHING",
                [(t.key, t.text, now) for t in new])
        return [t.key for t in new]

    def _written_templates(self, keys: list[str]) -> None:
        written, _ = self._templates()
        if len(written) + len(keys) > _KEPT:
            written.clear()  # (writing one again does nothing: ON CONFLICT DO NOTHING)
        written.update(keys)

    def _expanded(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` with compact rule results put back together (``expand``)."""
        compact = [row for row in rows if is_compact(row.get("results"))]
        if not compact:
            return rows
        _, known = self._templates()
        keys = {row["results"]["template"] for row in compact}
        found = {key: known[key] for key in keys if key in known}  # (another thread may
        missing = keys - found.keys()                                # clear ``known``)
        if missing:
            if len(known) + len(missing) > _KEPT:
                known.clear()
            table = rule_result_templates.c
            for key, text in conn.execute(sa.select(table.key, table.results)
                                          .where(table.key.in_(sorted(missing)))):
                found[key] = known[key] = json.loads(text)
        for row in compact:
            row["results"] = expand(row["results"], found.get)
        return rows

