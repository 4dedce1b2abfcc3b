"""What makes two calls the same call (the escalation they share, the approval one lets
through), and what a condition sees of a call: numbers are numbers (``50000`` is
``50000.0``), ``1`` is not ``true``, and no call is judged on another call's values."""

from __future__ import annotations

from pathlib import Path

import pytest

import staso as st
from conftest import REFUND_POLICY
from staso.jsonutil import fingerprint
from staso.policy.cel_env import same_value

POLICY = REFUND_POLICY + """  - name: flagged
    when: has(context.flag) && context.flag == true
    action: block
"""


@pytest.fixture
def client(tmp_path: Path):
    st.init(home=str(tmp_path), policy=POLICY, agent_name="bot")
    yield st
    st.shutdown()


def test_numbers_are_one_value_and_booleans_stay_apart() -> None:
    same = fingerprint("bot", "pay", {"amount": 50000, "lines": [{"n": 2}]})
    assert fingerprint("bot", "pay", {"amount": 50000.0, "lines": [{"n": 2.0}]}) == same
    assert fingerprint("bot", "pay", {"amount": 50000.5, "lines": [{"n": 2}]}) != same
    assert fingerprint("bot", "pay", {"on": 1}) != fingerprint("bot", "pay", {"on": True})
    assert fingerprint("bot", "pay", {"on": 0}) != fingerprint("bot", "pay", {"on": False})
    assert fingerprint("bot", "pay", {"n": -0.0}) == fingerprint("bot", "pay", {"n": 0})
    # any text hashes, a lone surrogate (a non-UTF-8 file name) included
    assert fingerprint("bot", "pay", {"path": "\udcff"}) != fingerprint("bot", "pay", {})


def test_an_approval_of_50000_lets_50000_point_0_through(client) -> None:
    first = st.guard("process_refund", {"amount": 50000})
    assert first.action == "escalate"
    again = st.guard("process_refund", {"amount": 50000.0})
    assert (again.action, again.escalation_id) == ("escalate", first.escalation_id)
    st.approve(first.escalation_id, by="alice")
    assert st.guard("process_refund", {"amount": 50000.0}).action == "allow"
    # single use: the approval is gone
    assert st.guard("process_refund", {"amount": 50000}).action == "escalate"


def test_a_condition_never_sees_the_previous_calls_context(client) -> None:
    # 1 == True in Python; in CEL 1 == true is no match: the second call must be judged
    # on its own true, not on the 1 a per-thread cache remembers
    assert st.guard("search", {"q": "x"}, context={"flag": 1}).action == "allow"
    assert st.guard("search", {"q": "x"}, context={"flag": True}).action == "block"
    assert st.guard("search", {"q": "x"}, context={"flag": 1.0}).action == "allow"
    assert st.guard("search", {"q": "x"}, context={"flag": True}).action == "block"
    assert st.guard("search", {"q": "x"}, context={"flag": [True]}).action == "allow"


@pytest.mark.parametrize(("a", "b", "same"), [
    (1, 1, True), (1, True, False), (1, 1.0, False), ({"f": 1}, {"f": True}, False),
    ([1, {"x": "y"}], [1, {"x": "y"}], True), ([0], [False], False),
    ({"a": 1}, {"a": 1, "b": 2}, False), ("1", 1, False), (None, None, True),
])
def test_same_value_is_equal_and_of_the_same_types(a, b, same) -> None:
    assert same_value(a, b) is same
