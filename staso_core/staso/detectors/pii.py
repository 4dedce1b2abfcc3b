"""Personal data and secrets: SSNs, payment cards (issuer prefix and Luhn), IBANs (checked by
python-stdnum), e-mail addresses, phone numbers, API keys, tokens and other secrets. Used to
detect (``has_pii``) and to redact (``redact_pii``).

Every finder is linear in its input (see ``pii_numbers`` and ``secrets_scan``). The number of
findings is bounded too: past ``MAX_FINDINGS`` findings of one detector, the rest of the
string from the next finding on is one finding, so redacting a megabyte of card numbers costs
no more than redacting a few thousand, and nothing is left in clear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from .pii_numbers import cards, ibans, ssns
from .secrets_scan import secrets

Span = tuple[str, int, int]
Finder = Callable[[str], Iterable[tuple[int, int]]]

MAX_FINDINGS = 5_000
LARGE = 64 * 1024  # texts from this length on share one search between has_pii and redact
_last: tuple[str, tuple[str, ...], list[Span]] | None = None  # the last large text's findings

# The local part starts where a run of local-part characters starts (never re-scanned from
# inside a long run); the domain is one bounded run holding a dot and ending in two letters.
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-](?<![A-Za-z0-9._%+-].)[A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9-]{1,63}\.[A-Za-z0-9.-]{1,190}(?<=[A-Za-z]{2})(?![A-Za-z0-9-])")
# Each branch is led by its first character, the look-behind after it keeping matches to
# where a number starts (the engine then skips most positions quickly).
_PHONE = re.compile(
    r"\+(?<![\w+]\+)(?:\d{7,15}(?!\w)|"
    r"\d{1,3}[ .-]?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]))"
    r"|\((?<![\w+]\()\d{3}\)\s?\d{3}[ .-]\d{4}(?![\w-])"
    r"|\d(?<![\w+]\d)\d\d[ .-]\d{3}[ .-]\d{4}(?![\w-])")


# Every finding of every detector above holds one of these (three digits, an @, a country code
# and check digits, a key header, a secret-sounding word, a token prefix or a long word):
# one search lets ordinary text (most tool inputs) through without running ~30 patterns.
_GATE = re.compile(r"\d{3}|@|[a-z]{2}\d\d|-----|key|token|secret|pass|pwd|contras|bearer|xox|"
                   r"eyj|hooks\.slack|[a-z0-9_]{20}", re.IGNORECASE)


def _simple(pattern: re.Pattern[str]) -> Finder:
    return lambda text: map(re.Match.span, pattern.finditer(text))


PII_DETECTORS: dict[str, Finder] = {
    "ssn": ssns,
    "credit_card": cards,
    "iban": ibans,
    "email": _simple(_EMAIL),
    "phone": _simple(_PHONE),
    "api_key": secrets,
}


def _bounded(name: str, text: str) -> Iterator[Span]:
    found = iter(PII_DETECTORS[name](text))
    for start, end in islice(found, MAX_FINDINGS):
        yield name, start, end
    rest = next(found, None)
    if rest is not None:
        yield name, rest[0], len(text)


def find_pii(text: str, detectors: Iterable[str] | None = None) -> list[Span]:
    """Return (detector, start, end) for every finding, earliest first. Overlapping findings
    become one span covering both, named ``first+second``: redacting the union never leaves
    part of a secret in clear."""
    global _last
    if not text or not _GATE.search(text):
        return []
    names = tuple(detectors or PII_DETECTORS)
    last = _last
    if last is not None and last[1] == names and (last[0] is text or last[0] == text):
        return list(last[2])
    spans: list[Span] = []
    for name in names:
        spans.extend(_bounded(name, text))
    spans.sort(key=lambda span: (span[1], -span[2]))
    merged: list[Span] = []
    for span in spans:
        if merged and span[1] < merged[-1][2]:
            name, start, end = merged[-1]
            names_ = name if span[0] in name.split("+") else f"{name}+{span[0]}"
            merged[-1] = (names_, start, max(end, span[2]))
            continue
        merged.append(span)
    if len(text) >= LARGE:
        _last = (text, names, merged)
    return list(merged)


def has_pii(text: str, detectors: Iterable[str] | None = None) -> bool:
    """True when ``text`` contains personal data or a secret: stops at the first finding.
    A large text is searched in full instead, and the findings kept for the redaction that
    usually follows (the rule pack asks, then redacts), so it is searched once, not twice."""
    if not text or not _GATE.search(text):
        return False
    if len(text) >= LARGE:
        return bool(find_pii(text, detectors))
    return any(next(iter(PII_DETECTORS[name](text)), None) is not None
               for name in detectors or PII_DETECTORS)


def redact_pii(text: str, detectors: Iterable[str] | None = None) -> tuple[str, list[str]]:
    """Mask every finding as ``[REDACTED:<detector>]``; return the text and detectors that hit."""
    spans = find_pii(text, detectors)
    if not spans:
        return text, []
    out, last = [], 0
    for name, start, end in spans:
        out.append(text[last:start])
        out.append(f"[REDACTED:{name}]")
        last = end
    out.append(text[last:])
    return "".join(out), sorted({part for name, _, _ in spans for part in name.split("+")})
