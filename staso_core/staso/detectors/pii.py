"""Personal data and secrets: SSNs, card numbers (Luhn-checked), e-mail addresses, phone
numbers, API keys and tokens. Used to detect (`has_pii`) and to redact (`redact_pii`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

Span = tuple[str, int, int]

_SSN = re.compile(
    r"(?<![\d-])(?!000|666|9\d\d)(\d{3})[- ](?!00)(\d{2})[- ](?!0000)(\d{4})(?![\d-])")
_DIGIT_RUN = re.compile(r"(?<![\d-])\d+(?:[ -]\d+)*")
_DIGITS = re.compile(r"\d+")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])|"
    r"(?<![\w+])\+\d{7,15}(?!\w)")
_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|"
    r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
    r"AIza[0-9A-Za-z_-]{35}|sk_live_[0-9A-Za-z]{16,}|rk_live_[0-9A-Za-z]{16,}|"
    r"glpat-[A-Za-z0-9_-]{20,}|ak_[A-Za-z0-9]{20,}|"
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})|"
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|\Z)|"
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{20,}=*")


_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, less 9 when over 9


def _luhn(digits: str) -> bool:
    """The Luhn check with the digit sums done in C (bytes sums): a long run of digit groups
    asks for it hundreds of thousands of times."""
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
    return (sum(kept.encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10 == 0


def _cards(text: str) -> Iterable[tuple[int, int]]:
    """Card numbers written as digit groups (``4111 1111 1111 1111``, ``4111-1111…``, or one
    block): every run of groups is searched from every group on, so a card next to other
    numbers (an SSN, an order number) is found even when the run as a whole is no card."""
    for run in _DIGIT_RUN.finditer(text):
        base = run.start()
        groups = [(m.start() + base, m.end() + base, m.group())
                  for m in _DIGITS.finditer(run.group())]
        for i, (start, _, _) in enumerate(groups):
            digits, end = "", 0
            for _, group_end, group in groups[i:i + 19]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and _luhn(digits) and len(set(digits)) > 1:
                    end = group_end  # the longest valid number from this group on
            if end:
                yield start, end


def _simple(pattern: re.Pattern[str]) -> Callable[[str], Iterable[tuple[int, int]]]:
    return lambda text: ((m.start(), m.end()) for m in pattern.finditer(text))


PII_DETECTORS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "ssn": _simple(_SSN),
    "credit_card": _cards,
    "email": _simple(_EMAIL),
    "phone": _simple(_PHONE),
    "api_key": _simple(_API_KEY),
}
_CHEAP_GATE = re.compile(r"\d{3}|@|-----BEGIN|[A-Za-z0-9_]{20}")


def find_pii(text: str, detectors: Iterable[str] | None = None) -> list[Span]:
    """Return (detector, start, end) for every finding, earliest first. Overlapping findings
    become one span covering both, named ``first+second``: redacting the union never leaves
    part of a secret in clear."""
    if not text or not _CHEAP_GATE.search(text):
        return []
    spans: list[Span] = []
    for name in detectors or PII_DETECTORS:
        spans.extend((name, s, e) for s, e in PII_DETECTORS[name](text))
    spans.sort(key=lambda span: (span[1], -span[2]))
    merged: list[Span] = []
    for span in spans:
        if merged and span[1] < merged[-1][2]:
            name, start, end = merged[-1]
            names = name if span[0] in name.split("+") else f"{name}+{span[0]}"
            merged[-1] = (names, start, max(end, span[2]))
            continue
        merged.append(span)
    return merged


def has_pii(text: str, detectors: Iterable[str] | None = None) -> bool:
    """True when ``text`` contains personal data or a secret: stops at the first finding."""
    if not text or not _CHEAP_GATE.search(text):
        return False
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
