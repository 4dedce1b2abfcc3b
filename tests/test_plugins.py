"""Plugins through the ``staso`` entry-point group (docs/plugins.md)."""

from __future__ import annotations

import sys
import textwrap

import staso as st

PLUGIN = '''
import staso

events = []

@staso.hookimpl
def staso_cel_functions():
    return {"is_vip": lambda customer: customer.startswith("vip_")}

@staso.hookimpl
def staso_evaluate(request):
    if request.tool_name == "launch_missiles":
        return staso.RuleResult(rule_name="testplugin/no_missiles", passed=False,
                                action="block", reason="not today", severity="critical")
    if request.tool_name == "lookup":
        return staso.RuleResult(rule_name="testplugin/lenient", passed=False, action="allow")
    return None

@staso.hookimpl
def staso_after_guard(request, result):
    events.append(("after", request.tool_name, result.action))

@staso.hookimpl
def staso_escalation_created(escalation):
    events.append(("created", escalation.id))

@staso.hookimpl
def staso_escalation_resolved(escalation):
    events.append(("resolved", escalation.id, escalation.status))
'''


def test_entry_point_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "staso_testplugin-0.1.dist-info").mkdir(parents=True)
    (site / "staso_testplugin.py").write_text(PLUGIN)
    (site / "staso_testplugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: staso-testplugin\nVersion: 0.1\n")
    (site / "staso_testplugin-0.1.dist-info" / "entry_points.txt").write_text(
        textwrap.dedent("[staso]\ntestplugin = staso_testplugin\n"))
    monkeypatch.syspath_prepend(str(site))
    client = st.init(home=tmp_path, policy="""version: 1
rules:
  - name: vip_refunds_escalate
    when: is_vip(tool_input.customer)
    action: escalate
  - name: no_lookups_of_secrets
    tools: [lookup]
    when: tool_input.q == "secrets"
    action: block
""")
    try:
        plugin = sys.modules["staso_testplugin"]
        assert "testplugin" in [n for n, _ in client.transport.service.pm.list_name_plugin()]
        r = st.guard("launch_missiles", {})
        assert (r.action, r.rule_name, r.reason) == ("block", "testplugin/no_missiles",
                                                     "not today")
        # a plugin can tighten but never loosen: the policy's block stands
        assert st.guard("lookup", {"q": "secrets"}).action == "block"
        r = st.guard("refund", {"customer": "vip_7"})
        assert r.action == "escalate"
        st.deny(r.escalation_id, by="m")
        client.flush()  # notification hooks run on a thread of their own, in order
        assert ("created", r.escalation_id) in plugin.events
        assert ("resolved", r.escalation_id, "denied") in plugin.events
        assert ("after", "launch_missiles", "block") in plugin.events
    finally:
        st.shutdown()


def test_builtins_registered_through_hooks(tmp_path):
    client = st.init(home=tmp_path)
    try:
        names = [n for n, _ in client.transport.service.pm.list_name_plugin()]
        assert {"staso.builtins.rule_packs", "staso.builtins.cel_functions",
                "staso.builtins.notifiers"} <= set(names)
    finally:
        st.shutdown()


def test_broken_entry_point_plugin_refuses_to_start(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "staso_broken-0.1.dist-info").mkdir(parents=True)
    (site / "staso_broken.py").write_text("raise ImportError('needs libfoo')\n")
    (site / "staso_broken-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: staso-broken\nVersion: 0.1\n")
    (site / "staso_broken-0.1.dist-info" / "entry_points.txt").write_text(
        "[staso]\nbroken = staso_broken\n")
    monkeypatch.syspath_prepend(str(site))
    import pytest

    with pytest.raises(st.StasoError, match=r"could not load a plugin .*needs libfoo"):
        st.init(home=tmp_path)


def test_a_timeout_is_announced_once_however_often_it_is_read(tmp_path):
    seen = []

    class Recorder:
        @st.hookimpl
        def staso_escalation_resolved(self, escalation):
            seen.append((escalation.id, escalation.status))

    st.init(agent_name="a", home=tmp_path, plugins=[Recorder()])
    try:
        result = st.guard("process_refund", {"amount": 5000}, wait_for_escalation=True,
                          escalation_timeout=0.2, escalation_poll_interval=0.05)
        assert result.reason == "Escalation poll timeout"
        service = st.get_client().transport.service
        for _ in range(3):  # later readers (a server's GET, the CLI) record nothing new
            assert service.expire(result.escalation_id).status == "timeout"
        service.flush()
    finally:
        st.shutdown()
    assert seen == [(result.escalation_id, "timeout")]
