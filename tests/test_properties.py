"""Property-based tests (issue 7: bad input and attack). Tool inputs, policies and conditions
are attacker- or user-written text: whatever they hold, staso answers with a decision or a
clear error of its own, never a crash, and redaction leaves nothing it can still find."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from staso.detectors import (
    PII_DETECTORS,
    find_pii,
    has_pii,
    is_dangerous_shell,
    is_destructive_sql,
    is_protected_path,
)
from staso.detectors.pii import redact_pii
from staso.errors import PolicyError
from staso.models import ACTIONS
from staso.plugins import make_plugin_manager
from staso.policy import load_policy_text
from staso.policy.discovery import DEFAULT_POLICY, collect_functions, collect_packs
from staso.policy.engine import Engine

PM = make_plugin_manager(())
PACKS, FUNCTIONS = collect_packs(PM), collect_functions(PM)
DEFAULT = load_policy_text(DEFAULT_POLICY.read_text(), str(DEFAULT_POLICY), packs=PACKS,
                           functions=FUNCTIONS)
ENGINE = Engine(DEFAULT, FUNCTIONS)
FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st_.recursive(
    st_.none() | st_.booleans() | st_.integers() | st_.floats(allow_nan=False,
                                                             allow_infinity=False)
    | st_.text(max_size=80),
    lambda inner: st_.lists(inner, max_size=4) | st_.dictionaries(st_.text(max_size=10),
                                                                  inner, max_size=4),
    max_leaves=20)
tool_inputs = st_.dictionaries(st_.text(max_size=12), json_values, max_size=6)
tool_names = st_.sampled_from(["refund", "wire_transfer", "run_sql", "shell", "send_email",
                               "read_file"]) | st_.text(max_size=20)


@FAST
@given(tool_names, tool_inputs, st_.dictionaries(st_.text(max_size=8), json_values,
                                                max_size=3))
def test_any_json_call_gets_a_decision(tool_name: str, tool_input: dict[str, Any],
                                       context: dict[str, Any]) -> None:
    result = ENGINE.evaluate(tool_name, tool_input, context)
    assert result.action in ACTIONS
    if result.action == "modify":
        assert isinstance(result.modified_input, dict)


@FAST
@given(st_.text(max_size=300))
def test_detectors_never_raise(text: str) -> None:
    for detector in (is_dangerous_shell, is_destructive_sql, is_protected_path):
        assert detector(text) in (True, False)
    for name, start, end in find_pii(text):
        assert 0 <= start < end <= len(text) and name


pii_pieces = st_.sampled_from(["123-45-6789", "4111 1111 1111 1111", "4242424242424242",
                               "sk-live-abcdefghijklmnopqrstuvwx", "AKIAABCDEFGHIJKLMNOP"])


@FAST
@given(st_.lists(st_.text(alphabet=string.ascii_letters + " .,:;-_/", max_size=20)
                 | pii_pieces, max_size=8))
def test_redaction_leaves_nothing_it_can_find(parts: list[str]) -> None:
    text = " ".join(parts)
    redacted, _ = redact_pii(text)
    assert find_pii(redacted) == []


@FAST
@given(st_.text(max_size=400))
def test_any_policy_text_loads_or_names_its_problem(text: str) -> None:
    try:
        load_policy_text(text, "fuzz.yaml", packs=PACKS, functions=FUNCTIONS)
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml")


@FAST
@given(st_.text(alphabet=string.printable, max_size=80))
def test_any_condition_compiles_or_names_its_problem(condition: str) -> None:
    text = ("version: 1\nrules:\n  - name: fuzzed\n    action: block\n    when: "
            + json.dumps(condition) + "\n")
    try:
        policy = load_policy_text(text, "fuzz.yaml", packs=PACKS, functions=FUNCTIONS)
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    result = Engine(policy, FUNCTIONS).evaluate("t", {"amount": 5, "name": "x"}, {})
    assert result.action in ACTIONS


# Issue 13: every detector answers any text without raising, in time linear in its length.
DETECTOR_FUNCS: dict[str, Callable[[str], Any]] = {
    "is_destructive_sql": is_destructive_sql, "is_dangerous_shell": is_dangerous_shell,
    "is_protected_path": is_protected_path, "find_pii": find_pii,
    "redact_pii": redact_pii,
}


def _one_pii_detector(name: str) -> Callable[[str], Any]:
    return lambda text: has_pii(text, (name,))


DETECTOR_FUNCS.update({f"has_pii[{name}]": _one_pii_detector(name) for name in PII_DETECTORS})
hostile_units = st_.sampled_from([
    ",a/", "curl ", "(", "$(", "`", "1 ", "1-", "a@", "%2F", "%25", "../", "-----BEGIN ",
    "'", '"', "\\", "4242 ", "123-45-6789 ", "DE89 ", "AKIA", "sudo ", "DROP TABLE t; ",
    "DELETE FROM t WHERE id IN (1, ", '{"q": "', "bash -c '"]) | st_.text(min_size=1, max_size=24)


@FAST
@given(st_.text(max_size=300))
def test_every_detector_answers_any_text(text: str) -> None:
    for name, detector in DETECTOR_FUNCS.items():
        try:
            detector(text)
        except Exception as exc:  # the message names the detector and the input
            raise AssertionError(f"{name} raised {exc!r} on {text!r}") from exc


def _cpu_seconds(func: Any, text: str) -> float:
    """Least process CPU time over three runs: a busy machine only ever adds time."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        func(text)
        best = min(best, time.process_time() - start)
    return best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st_.lists(hostile_units, min_size=1, max_size=3))
def test_detectors_run_in_linear_time(units: list[str]) -> None:
    """The same text repeated k and 4k times (k making ~4,000 characters): 4x the input may
    cost at most 12x the time plus 50 ms, generous for noise yet failed by anything quadratic."""
    unit = "".join(units)
    k = max(4000 // len(unit), 1)
    small, large = unit * k, unit * (4 * k)
    for name, detector in DETECTOR_FUNCS.items():
        t_small, t_large = _cpu_seconds(detector, small), _cpu_seconds(detector, large)
        assert t_large <= 12 * t_small + 0.05, (
            f"{name}: {len(small):,} chars {t_small * 1000:.1f} ms, {len(large):,} chars "
            f"{t_large * 1000:.1f} ms on {unit!r} repeated")
