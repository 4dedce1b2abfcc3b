"""`python examples/mcp_proxy.py` runs offline, as a user would run it, and tells the story
its docstring promises: read allowed, .env blocked, a large write pending, approved, run
once."""

from __future__ import annotations

from pathlib import Path

from example_runs import run_example


def test_the_mcp_proxy_example_runs_offline(tmp_path: Path) -> None:
    said, decisions, escalations = run_example("mcp_proxy.py", tmp_path)
    lines = said.splitlines()
    assert lines[0] == "connected to secure-filesystem-server through staso mcp proxy"
    assert "1. read notes.txt: Ship the release on Friday." in said
    assert "blocked by rule 'builtin/protected_paths'" in said and ".env exists: False" in said
    assert "needs a person's approval (rule 'big_write'" in said
    assert "manager approved esc_" in said and "Successfully wrote to" in said
    assert "(2009 bytes on disk)" in said and "once more: needs a person" in said
    actions = sorted((d["tool_name"], d["action"]) for d in decisions)
    assert actions == sorted([("read_text_file", "allow"), ("write_file", "block"),
                              ("write_file", "escalate"), ("write_file", "allow"),
                              ("write_file", "escalate")])
    [approved] = [e for e in escalations if e.status == "approved"]
    assert approved.resolved_by == "manager" and approved.consumed_at is not None
