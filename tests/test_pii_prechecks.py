"""The PII finders run on a short text only when it passes their pre-checks (``pii._PRECHECKS``,
``pii._NUMBERS_SHAPE``, ``pii._SEVEN_DIGITS``, ``secrets_scan.may_hold_secret``), each meant
as a necessary condition of a finding. Random and corpus texts must give exactly the findings
the plain finders give without any pre-check or gate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.labelled import HERE, load_jsonl
from staso.detectors import gates, pii, secrets_scan

NAMES = tuple(pii.PII_DETECTORS)

# Near-misses and hits of every finder, and the characters the pre-checks reason about:
# Unicode digits (full-width, Arabic-Indic), no-break spaces, the Kelvin sign and dotted I
# (which lower() maps to ASCII), every separator the finders accept.
_PIECES = [
    "536-90-4399", "536 90 4399", "536.90.4399", "536\u201390\u20134399", "536904399", "SSN: ",
    "ssn ", "Social Security Number is ", "\u017fsn ", "4111 1111 1111 1111", "4111-1111-1111",
    "4111111111111111", "3782 822463 10005", "CC", "0.", "\uff14\uff11\uff11\uff11",
    "DE89 3704 0044 0532 0130 00", "gb82west12345698765432", "GB82", "de89", "DE\xa089",
    "DE-89", "NO93 8601 1117 947", "DE89-3704-0044-0532-0130-00", "DE\u202f89\u20073704",
    "-0044", "0532 01", "AB12-CDEF-GHIJ", "a@b.co", "x.y@example.org", "@", "+1 (555) 123-4567",
    "(555) 123-4567", "555-123-4567", "+12025550143", "555 123", " 4567", "sk-", "ghp_",
    "AKIA", "IOSFODNN7EXAMPLE", "BEGIN", "-----BEGIN RSA PRIVATE KEY-----", "PuTTY", "-us",
    "12345678:", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_", "password=", "Password: ", "api_key",
    "token", "Bearer ", "hunter2hunter2", "://user:p4ss@host", "mysql -pS3cret", "<pw>",
    "</pw>", "Basic dXNlcjpwYXNz", "eyJ", "xox", "do", "\u212aey", "\u0130", "K", "k", "i",
    "0", "1", "12", "123", "1234", "\u0663", "\u0663\u0663\u0663\u0663", "-", " ", ".", "_",
    "\t", "\n", "(", ")", "+", ":", "/", "#", "\u2013", "\xa0", "\u2007", "\u202f", "\u2212",
    "a", "Z", "\xe9", "refund #", "c_17", "+1234567", "123456", "refund #12345",
]
texts = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=12).map("".join),
    st.text(alphabet="0123456789 -.()+@:_aZkKsS\u0663\uff15\xa0", max_size=40),
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


CORPUS = sorted({s for path in sorted(HERE.glob("*.jsonl")) for row in load_jsonl(path)
                 for s in _strings(row) if s and len(s) < pii.PRECHECK_BELOW})


def _plain(text: str, names: tuple[str, ...]) -> list[pii.Span]:
    """What ``_search`` finds with no pre-check: every finder run."""
    saved, pii.PRECHECK_BELOW = pii.PRECHECK_BELOW, 0
    try:
        return pii._search(text, names)
    finally:
        pii.PRECHECK_BELOW = saved


def _check(text: str) -> None:
    for name in NAMES:
        if not pii._PRECHECKS[name](text):  # a pre-check that fails: nothing to find
            assert list(pii.PII_DETECTORS[name](text)) == [], (name, text)
        if name in pii._NUMBER_FINDERS and pii._NUMBERS_SHAPE.search(text) is None:
            assert not pii._PRECHECKS[name](text), (name, text)
    number_prechecks = any(pii._PRECHECKS[name](text) for name in pii._NUMBER_FINDERS)
    assert (pii._NUMBER_PRECHECKS_JOINED.search(text) is not None) == number_prechecks, text
    if not secrets_scan.may_hold_secret(text):
        assert list(secrets_scan.secrets(text)) == [], text
    for names in (NAMES, ("ssn", "phone"), ("email",), ("api_key", "iban", "credit_card")):
        plain = _plain(text, names)
        assert pii._search(text, names) == plain, (names, text)
        if not pii._gate(text, names):
            assert plain == [], (names, text)
        pii.forget()
        assert pii.find_pii(text, names) == plain, (names, text)
        pii.forget()
        assert pii.has_pii_in_any([text, "c_17", text[::-1]], names) == bool(
            plain or _plain(text[::-1], names)), (names, text)
    pii.forget()


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_prechecks_never_hide_a_finding(text: str) -> None:
    _check(text)


@pytest.mark.parametrize("chunk", range(4))
def test_corpus_findings_are_the_plain_finders(chunk: int) -> None:
    for text in CORPUS[chunk::4]:
        _check(text)


def test_prechecks_skip_the_benchmarks_texts() -> None:
    # the 50-rule benchmark's note and customer id hold nothing any finder looks for
    for text in ("refund #123", "c_17", "refund for a late delivery"):
        assert not pii._gate(text)
        assert list(pii._worth_running(text, NAMES)) == []
    assert list(pii._worth_running("call 555-123-4567", NAMES)) == ["iban", "phone"]


def test_the_gate_rules_out_order_numbers_and_lets_numbers_that_may_be_pii_in() -> None:
    # four digits in a row are not yet a card, a phone, an SSN or an IBAN: the pack's gate
    # (the four pre-checks joined) says no, where their common first test said yes
    may_fire = gates.joined([gates.PII])
    for text in ("refund #1234", "refund #123456", "ticket 98765", "year 2026"):
        assert pii._NUMBERS_SHAPE.search(text) is not None
        assert not may_fire(text)
    for text in ("ssn 536904399", "4111 1111", "call 555-123-4567", "+12025550143",
                 "DE89 3704 0044 0532 0130 00", "de 89 370400440532", "DE89-3704-0044",
                 "bot12345678:AA"):
        assert may_fire(text), text
