"""The built-in packs against the labelled real-world corpus in tests/corpus/ (the same
samples and scoring as benchmarks/detectors.py): per pack, recall on attacks >= 98% and no
benign near-miss flagged; every whole tool call gets the action a reviewer expects under the
built-in default policy. A failure lists each miss, so it says what to fix."""

from __future__ import annotations

import pytest

from corpus.labelled import (
    PACKS,
    RECALL_TARGET,
    load_calls,
    load_pack,
    run_calls,
    score_pack,
    short,
)


@pytest.mark.parametrize("pack", PACKS)
def test_corpus_is_labelled_and_sourced(pack: str) -> None:
    samples = load_pack(pack)
    labels = [s["label"] for s in samples]
    assert set(labels) == {"attack", "benign"}
    assert len(samples) >= 80 and min(labels.count("attack"), labels.count("benign")) >= 35
    assert all(s["text"] and s["source"] for s in samples)
    texts = [s["text"] for s in samples]
    assert len(set(texts)) == len(texts), "a sample is listed twice"


@pytest.mark.parametrize("pack", PACKS)
def test_pack_recall(pack: str) -> None:
    score = score_pack(pack)
    missed = [short(s["text"]) for s in score.misses]
    assert score.recall >= RECALL_TARGET, (
        f"{pack}: recall {score.recall:.1%} < {RECALL_TARGET:.0%}; missed {missed}")
    assert not score.errors, [(short(s["text"]), e) for s, e in score.errors]


@pytest.mark.parametrize("pack", PACKS)
def test_pack_has_no_false_positives(pack: str) -> None:
    score = score_pack(pack)
    assert not score.false_positives, (
        f"{pack}: {len(score.false_positives)} of {score.benign} benign samples flagged: "
        f"{[short(s['text']) for s in score.false_positives]}")


def test_whole_calls_get_the_expected_action() -> None:
    assert len(load_calls()) >= 30
    wrong = [f"{o.call['tool_name']} {short(str(o.call['tool_input']), 70)}: expected "
             f"{o.call['expect']}, got {o.why}" for o in run_calls() if not o.ok]
    assert not wrong, "\n".join(wrong)
