"""Tool-name globs match case-insensitively and across naming styles: a policy's
``*refund*`` catches the tool however an agent or framework spells it."""

from __future__ import annotations

from typing import Any

import pytest

from staso.errors import PolicyError
from staso.plugins import make_plugin_manager
from staso.policy.discovery import collect_functions, load_any_policy
from staso.policy.engine import Engine
from staso.policy.model import normalize_tool_name, tool_matcher


def engine(policy: Any = None, **kwargs: Any) -> Engine:
    pm = make_plugin_manager()
    return Engine(load_any_policy(policy, pm, **kwargs), collect_functions(pm))


@pytest.mark.parametrize(("name", "normal"), [
    ("processRefund", "process_refund"), ("ProcessRefund", "process_refund"),
    ("process-refund", "process_refund"), ("PROCESS_REFUND", "process_refund"),
    ("process.refund", "process_refund"), ("process  refund", "process_refund"),
    ("HTTPServerCall", "http_server_call"), ("getS3Object", "get_s3_object"),
    ("*Refund*", "*refund*"), ("", "")])
def test_one_naming_style(name: str, normal: str) -> None:
    assert normalize_tool_name(name) == normal


@pytest.mark.parametrize("tool", ["processRefund", "ProcessRefund", "process-refund",
                                  "PROCESS_REFUND", "refund", "Refund_Order", "issue.refund"])
def test_a_refund_glob_catches_every_spelling(tool: str) -> None:
    assert tool_matcher(["*refund*"])(tool)
    assert tool_matcher(["*Refund*"])(tool)


def test_globs_still_discriminate() -> None:
    matches = tool_matcher(["process_refund", "send_*"])
    assert matches("processRefund") and matches("SendEmail") and matches("send-sms")
    assert not matches("process_refunds") and not matches("resend_email")
    assert not matches("process") and not tool_matcher([])("anything")


@pytest.mark.parametrize("tool", ["processRefund", "WireTransfer", "createPayment",
                                  "PAYOUT_VENDOR", "charge-card", "wire.transfer"])
def test_the_default_payment_rule_escalates_every_spelling(tool: str) -> None:
    result = engine().evaluate(tool, {"amount": 50_000})
    assert result.action == "escalate" and result.rule_name == "high_value_payment"
    assert engine().evaluate(tool, {"amount": 50}).action == "allow"


def test_the_per_tool_cache_keeps_each_spelling() -> None:
    guard = engine("""
version: 1
rules:
  - name: no_deletes
    tools: ["delete*"]
    action: block
""")
    assert guard.evaluate("DeleteUser", {}).action == "block"
    assert guard.evaluate("delete-user", {}).action == "block"
    assert guard.evaluate("undelete_user", {}).action == "allow"
    assert set(guard._by_tool) == {"DeleteUser", "delete-user", "undelete_user"}


def test_the_tool_catalogue_check_uses_the_same_matching() -> None:
    policy = """
version: 1
tools: [processRefund, send_email]
rules:
  - name: refunds
    tools: [process_refund]
    action: escalate
"""
    pm = make_plugin_manager()
    assert load_any_policy(policy, pm).rules[0].tools == ("process_refund",)
    with pytest.raises(PolicyError, match="matches no known tool"):
        load_any_policy(policy.replace("[process_refund]", "[issue_refund]"), pm)
