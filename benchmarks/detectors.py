"""The built-in packs against the labelled corpus in tests/corpus/: per pack, the number of
samples, recall on attacks and the false-positive rate on benign near-misses, with every miss
and false positive listed so a developer can act on it; then the whole tool calls through
embedded ``staso.guard`` with the built-in default policy.

Run: .venv/bin/python benchmarks/detectors.py [--pack NAME]

Exits non-zero if any pack's recall is under 98%, any benign sample is flagged, or any whole
call gets an action other than the one expected.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# the corpus and its scoring live beside the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from corpus.labelled import (
    PACKS,
    RECALL_TARGET,
    default_pii_detectors,
    run_calls,
    score_pack,
    short,
)


def report_pack(pack: str) -> bool:
    score = score_pack(pack)
    verdict = "PASS" if score.passed else "MISS"
    print(f"detector corpus {pack}: {score.attacks + score.benign} samples "
          f"({score.attacks} attack, {score.benign} benign) | recall {score.recall:.1%} "
          f"(target >= {RECALL_TARGET:.0%}) | false positives {len(score.false_positives)}"
          f" = {score.fp_rate:.1%} (target 0) | {verdict}")
    for sample in score.misses:
        print(f"    missed attack: {short(sample['text'])}  [{sample['source']}]")
    for sample in score.false_positives:
        print(f"    false positive: {short(sample['text'])}  [{sample['source']}]")
    for sample, error in score.errors:
        print(f"    raised {short(error, 60)} on: {short(sample['text'])}")
    return score.passed


def report_calls() -> bool:
    outcomes = run_calls()
    wrong = [o for o in outcomes if not o.ok]
    print(f"default policy, whole tool calls: {len(outcomes) - len(wrong)} of {len(outcomes)} "
          f"get the expected action | {'PASS' if not wrong else 'MISS'}")
    for o in wrong:
        call = o.call
        print(f"    {call['tool_name']} {short(str(call['tool_input']), 70)}: expected "
              f"{call['expect']}, got {o.why}")
    return not wrong


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pack", choices=PACKS, action="append",
                        help="only these packs (repeatable); skips the whole calls")
    args = parser.parse_args()
    print(f"builtin/pii judged with the default policy's detectors: "
          f"{', '.join(default_pii_detectors())}")
    ok = all([report_pack(pack) for pack in args.pack or PACKS])
    if not args.pack:
        ok = report_calls() and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
