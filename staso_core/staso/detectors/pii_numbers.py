"""Numbers that identify a person or an account: US SSNs, payment card numbers, IBANs.

Each finder takes attacker-controlled text and yields (start, end) spans. A regular
expression without nested quantifiers proposes candidates (bounded by non-alphanumerics, so
a digit run inside a hex id or a UUID is never one); the checksum then decides. IBANs are
confirmed by python-stdnum (imported on first use, so ``import staso`` stays cheap).

Work is bounded: a finder checks at most ``MAX_CHECKS`` candidates per call. Past that the
rest of the string, from the next candidate on, counts as one finding, so a string crafted
with hundreds of thousands of near-misses is treated as holding the data (redacted, never
allowed by giving up) and no string can make the check slow. Past ``MAX_STDNUM`` IBANs
confirmed by python-stdnum in one string, the registry length and mod-97 checksum decide.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import AnyStr

MAX_CHECKS = 10_000
MAX_STDNUM = 200  # full python-stdnum IBAN checks per call (about 17 us each)

# Area 000, 666 and 900-999, group 00 and serial 0000 were never issued.
# Led by the separator (rare in text), the area checked behind it: the regex engine skips
# to separators instead of trying every digit. A match starts 3 characters before its own.
_SSN = re.compile(
    r"([- \u2013.])(?<=\d\d\d.)(?<![\d-]\d\d\d.)(?<!000.)(?<!666.)(?<!9\d\d.)"
    r"(?!00)\d\d\1(?!0000)\d{4}(?![\d-])")


# Nine digits in one block are an SSN only right after a word that says so ("SSN: 536904399").
# The first letter is a class of the three characters a case-blind "s" matches (s, S and the
# long s): a case-blind pattern has no first character the engine can skip to, so it would
# try the whole pattern at every position.
_SSN_LABELLED = re.compile(
    r"[sS\u017f](?i:(?<![A-Za-z]s)sn|s#|ocial security(?: number| no\.?)?)[\s:#=\"'-]{0,4}+"
    r"(?:(?i:is|was)[\s:#=\"'-]{1,4}+)?"  # "My SSN is 078051120"
    r"(\d(?<![\d-]\d)\d\d(?<!000)(?<!666)(?<!9\d\d)(?!00)\d\d(?!0000)\d{4})(?![\d-])")


def ssns(text: str) -> Iterator[tuple[int, int]]:
    """US social security numbers written 123-45-6789 or 123 45 6789, or as nine digits
    right after "SSN" or "social security number"."""
    yield from ((m.start() - 3, m.end()) for m in _SSN.finditer(text))
    folded = text.casefold()  # (the long s folds to s; lower() keeps it)
    if "ssn" in folded or "ss#" in folded or "social security" in folded:
        yield from (m.span(1) for m in _SSN_LABELLED.finditer(text))


def _search_led(at_start: re.Pattern[str], led: re.Pattern[str], text: str,
                pos: int) -> tuple[int, re.Match[str]] | None:
    """The leftmost candidate starting at or after ``pos``, and where it starts: ``at_start``
    matched at the start of the text, or ``led`` (one character before the candidate, then
    the same pattern) searched for from the character before ``pos``."""
    if pos == 0 and (m := at_start.match(text)) is not None:
        return 0, m
    m = led.search(text, max(pos - 1, 0))
    return None if m is None else (m.start() + 1, m)


# --- payment cards ------------------------------------------------------------------------

# A card number as people write it: 4-4-4-4 (optionally -3 more for 19-digit cards), Amex and
# Diners 4-6-5 / 4-6-4, with one kind of separator (space, dash or dot) throughout, or one
# block of digits. Not the fraction or integer part of a decimal number (0.4111111111111111).
# spaces of any kind, tabs, dashes (ASCII and Unicode: hyphens, en dash, minus), dots
_SEP = r"(?:[ \t\xa0\u2007\u202f_\u2010-\u2013\u2212-]{1,2}|\.)"
_CARD_BODY = (
    r"(?:\d{3}(S)\d{4}S\d{4}S\d{4}(?:S\d{3})?"
    r"|(?<=3)\d{3}S\d{6}S\d{4,5}"
    r"|\d{12,18})".replace("(S)", "(" + _SEP + ")").replace("S", _SEP)
    + r"(?![0-9A-Za-z_])(?![.,]\d)")
# A card starts at the start of the text or right after a character that is not a letter, a
# digit or "_" (``CC4111…`` is a card after ``CC``), and not after a decimal point
# (0.4111111111111111). ``_CARD`` is led by its first digit: the regex engine skips in C to
# the next 2-6. In a text dense with those (a megabyte of digits, of ``%25``) it would try
# nearly every position, so there ``_CARD_LED`` is searched instead, led by the character
# before the card (one class: an alternation has no class the engine can skip by; a "C"
# leads only as the second of a "CC" that follows no letter or digit).
_CARD_START = r"(?:(?<![0-9A-Za-z_].)|(?<=(?<![0-9A-Za-z_])[Cc][Cc].))(?<!\d[.,].)"
_CARD = re.compile(r"[2-6]" + _CARD_START + _CARD_BODY)
_CARD_LED = re.compile(r"[^0-9ABD-Zabd-z_][2-6]" + _CARD_START + _CARD_BODY)
_SEPARATORS = str.maketrans("", "", " .-_\t\xa0\u2007\u202f\u2010\u2011\u2012\u2013\u2212")
# full-width digits (U+FF10-FF19) read as digits, one character for one: offsets stay
_WIDE_DIGITS = str.maketrans({0xFF10 + i: str(i) for i in range(10)})
_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, less 9 when over 9


def luhn_ok(digits: str) -> bool:
    """The Luhn check (as ``stdnum.luhn.is_valid``; the tests compare the two) with the digit
    sums done in C: crafted input asks for it ten thousand times."""
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
    return (sum(kept.encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10 == 0


def _issued(digits: str) -> bool:
    """True when the number starts with a card network's issuer prefix and has one of that
    network's lengths (Visa, Mastercard, Amex, Discover, UnionPay, JCB, Diners, Mir,
    Maestro): a Luhn-valid timestamp or database id usually does not."""
    n, p2, p3, p4 = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095:
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589 or 2200 <= p4 <= 2204:
        return 16 <= n <= 19
    if digits[0] == "6" or p2 in (50, 56, 57, 58):
        return 12 <= n <= 19
    return False


def _card_ok(digits: str) -> bool:
    return _issued(digits) and luhn_ok(digits) and digits.count(digits[0]) != len(digits)


_WIDE_DIGIT = re.compile("[\uff10-\uff19]")


def _next_card(text: str, pos: int, dense: bool) -> tuple[int, re.Match[str]] | None:
    """The first candidate at or after ``pos``, and where it starts."""
    if dense:
        return _search_led(_CARD, _CARD_LED, text, pos)
    m = _CARD.search(text, pos)
    return None if m is None else (m.start(), m)


def cards(text: str) -> Iterator[tuple[int, int]]:
    """Payment card numbers that pass the issuer-prefix and Luhn checks. A candidate that
    fails is searched again from its next character, so a card right after other digit
    groups (an SSN, an order number) is still found."""
    pos, checks = 0, 0
    if not text.isascii() and _WIDE_DIGIT.search(text):  # isascii: a flag, no scan
        text = text.translate(_WIDE_DIGITS)
    dense = len(text) > 256 and sum(map(text.count, "23456")) * 8 > len(text)
    while (found := _next_card(text, pos, dense)) is not None:
        start, m = found
        checks += 1
        if checks > MAX_CHECKS:
            yield start, len(text)
            return
        digits = text[start:m.end()].translate(_SEPARATORS)
        if _card_ok(digits) or (len(digits) == 19 and m.group(1) is not None
                                and _card_ok(digits[:16])):
            yield start, m.end()
            pos = m.end()
        else:
            pos = start + 1


# --- IBANs --------------------------------------------------------------------------------

# Country code, check digits, then the account part in groups of four or as one block.
# Spaces anywhere (``DE89 3704 ...``, ``DE 89 3704 ...``), or dashes between groups of four.
# Led by the character before the country code (as card numbers are): an upper-cased text is
# mostly capital letters, and a search led by one tried nearly every position.
_IBAN_BODY = (r"[A-Z][A-Z]"
              r"(?: ?\d{2}[ 0-9A-Z]{11,41}|-?\d{2}(?:-[0-9A-Z]{4}){2,8}(?:-[0-9A-Z]{1,4})?)")
_IBAN = re.compile(r"[^0-9A-Za-z]" + _IBAN_BODY)
_IBAN_AT_START = re.compile(_IBAN_BODY)
_ALNUM = re.compile(r"[0-9A-Za-z]")
_LETTER_VALUES = str.maketrans({chr(c): str(c - 55) for c in range(65, 91)})
# ASCII letters only, so offsets stay the same ("ß".upper() is two characters)
_ASCII_UPPER = str.maketrans({**{chr(c): chr(c - 32) for c in range(97, 123)},
                              "\xa0": " ", "\u2007": " ", "\u202f": " "})  # no-break spaces


@cache
def _iban_lengths() -> dict[str, int]:
    """IBAN length per country, from python-stdnum's copy of the SWIFT IBAN registry."""
    from stdnum import numdb

    struct = re.compile(r"(\d+)!")
    return {low: 4 + sum(int(n) for n in struct.findall(props.get("bban", "")))
            for _, low, _, props, _ in numdb.get("iban").prefixes}


def _iban_valid(compact: str) -> bool:
    """ISO 7064 mod 97-10 in one big-integer step, then python-stdnum's full check (registry
    structure and national check digits) for the ones that pass."""
    if int((compact[4:] + compact[:4]).translate(_LETTER_VALUES)) % 97 != 1:
        return False
    from stdnum import iban

    return bool(iban.is_valid(compact))


def _iban_ok(compact: str, confirmed: int) -> bool:
    """Past ``MAX_STDNUM`` confirmations in one string, the checksum alone decides."""
    if confirmed >= MAX_STDNUM:
        return int((compact[4:] + compact[:4]).translate(_LETTER_VALUES)) % 97 == 1
    return _iban_valid(compact)


def _iban_end(cand: str, want: int) -> int:
    """Where the ``want`` characters of an IBAN end in ``cand``, when no two separators
    stand together; 0 when they do."""
    seen = 0
    for i, c in enumerate(cand):
        if c in " -":
            if i and cand[i - 1] in " -":
                return 0
            continue
        seen += 1
        if seen == want:
            return i + 1
    return 0


def ibans(text: str) -> Iterator[tuple[int, int]]:
    """IBANs written in groups of four (``DE89 3704 0044 0532 0130 00``) or as one block
    (``GB82WEST12345698765432``), for every country in the registry."""
    lengths = None
    text = text.translate(_ASCII_UPPER)  # people write gb29 nwbk ..., and copy from PDFs
    pos, checks, found = 0, 0, 0
    while (led := _search_led(_IBAN_AT_START, _IBAN, text, pos)) is not None:
        start, m = led
        checks += 1
        if checks > MAX_CHECKS:
            yield start, len(text)
            return
        lengths = lengths or _iban_lengths()
        cand = text[start:m.end()]
        want = lengths.get(cand[:2], 0)
        compact = cand.replace(" ", "").replace("-", "")[:want]
        end = 0
        if want and len(compact) == want:
            # One block, or groups split by one space or dash (``DE89 3704 ...``,
            # ``DE89-3704-...``, ``DE 89 3704 ...``); the number must end the token.
            end = _iban_end(cand, want)
            end = start + end if end else 0
            if end and end < len(text) and _ALNUM.match(text, end):
                end = 0
        if end and _iban_ok(compact, found):
            found += 1
            yield start, end
            pos = end
        else:
            pos = start + 1


def leftmost(scans: Sequence[tuple[re.Pattern[AnyStr], int]],
             text: AnyStr) -> Iterator[tuple[int, re.Match[AnyStr]]]:
    """The findings ``finditer`` would give for the alternation of the patterns (tried in
    order), with where each starts, found by one search per pattern. An alternation of
    branches led by different characters has no first character the regex engine can skip
    to, so it is tried at every position; each branch alone is led by its own character and
    searched fast. A pattern given with ``back`` > 0 matches that many characters after its
    finding starts (it is led by a character inside the finding, rarer than its first)."""
    heads: list[tuple[int, int, re.Match[AnyStr]]] = []
    for i, (pattern, back) in enumerate(scans):
        if (m := pattern.search(text, back)) is not None:
            heads.append((m.start() - back, i, m))
    heapq.heapify(heads)
    while heads:
        start, _, m = heads[0]
        yield start, m
        end = m.end()
        while heads and heads[0][0] < end:  # findings overlapping this one are not findings
            _, i, _ = heapq.heappop(heads)
            pattern, back = scans[i]
            if (m := pattern.search(text, end + back)) is not None:
                heapq.heappush(heads, (m.start() - back, i, m))
