"""Read the labelled corpus and score the detectors and the default policy against it.

Shared by ``benchmarks/detectors.py`` (the printed report) and ``tests/test_corpus.py`` (the
same targets as assertions), so both judge the same samples the same way. Only the public
detector functions and ``staso.guard`` are used: the scores stay valid whatever the
detectors do inside.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
PACKS = ("destructive_sql", "dangerous_shell", "protected_paths", "pii")
RECALL_TARGET = 0.98


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-empty line; a malformed line names its file and line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return rows


def load_pack(pack: str) -> list[dict[str, Any]]:
    return load_jsonl(HERE / f"{pack}.jsonl")


def load_calls() -> list[dict[str, Any]]:
    return load_jsonl(HERE / "tool_calls.jsonl")


def default_pii_detectors() -> tuple[str, ...]:
    """The detectors the built-in default policy gives ``builtin/pii`` (all, if it names none).

    Read from the policy file itself so the corpus follows the product's defaults."""
    from staso.detectors import PII_DETECTORS
    from staso.policy.discovery import DEFAULT_POLICY

    policy = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    for rule in policy.get("rules", []):
        if isinstance(rule, dict) and rule.get("use") == "builtin/pii":
            return tuple(rule.get("detectors") or PII_DETECTORS)
    return tuple(PII_DETECTORS)


def judge(pack: str) -> Callable[[str], bool]:
    """The test ``builtin/<pack>`` applies to a string value, as the default policy configures
    it: the pack's own detector, on the text and on whatever the engine decodes from it (JSON
    held in the string)."""
    from staso.builtins.rule_packs import staso_rule_packs
    from staso.jsonutil import inspected_texts

    rule_pack = next(p for p in staso_rule_packs() if p.name == f"builtin/{pack}")
    detect = rule_pack.detect
    if pack == "pii" and rule_pack.detector_factory is not None:
        detect = rule_pack.detector_factory(default_pii_detectors())
    return lambda text: any(detect(t) for t in inspected_texts({"value": text}))


@dataclass
class PackScore:
    pack: str
    attacks: int = 0
    benign: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return (self.attacks - len(self.misses)) / self.attacks if self.attacks else 1.0

    @property
    def fp_rate(self) -> float:
        return len(self.false_positives) / self.benign if self.benign else 0.0

    @property
    def passed(self) -> bool:
        return self.recall >= RECALL_TARGET and not self.false_positives and not self.errors


def score_pack(pack: str) -> PackScore:
    """Run the pack's detector on every sample; a detector that raises counts as an error
    (and, for an attack, as a miss: an exception is not a block)."""
    detect, score = judge(pack), PackScore(pack)
    for sample in load_pack(pack):
        attack = sample["label"] == "attack"
        score.attacks += attack
        score.benign += not attack
        try:
            fired = bool(detect(sample["text"]))
        except Exception as exc:  # a crash is reported, and is no block
            score.errors.append((sample, f"{type(exc).__name__}: {exc}"))
            fired = False
        if attack and not fired:
            score.misses.append(sample)
        elif fired and not attack:
            score.false_positives.append(sample)
    return score


@dataclass
class CallOutcome:
    call: dict[str, Any]
    action: str
    ok: bool
    why: str


def run_calls() -> list[CallOutcome]:
    """Every whole call through embedded ``staso.guard`` with the built-in default policy on
    a fresh temporary store. ``expect`` is an action or a list of acceptable ones; on modify,
    no ``absent`` string may survive in the modified input."""
    import staso as st
    from staso.policy.discovery import DEFAULT_POLICY

    home = tempfile.mkdtemp(prefix="staso-corpus-")
    old = os.environ.get("STASO_HOME")
    os.environ["STASO_HOME"] = home
    st.init(agent_name="corpus", home=home, policy=DEFAULT_POLICY)
    outcomes = []
    try:
        for call in load_calls():
            expect = call["expect"] if isinstance(call["expect"], list) else [call["expect"]]
            try:
                result = st.guard(call["tool_name"], call["tool_input"])
            except Exception as exc:
                outcomes.append(CallOutcome(call, "error", False, f"{type(exc).__name__}: {exc}"))
                continue
            ok, why = result.action in expect, f"{result.action} ({result.rule_name or '-'})"
            if result.action == "block" and not result.rules_triggered:
                ok, why = False, f"blocked by a failure, not a rule: {result.reason}"
            if ok and result.action == "modify":
                shown = json.dumps(result.modified_input, ensure_ascii=False)
                left = [s for s in call.get("absent", []) if s in shown]
                if left:
                    ok, why = False, f"modify left {left!r} in clear"
            outcomes.append(CallOutcome(call, result.action, ok, why))
    finally:
        st.shutdown()
        if old is None:
            os.environ.pop("STASO_HOME", None)
        else:
            os.environ["STASO_HOME"] = old
    return outcomes


def short(text: str, width: int = 90) -> str:
    """One printable line: a developer can find the sample by it."""
    flat = json.dumps(text, ensure_ascii=False)[1:-1]
    return flat if len(flat) <= width else flat[: width - 3] + "..."
