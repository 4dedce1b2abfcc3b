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

import re
from collections.abc import Iterator
from functools import cache

MAX_CHECKS = 10_000
MAX_STDNUM = 200  # full python-stdnum IBAN checks per call (about 17 us each)

# Area 000, 666 and 900-999, group 00 and serial 0000 were never issued.
# Led by the separator (rare in text), the area checked behind it: the regex engine skips
# to separators instead of trying every digit. A match starts 3 characters before its own.
_SSN = re.compile(
    r"([- \u2013.])(?<=\d\d\d.)(?<![\d-]\d\d\d.)(?<!000.)(?<!666.)(?<!9\d\d.)"
    r"(?!00)\d\d\1(?!0000)\d{4}(?![\d-])")


# Nine digits in one block are an SSN only right after a word that says so ("SSN: 536904399").
_SSN_LABELLED = re.compile(
    r"(?i:s(?<![A-Za-z]s)sn|ss#|social security(?: number| no\.?)?)[\s:#=\"'-]{0,4}+"
    r"(\d(?<![\d-]\d)\d\d(?<!000)(?<!666)(?<!9\d\d)(?!00)\d\d(?!0000)\d{4})(?![\d-])")


def ssns(text: str) -> Iterator[tuple[int, int]]:
    """US social security numbers written 123-45-6789 or 123 45 6789, or as nine digits
    right after "SSN" or "social security number"."""
    yield from ((m.start() - 3, m.end()) for m in _SSN.finditer(text))
    if "ss" in text.lower():
        yield from (m.span(1) for m in _SSN_LABELLED.finditer(text))


# --- payment cards ------------------------------------------------------------------------

# A card number as people write it: 4-4-4-4 (optionally -3 more for 19-digit cards), Amex and
# Diners 4-6-5 / 4-6-4, with one kind of separator (space, dash or dot) throughout, or one
# block of digits. Not the fraction or integer part of a decimal number (0.4111111111111111).
# spaces of any kind, tabs, dashes (ASCII and Unicode: hyphens, en dash, minus), dots
_SEP = r"(?:[ \t\xa0\u2007\u202f_\u2010-\u2013\u2212-]{1,2}|\.)"
_CARD = re.compile(
    # led by a digit class: the engine skips the rest; ``CC4111…`` is a card after ``CC``
    r"[2-6](?:(?<![0-9A-Za-z_].)|(?<=(?<![0-9A-Za-z_])[Cc][Cc].))(?<!\d[.,].)"
    r"(?:\d{3}(S)\d{4}S\d{4}S\d{4}(?:S\d{3})?"
    r"|(?<=3)\d{3}S\d{6}S\d{4,5}"
    r"|\d{12,18})".replace("(S)", "(" + _SEP + ")").replace("S", _SEP)
    + r"(?![0-9A-Za-z_])(?![.,]\d)")
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


def cards(text: str) -> Iterator[tuple[int, int]]:
    """Payment card numbers that pass the issuer-prefix and Luhn checks. A candidate that
    fails is searched again from its next character, so a card right after other digit
    groups (an SSN, an order number) is still found."""
    pos, checks, search = 0, 0, _CARD.search
    if not text.isascii() and _WIDE_DIGIT.search(text):  # isascii: a flag, no scan
        text = text.translate(_WIDE_DIGITS)
    while (m := search(text, pos)) is not None:
        checks += 1
        if checks > MAX_CHECKS:
            yield m.start(), len(text)
            return
        digits = m.group().translate(_SEPARATORS)
        if _card_ok(digits) or (len(digits) == 19 and m.group(1) is not None
                                and _card_ok(digits[:16])):
            yield m.span()
            pos = m.end()
        else:
            pos = m.start() + 1


# --- IBANs --------------------------------------------------------------------------------

# Country code, check digits, then the account part in groups of four or as one block.
# Spaces anywhere (``DE89 3704 ...``, ``DE 89 3704 ...``), or dashes between groups of four.
_IBAN = re.compile(r"[A-Z](?<![0-9A-Za-z].)[A-Z]"
                   r"(?: ?\d{2}[ 0-9A-Z]{11,41}|-?\d{2}(?:-[0-9A-Z]{4}){2,8}(?:-[0-9A-Z]{1,4})?)")
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
    pos, checks, found, search = 0, 0, 0, _IBAN.search
    while (m := search(text, pos)) is not None:
        checks += 1
        if checks > MAX_CHECKS:
            yield m.start(), len(text)
            return
        lengths = lengths or _iban_lengths()
        cand = m.group()
        want = lengths.get(cand[:2], 0)
        compact = cand.replace(" ", "").replace("-", "")[:want]
        end = 0
        if want and len(compact) == want:
            # One block, or groups split by one space or dash (``DE89 3704 ...``,
            # ``DE89-3704-...``, ``DE 89 3704 ...``); the number must end the token.
            end = _iban_end(cand, want)
            end = m.start() + end if end else 0
            if end and end < len(text) and _ALNUM.match(text, end):
                end = 0
        if end and _iban_ok(compact, found):
            found += 1
            yield m.start(), end
            pos = end
        else:
            pos = m.start() + 1
