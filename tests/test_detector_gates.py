"""The built-in packs' gates (``detectors/gates.py``) never rule out a text their detector
fires on, and the engine decides exactly as it did without them.

The texts: the labelled corpus, every string literal of the detector and hostile-input
tests (the evasions earlier attacks found), each also cut short and upper-cased, and texts
generated from the characters and words the detectors look for."""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.labelled import PACKS, load_pack
from engine_pairs import with_and_without
from staso.builtins.rule_packs import staso_rule_packs
from staso.detectors import gates
from staso.detectors.gates import GATED_BELOW, Gate, joined
from staso.detectors.pii import forget
from staso.hookspecs import hookimpl
from staso.jsonutil import inspected_texts
from staso.plugins import make_plugin_manager
from staso.policy import Engine
from staso.policy.discovery import collect_functions, load_any_policy
from staso.policy.model import RulePack

HERE = Path(__file__).parent
ATTACK_TESTS = ("test_detect_shell.py", "test_detect_sql.py", "test_detect_paths.py",
                "test_detect_pii.py", "test_detectors.py", "test_hostile_input.py",
                "test_pii_prechecks.py", "test_corpus.py", "test_redaction_locations.py")
PACK_GATES = {"builtin/dangerous_shell": gates.SHELL, "builtin/destructive_sql": gates.SQL,
              "builtin/protected_paths": gates.PATHS, "builtin/pii": gates.PII}


def _packs() -> dict[str, RulePack]:
    return {pack.name: pack for pack in staso_rule_packs()}


def _literals() -> Iterator[str]:
    for name in ATTACK_TESTS:
        tree = ast.parse((HERE / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node.value


def _texts() -> list[str]:
    found: set[str] = set()
    for pack in PACKS:
        for row in load_pack(pack):
            found.update(inspected_texts({"v": row["text"]}))
    for line in (HERE / "corpus" / "tool_calls.jsonl").read_text().splitlines():
        if line.strip():
            found.update(inspected_texts(json.loads(line)["tool_input"]))
    found.update(_literals())
    more = set()
    for text in found:  # cut to the gated length, and in other cases
        for variant in (text[:GATED_BELOW - 1], text[-(GATED_BELOW - 1):], text.upper(),
                        text.swapcase(), text.title()):
            more.add(variant)
    return sorted(t for t in found | more if type(t) is str and t.isascii()
                  and len(t) < GATED_BELOW)


TEXTS = _texts()


def test_there_are_enough_texts_and_firing_ones_among_them() -> None:
    packs = _packs()
    firing = {name: sum(bool(packs[name].detect(t)) for t in TEXTS) for name in PACK_GATES}
    assert len(TEXTS) > 2000
    assert all(count >= 100 for count in firing.values()), firing


@pytest.mark.parametrize("pack_name", sorted(PACK_GATES))
def test_no_known_text_a_detector_fires_on_is_ruled_out(pack_name: str) -> None:
    detect = _packs()[pack_name].detect
    assert detect.may_fire is PACK_GATES[pack_name]  # type: ignore[attr-defined]
    may_fire = joined([PACK_GATES[pack_name]])
    missed = [t for t in TEXTS if not may_fire(t) and detect(t)]
    assert missed == []


ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789 -_/.:@~%$'\"\\|`<>(){};&#=+,*?!\n\t"
WORDS = sorted({w for gate in PACK_GATES.values() for w in gate.words}
               | {"rm", "-rf", "/etc/passwd", "chmod 777", "table", "users", "from", "where",
                  "ssn", "123-45-6789", "4111 1111 1111 1111", "+1 415 555 0100", "DE89",
                  "3704 0044 0532 0130 00", "AKIA", "ghp_", "password=", "| sh", "curl",
                  "format c:", "del /s", "Remove-Item", "~/.ssh", ".env", "id_rsa"})
texts = st.lists(st.one_of(st.text(ALPHABET, max_size=12), st.sampled_from(WORDS)),
                 max_size=12).map("".join).filter(lambda t: len(t) < GATED_BELOW)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_no_generated_text_a_detector_fires_on_is_ruled_out(text: str) -> None:
    packs = _packs()
    for name, gate in PACK_GATES.items():
        if not joined([gate])(text):
            assert not packs[name].detect(text), (name, text)


POLICY = """version: 1
rules:
  - use: builtin/dangerous_shell
  - use: builtin/destructive_sql
  - use: builtin/protected_paths
  - use: builtin/pii
"""


def _engines() -> tuple[Engine, Engine]:
    gated, plain, plan = with_and_without(POLICY, "tool", lambda plan: dataclasses.replace(
        plan, gate=None, live=tuple((i, r, False, t) for i, r, _, t in plan.live)))
    assert plan.gate is not None and all(g for _, _, g, _ in plan.live)
    return gated, plain


def _same_decisions(gated: Engine, plain: Engine, tool_input: dict) -> None:
    forget()  # (the PII memo must not answer for the other engine)
    a = gated.evaluate("tool", tool_input)
    forget()
    b = plain.evaluate("tool", tool_input)
    assert (a.action, a.rule_name, a.modified_input, a.results) == \
        (b.action, b.rule_name, b.modified_input, b.results), tool_input


def test_the_engine_decides_every_corpus_call_as_without_gates() -> None:
    gated, plain = _engines()
    for line in (HERE / "corpus" / "tool_calls.jsonl").read_text().splitlines():
        if line.strip():
            _same_decisions(gated, plain, json.loads(line)["tool_input"])
    for text in TEXTS[::7]:
        _same_decisions(gated, plain, {"a": text, "b": "plain words", "n": 12})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["q", "path", "note", "password", "cmd"]),
                       st.one_of(texts, st.integers(), st.text(max_size=20)), max_size=4))
def test_the_engine_decides_generated_calls_as_without_gates(tool_input: dict) -> None:
    gated, plain = _engines()
    _same_decisions(gated, plain, tool_input)


CLICK = "\u01c3"  # a letter that looks like "!": not ASCII, so never ruled out


def test_a_text_the_gates_rule_out_reaches_no_gated_detector() -> None:
    """A plugin's pack with a gate of its own is skipped the same way; a long text, a
    non-ASCII one and one the gate lets through reach it."""
    seen: list[str] = []

    class Bang:
        may_fire = Gate(chars="!")

        def __call__(self, text: str) -> bool:
            seen.append(text)
            return "!" in text or CLICK in text

    class Plugin:
        @hookimpl
        def staso_rule_packs(self) -> list[RulePack]:
            return [RulePack("plugin/bang", "bangs", Bang(), action="block")]

    pm = make_plugin_manager([Plugin()])
    policy = load_any_policy("version: 1\nrules:\n  - use: plugin/bang\n", pm)
    engine = Engine(policy, {})
    assert engine.evaluate("t", {"a": "calm words"}).action == "allow" and seen == []
    assert engine.evaluate("t", {"a": CLICK}).action == "block" and seen == [CLICK]
    long = "x" * GATED_BELOW
    assert engine.evaluate("t", {"a": long}).action == "allow" and seen[-1] == long
    assert engine.evaluate("t", {"a": "hey!"}).action == "block"


def test_gates_take_lower_case_words_only() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        Gate(words=("DROP",))
    may_fire: Callable[[str], bool] = joined([Gate(words=("drop",))])
    assert may_fire("DrOp it") and not may_fire("dr op")


def test_every_detector_that_runs_shares_the_call_s_work_budget() -> None:
    """The evaluation's budget is opened only when a detector or a function may run; each
    one that does run finds it open (a gated pack on a text let through, a plugin's pack
    without a gate, a condition calling a function)."""
    from staso.detectors import shell_parse

    opened: list[bool] = []

    def spy(inner: Callable[[str], bool]) -> Callable[[str], bool]:
        def detect(text: str) -> bool:
            opened.append(shell_parse._EVALUATION.get() is not None)
            return inner(text)
        return detect

    class Plugin:
        @hookimpl
        def staso_rule_packs(self) -> list[RulePack]:
            return [RulePack("plugin/ungated", "no gate", spy(lambda text: False))]

        @hookimpl
        def staso_cel_functions(self) -> dict[str, Callable[..., bool]]:
            return {"looks_odd": spy(lambda text: False)}

    pm = make_plugin_manager([Plugin()])
    for rules, calls in (
            ("  - use: builtin/dangerous_shell\n", {"a": "rm -rf /"}),
            ("  - use: builtin/dangerous_shell\n  - use: plugin/ungated\n", {"a": "calm"}),
            ("  - use: builtin/pii\n  - name: odd\n    when: looks_odd(tool_input.a)\n"
             "    action: block\n",
             {"a": "calm"})):
        policy = load_any_policy("version: 1\nrules:\n" + rules, pm)
        for rule in policy.rules:
            if rule.detect is not None and hasattr(rule.detect, "_one"):
                rule.detect._one = spy(rule.detect._one)  # type: ignore[union-attr]
        opened.clear()
        Engine(policy, collect_functions(pm)).evaluate("t", calls)
        assert opened and all(opened), rules
    assert shell_parse._EVALUATION.get() is None


def test_the_joined_test_is_made_once_for_a_set_of_gates() -> None:
    """Tool names can be model-made: a new one's plan must not build the trie again."""
    assert joined([gates.SHELL, gates.SQL]) is joined([gates.SQL, gates.SHELL])
    gated, _ = _engines()
    assert gated._plan_for("tool_a").gate is gated._plan_for("tool_b").gate
