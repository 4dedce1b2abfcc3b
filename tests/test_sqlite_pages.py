"""SQLite files staso creates use 16 KiB pages (a decision row is ~1.5 KB: fewer WAL frames
and checkpoints per batch); a file made before keeps its pages and works as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import staso as st
from staso.store.dialects import PAGE_SIZE


def _page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def _guard_and_read_back(home: Path) -> None:
    st.init(agent_name="pages", home=str(home))
    try:
        decision_id = st.guard("lookup_order", {"order": "o_1"}).decision_id
        st.get_client().flush()
        assert st.get_client().get_decision(decision_id)["tool_name"] == "lookup_order"
    finally:
        st.shutdown()


def test_a_new_store_has_16_kib_pages(tmp_path: Path) -> None:
    _guard_and_read_back(tmp_path)
    assert _page_size(tmp_path / "staso.db") == PAGE_SIZE == 16384


def test_a_store_made_with_other_pages_keeps_them_and_works(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "staso.db") as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE earlier (x)")  # the file exists, with 4 KiB pages
    _guard_and_read_back(tmp_path)
    _guard_and_read_back(tmp_path)  # and again, on the store it made
    assert _page_size(tmp_path / "staso.db") == 4096
