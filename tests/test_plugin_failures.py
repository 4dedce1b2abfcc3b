"""A plugin on the guard's path that breaks never lets a call through: one that raises,
answers with an unknown action or something that is not a verdict, or hangs past the
call's timeout makes the call block with the plugin named, even with ``fail_closed=False``;
embedded and on a real ``staso serve``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import staso as st
from conftest import logged, stop_server
from servers import PluginServer, install_plugin
from tally import tally

PLUGIN = '''
import threading

import staso

release = threading.Event()


class Odd(BaseException):
    pass


@staso.hookimpl
def staso_cel_functions():
    def slow_check(value):
        if value == "hang":
            release.wait(30)
        return True
    return {"slow_check": slow_check}


@staso.hookimpl
def staso_after_guard(request, result):
    if request.tool_name == "after_boom":
        raise RuntimeError("after hook broke")
    if request.tool_name == "after_slow":
        release.wait(30)


@staso.hookimpl
def staso_escalation_created(escalation):
    if escalation.tool_name == "escalate_slow":
        release.wait(30)


@staso.hookimpl
def staso_before_guard(request):
    if request.tool_name == "before_boom":
        raise RuntimeError("before hook broke")


@staso.hookimpl
def staso_evaluate(request):
    name = request.tool_name
    if name == "boom":
        raise KeyError("missing config")
    if name == "nuke":
        return {"action": "nuke", "reason": "typo in a plugin"}
    if name == "shrug":
        return "looks fine"
    if name == "odd_mode":
        return {"action": "allow", "mode": "maybe"}
    if name == "hang":
        release.wait(30)
    if name == "strict":
        return {"action": "block", "reason": "plugin says no", "rule_name": "strict_rule"}
    if name == "no_action":
        return {"reason": "forgot the action"}
    if name == "loud":
        return {"action": "block", "severity": "apocalyptic" * 3}
    if name == "rewrite":
        return {"action": "modify", "reason": "would rewrite, but carries no input"}
    if name == "quit":
        raise SystemExit(3)
    if name == "odd_exit":
        raise Odd("not an Exception")
    return None
'''
BROKEN = {  # tool -> what the blocking reason must say
    "boom": "raised KeyError", "nuke": "unknown action 'nuke'",
    "shrug": "answered a str", "odd_mode": "mode='maybe'",
    "before_boom": "raised RuntimeError: before hook broke",
    "no_action": "without an 'action'", "loud": "unknown severity",
    "rewrite": "answered modify", "quit": "raised SystemExit",
    "odd_exit": "raised Odd",
}


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    install_plugin(tmp_path / "site", "staso_breaks", "breaks", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    import importlib

    module = importlib.import_module("staso_breaks")  # (one module for every test)
    module.release.clear()
    st.init(home=tmp_path, agent_name="bot", plugins=[module])
    yield module
    module.release.set()
    st.shutdown()


@pytest.mark.parametrize("tool", sorted(BROKEN))
def test_a_broken_plugin_blocks_the_call_and_is_named(embedded: object, tool: str) -> None:
    result = st.guard(tool, {"q": 1}, fail_closed=False)
    assert result.action == "block", result
    assert result.rule_name == "plugin:breaks", result
    assert "'breaks'" in result.reason and BROKEN[tool] in result.reason, result.reason
    st.get_client().transport.flush()
    assert logged()[0]["action"] == "block"  # recorded as it was answered


def test_a_working_plugin_still_decides(embedded: object) -> None:
    assert st.guard("calm", {"q": 1}).action == "allow"
    strict = st.guard("strict", {"q": 1})
    assert (strict.action, strict.rule_name) == ("block", "strict_rule")


def test_a_hung_plugin_blocks_at_the_timeout_even_failing_open(embedded: object) -> None:
    result = st.guard("hang", {"q": 1}, timeout=0.5, fail_closed=False)
    assert result.action == "block", result
    assert result.rule_name == "plugin:breaks"
    assert "did not answer within the 0.5 s timeout" in result.reason
    # a slow check that is not a plugin's keeps the caller's choice (nothing to name)
    embedded.release.set()  # type: ignore[attr-defined]
    assert st.guard("calm", {"q": 2}, timeout=5, fail_closed=False).action == "allow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginServer]:
    srv = PluginServer.started(tmp_path_factory.mktemp("serve-breaks"), "staso_breaks",
                               "breaks", PLUGIN)
    yield srv
    stop_server(srv)


@pytest.mark.parametrize("tool", sorted(BROKEN))
def test_a_broken_plugin_blocks_remote_calls_too(server: PluginServer, tool: str) -> None:
    answer = server.request("POST", "/v1/guard", json={"tool_name": tool, "tool_input": {}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["action"], body["rule_name"]) == ("block", "plugin:breaks"), body
    assert BROKEN[tool] in body["reason"]
    st.init(api_key=server.keys["agent"], base_url=server.url, agent_name="agent-1")
    try:
        assert st.guard(tool, {"n": 1}, fail_closed=False).action == "block"
    finally:
        st.shutdown()


def test_two_threads_are_each_judged_on_their_own_call(embedded: object) -> None:
    answers: dict[str, str] = {}

    def call(tool: str) -> None:
        answers[tool] = st.guard(tool, {"q": 1}, fail_closed=False).action

    threads = [threading.Thread(target=call, args=(t,)) for t in ("boom", "calm", "nuke")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == {"boom": "block", "calm": "allow", "nuke": "block"}


def test_a_hung_plugin_blocks_remote_calls_at_the_timeout_even_failing_open(
        server: PluginServer) -> None:
    """The server learns the caller's timeout from the request and answers a block naming
    the hung plugin before it passes: the caller never falls back to allow."""
    st.init(api_key=server.keys["agent"], base_url=server.url, agent_name="agent-1")
    try:
        result = st.guard("hang", {"q": 1}, timeout=3.0, fail_closed=False)
        assert (result.action, result.rule_name) == ("block", "plugin:breaks"), result
        assert "did not answer within the 3 s timeout" in result.reason
        assert st.guard("calm", {"q": 2}, timeout=5.0, fail_closed=False).action == "allow"
    finally:
        st.shutdown()
    engine = sa.create_engine(server.database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT action, rule_name FROM decisions WHERE id = :i"),
                           {"i": result.decision_id}).one()
    engine.dispose()
    assert tuple(row) == ("block", "plugin:breaks")  # the log says what the caller was told
    tally("a plugin hangs, remote call with fail_closed=False", sent=2, failed_closed=1,
          recorded=1, allowed_by_failure=0, lost=0)


def test_hung_plugins_holding_every_thread_block_later_calls_too(embedded: object) -> None:
    """Hung calls hold the evaluation threads; a later call, even of another tool, times
    out in the queue behind them and is blocked naming the plugin, never allowed."""
    workers = st.get_client().transport.workers
    hung = [threading.Thread(target=st.guard, args=("hang", {"n": i}),
                             kwargs={"timeout": 0.5, "fail_closed": False})
            for i in range(workers)]
    for thread in hung:
        thread.start()
    for thread in hung:
        thread.join(30)
    queued = st.guard("calm", {"q": 3}, timeout=0.5, fail_closed=False)
    assert (queued.action, queued.rule_name) == ("block", "plugin:breaks"), queued
    assert "did not answer" in queued.reason


CEL_POLICY = """version: 1
rules:
  - name: checked
    tools: [cel_tool]
    when: slow_check(tool_input.q)
    action: block
  - name: stop_after
    tools: [after_boom, after_slow]
    action: block
  - name: ask
    tools: [escalate_slow]
    action: escalate
"""


def test_hooks_after_the_decision_never_hold_or_break_it(embedded: object,
                                                         tmp_path: Path) -> None:
    """staso_after_guard and the escalation hooks cannot change a decision: one that raises
    or hangs changes nothing and holds nobody; a CEL function of a plugin that hangs is
    blamed on the plugin."""
    module = embedded
    st.init(home=tmp_path, agent_name="bot", plugins=[module], policy=CEL_POLICY)
    for tool in ("after_boom", "after_slow"):
        started = time.monotonic()
        assert st.guard(tool, {}, timeout=5).action == "block"
        assert time.monotonic() - started < 4
    started = time.monotonic()
    assert st.guard("escalate_slow", {}, timeout=5).action == "escalate"
    assert time.monotonic() - started < 4
    hung = st.guard("cel_tool", {"q": "hang"}, timeout=0.5, fail_closed=False)
    assert (hung.action, hung.rule_name) == ("block", "plugin:breaks"), hung
    assert st.guard("cel_tool", {"q": "fine"}, timeout=5).action == "block"  # rule matched


def test_hooks_after_the_decision_never_hold_a_server(server: PluginServer) -> None:
    started = time.monotonic()
    slow = server.request("POST", "/v1/guard", json={"tool_name": "after_slow",
                                                     "tool_input": {}, "timeout": 5})
    assert slow.status_code == 200 and time.monotonic() - started < 4
    boom = server.request("POST", "/v1/guard", json={"tool_name": "after_boom",
                                                     "tool_input": {}, "timeout": 5})
    assert boom.status_code == 200, boom.text
    started = time.monotonic()
    assert server.request("GET", "/healthz", role=None).status_code == 200
    assert time.monotonic() - started < 2  # the hung hook holds no event loop
