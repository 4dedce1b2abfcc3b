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
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from .pii_numbers import cards, ibans, leftmost, ssns
from .secrets_scan import HOLDS_FROM, Keyed, holds, keyed_findings, may_hold_secret, secrets

Span = tuple[str, int, int]
_T = TypeVar("_T")
Finder = Callable[[str], Iterable[tuple[int, int]]]

MAX_FINDINGS = 5_000
# The rule pack asks (has_pii), then redacts (find_pii) the same texts: each text's findings
# are remembered, so it is searched once. Findings depend only on the text and the detector
# names, so a remembered entry is never stale; the memo is emptied past this many characters.
MEMO_CHARS = 4 * 1024 * 1024
# Entries are tuples (the empty one shared): a list per remembered text kept thousands of
# objects alive for the garbage collector, whose full collections then cost ~40 ms.
_memo: dict[tuple[tuple[str, ...], str, str | None], tuple[Span, ...]] = {}
_memo_chars = [0]

# An e-mail address is found from its "@": a pattern led by a literal is searched fast (the
# regex engine skips to each "@" in C), one led by the local part's character class was tried
# at nearly every position. The look-behinds right after the "@" say the run of local-part
# characters before it is 1 to 64 long; ``_email_start`` then finds where that run starts.
# The domain is one bounded run holding a dot and ending in two letters.
_LOCAL_CHARS = "A-Za-z0-9._%+-"
_EMAIL_AT = re.compile(
    rf"@(?<=[{_LOCAL_CHARS}]@)(?<![{_LOCAL_CHARS}]{{65}}@)"
    r"[A-Za-z0-9-]{1,63}\.[A-Za-z0-9.-]{1,190}(?<=[A-Za-z]{2})(?![A-Za-z0-9-])")
# the last character before an "@" that cannot be in a local part, at most 64 back
_BEFORE_LOCAL = re.compile(rf"[\s\S]*[^{_LOCAL_CHARS}]")


def _email_start(text: str, at: int) -> int:
    """Where the local part of the address whose "@" is at ``at`` starts: the whole run of
    local-part characters before it (the look-behinds said it is at most 64 long)."""
    lo = max(0, at - 64)
    before = _BEFORE_LOCAL.match(text, lo, at)
    return lo if before is None else before.end()


def emails(text: str) -> Iterator[tuple[int, int]]:
    """E-mail addresses, earliest first, none overlapping the one before it."""
    last = 0
    for m in _EMAIL_AT.finditer(text):
        start = _email_start(text, m.start())
        if start >= last:
            yield start, m.end()
            last = m.end()


# Phone numbers: +<country> ..., (555) 123-4567, 555-123-4567. Each form is its own pattern,
# led by its own first character ("+", "(") so the regex engine skips to it; the plain form
# is led by the separator after its first three digits (three characters into the number):
# led by a digit, a megabyte of digits was tried at every position. ``leftmost`` merges the
# three as the alternation of them would match.
_PHONE_FORMS = (
    (re.compile(r"\+(?<![\w+]\+)(?:\d{7,15}(?!\w)|"
                r"\d{1,3}[ .-]?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]))"), 0),
    (re.compile(r"\((?<![\w+]\()\d{3}\)\s?\d{3}[ .-]\d{4}(?![\w-])"), 0),
    (re.compile(r"[ .-](?<=(?<![\w+])\d\d\d.)\d{3}[ .-]\d{4}(?![\w-])"), 3),
)


def phones(text: str) -> Iterator[tuple[int, int]]:
    """Phone numbers, earliest first, none overlapping the one before it."""
    return ((start, m.end()) for start, m in leftmost(_PHONE_FORMS, text))


# Every finding of every detector above holds one of these (an @, a key header, three digits
# or a letter and two, a long word, or a secret-sounding word): ordinary long text is let
# through without running ~30 patterns. (A short text is gated by the finders' own
# pre-checks instead: ``_PRECHECKS``.) Simple patterns and substring tests, not one
# alternation: the regex engine scans a single-branch pattern several times faster.
# Led by the digits (not by the letter or digit before them): the engine skips to digits.
_GATE_DIGITS = re.compile(r"\d\d(?<=[A-Za-z0-9\uff10-\uff19]\d\d)")
_GATE_WORDS = ("key", "token", "secret", "pass", "pw", "contras", "bearer", "xox", "eyj",
               "hooks.slack", "cookie", "auth", "basic", "cred", "mysql", "mariadb", "curl")
# Word characters to "w", all else (non-ASCII too, encoded as "?") to " ": a long word is
# then a substring test, where a pattern tried every letter.
_WORD_SHAPE = bytes(119 if chr(c).isascii() and (chr(c).isalnum() or c == 95) else 32
                    for c in range(256))
_LONG_WORD = b"w" * 20


PII_DETECTORS: dict[str, Finder] = {
    "ssn": ssns,
    "credit_card": cards,
    "iban": ibans,
    "email": emails,
    "phone": phones,
    "api_key": secrets,
}
_ALL_NAMES = tuple(PII_DETECTORS)


# --- pre-checks ---------------------------------------------------------------------------
# The gate opens on any two digits after a letter or digit ("refund #123"), and then every
# finder ran: ~92k instructions (callgrind) for a short text that holds nothing. Each finder
# below is run only when the text holds something every one of its findings holds; each
# pre-check is one search in C. ``\d`` and ``\D`` are Unicode here as in the finders (a
# full-width digit is ``\d``; the finders' separators are all ``\D``). Measured with callgrind
# on "refund #123", instructions per call: the finders cost ssn 10k, credit_card 5k, iban 13k,
# email 6k, phone 10k, api_key 34k, ``_search`` 92k in all; with the pre-checks ``_search``
# costs 19k and ``_gate`` (which now says no) 13k. tests/test_pii_prechecks.py checks that
# every pre-check that fails leaves its finder nothing to find.
#
# SSN: ``_SSN`` matches three digits (its look-behind), a separator from ``[- \u2013.]``, two
# digits, the same separator, four digits; ``_SSN_LABELLED`` nine digits in a row.
_SSN_SHAPE = re.compile(r"\d\d\d\D?\d\d\D?\d\d\d\d")
# Card: every form starts with four digits (``[2-6]\d{3}``) followed by a 1-2 character
# separator (``_SEP``) and four or six more digits, or by 9 to 15 more digits (``\d{12,18}``).
# Full-width digits are translated to ASCII first: they are ``\d`` before it too.
_CARD_SHAPE = re.compile(r"\d\d\d\d\D{0,2}\d\d\d\d")
# Phone: ``+\d{7,15}`` holds seven digits in a row; every other form ends with three digits,
# one or two characters (``) ``, ``)``, or a separator), three digits, ``[ .-]``, four digits.
_PHONE_SHAPE = re.compile(r"\d\d\d(?:\d\d\d\d|\D{1,2}\d\d\d[ .-]\d\d\d\d)")
# IBAN: ``_IBAN_BODY`` on the text with ASCII letters upper-cased and no-break spaces made
# spaces: two ASCII letters, an optional space or dash, two digits, then 11 or more of
# ``[ 0-9A-Z]`` or groups of four after dashes (``-XXXX-XXXX``: 10 characters at least). Led
# by the digits (the regex engine skips to them), the letters looked behind for. (Without
# the account part, every word before a number passed: "ticket 98765", "year 2026".)
_IBAN_SHAPE = re.compile(r"\d\d(?:(?<=[A-Za-z]{2}\d\d)|(?<=[A-Za-z]{2}[- \xa0\u2007\u202f]\d\d))"
                         r"[- 0-9A-Za-z\xa0\u2007\u202f]{10}")


# All four number finders at once: each shape above holds four digits in a row or two letters
# and two digits, so a text with neither (most texts the gate lets in: "refund #123") costs
# one search, not four.
_NUMBERS_SHAPE = re.compile(
    r"\d\d(?:\d\d|(?<=[A-Za-z]{2}\d\d)|(?<=[A-Za-z]{2}[- \xa0\u2007\u202f]\d\d))")
_NUMBER_FINDERS = frozenset({"ssn", "credit_card", "iban", "phone"})
# The four pre-checks above as one search, for the gates (``detectors/gates.py``): a text
# holds a match of this exactly when it holds one of theirs. Each shape starts with a digit,
# so the alternation does too, and the regex engine skips to digits as it does for one shape
# (searched one after the other, the four cost 3.5x more on "refund #1234", 4.4x on 200
# letters).
_NUMBER_PRECHECKS_JOINED = re.compile(r"\d(?:" + "|".join(
    shape.pattern.removeprefix(r"\d") for shape in (_SSN_SHAPE, _CARD_SHAPE, _PHONE_SHAPE,
                                                    _IBAN_SHAPE)) + ")")

# The SSN, card and phone shapes each hold seven digits or more (9, 8, 7 or 10): a text with
# fewer ("refund #12345") skips their three scans for one (-1 µs a text that has four digits
# in a row; the IBAN shape, two letters and two digits, is still tried)
_SEVEN_DIGITS = re.compile(r"\d(?:\D*\d){6}")


def _has_at(text: str) -> bool:
    return "@" in text  # ``_EMAIL_AT`` is led by "@"


_PRECHECKS: dict[str, Callable[[str], object]] = {
    "ssn": _SSN_SHAPE.search,
    "credit_card": _CARD_SHAPE.search,
    "iban": _IBAN_SHAPE.search,
    "email": _has_at,
    "phone": _PHONE_SHAPE.search,
    "api_key": may_hold_secret,
}
# Texts this long skip the pre-checks: there each finder's own scan (led by a literal or
# ``holds``) costs about what a pre-check scan would, and crafted text (a megabyte of digit
# groups) would pay both.
PRECHECK_BELOW = HOLDS_FROM


def _gate(text: str, names: tuple[str, ...] | None = None) -> bool:
    """False only when no finder of ``names`` (all by default) finds anything in ``text``."""
    if len(text) < PRECHECK_BELOW:  # most tool inputs: ``_worth_running`` as a yes or no
        # (the long-text gate below opened on any two digits, and "refund #123" cost a
        # 92k-instruction search for nothing; this says no in 13k, and in 9.5k for "c_17"
        # where the old gate took 15k: callgrind)
        names = names or _ALL_NAMES
        if ("email" in names and "@" in text) or ("api_key" in names and may_hold_secret(text)):
            return True
        if _NUMBERS_SHAPE.search(text) is None:
            return False
        if _SEVEN_DIGITS.search(text) is None:
            return "iban" in names and _IBAN_SHAPE.search(text) is not None
        return any(_PRECHECKS[name](text) for name in names if name in _NUMBER_FINDERS)
    if "@" in text or "-----" in text:
        return True
    if _LONG_WORD in text.encode("ascii", "replace").translate(_WORD_SHAPE):
        return True
    low, chars = text.lower(), dict[str, bool]()
    return any(holds(low, word, chars) for word in _GATE_WORDS) or \
        _GATE_DIGITS.search(text) is not None


def _worth_running(text: str, names: tuple[str, ...]) -> Iterable[str]:
    """``names`` less the finders that cannot find anything in ``text`` (see ``_PRECHECKS``):
    each one left out would have found nothing, so the findings are the same."""
    if len(text) >= PRECHECK_BELOW:
        return names
    numbers = _NUMBERS_SHAPE.search(text) is not None
    many = numbers and _SEVEN_DIGITS.search(text) is not None
    return [name for name in names
            if (name not in _NUMBER_FINDERS or many or (numbers and name == "iban"))
            and _PRECHECKS[name](text)]


def _bounded(name: str, text: str) -> Iterator[Span]:
    found = iter(PII_DETECTORS[name](text))
    for start, end in islice(found, MAX_FINDINGS):
        yield name, start, end
    rest = next(found, None)
    if rest is not None:
        yield name, rest[0], len(text)


def find_pii(text: object, detectors: Iterable[str] | None = None) -> list[Span]:
    """Return (detector, start, end) for every finding, earliest first. Overlapping findings
    become one span covering both, named ``first+second``: redacting the union never leaves
    part of a secret in clear. A ``Keyed`` text (a value with the key it was given under,
    ``{"password": "hunter2hunter2"}``) is judged with its key too. Anything but a string
    holds nothing: ``[]``."""
    if not isinstance(text, str) or not text:
        return []
    key = text.key if type(text) is Keyed else None
    names = tuple(detectors or PII_DETECTORS)
    known = _memo.get((names, text, key))  # the pack asked first: usually known
    if known is not None:
        return list(known)
    if key is None and not _gate(text, names):
        return []
    spans: list[Span] = keyed_findings(text, names) if isinstance(text, Keyed) else []
    merged = _search(text, names, spans)
    _remember(names, text, key, merged)
    return list(merged)


def _search(text: str, names: tuple[str, ...], spans: list[Span] | None = None) -> list[Span]:
    spans = spans if spans is not None else []
    for name in _worth_running(text, names):
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
    return merged


def forget() -> None:
    """Empty the findings memo (benchmarks time a search from cold with it)."""
    _memo.clear()
    _memo_chars[0] = 0


def _remember(names: tuple[str, ...], text: str, key: str | None,
              spans: Sequence[Span]) -> None:
    if _memo_chars[0] + len(text) > MEMO_CHARS:
        _memo.clear()
        _memo_chars[0] = 0
    _memo[(names, text, key)] = tuple(spans) if spans else ()
    _memo_chars[0] += len(text)


# Many short texts (a megabyte split over thousands of values) are searched joined, a chunk
# at a time, and each finding is handed back to the text it lies in: one pass of ~30
# patterns per chunk instead of one per text. No finding crosses the separator (every
# pattern stops at a line end or needs a character it does not hold); a finding that does
# anyway (a private key block running on, a bound's "rest of the string") sends the texts it
# covers to be searched alone.
_SEPARATOR = "\n\x00\n"
JOIN_CHARS = 64 * 1024
GATE_EACH_BELOW = 64


def has_pii_in_any(texts: Sequence[object], detectors: Iterable[str] | None = None) -> bool:
    """``any(has_pii(t, detectors) for t in texts)``, searched in joined chunks; each text's
    findings are remembered for the redaction that follows."""
    names = tuple(detectors or PII_DETECTORS)
    batch: list[str] = []
    alone: list[object] = []  # Keyed texts, and texts a joined search sent back
    size, found = 0, False
    # Thousands of texts are gated a chunk at a time (in _search_joined): a gate call per
    # text cost more than the search it spared. Nothing a text holds escapes its chunk's gate.
    gate_each = len(texts) < GATE_EACH_BELOW
    for text in texts:
        if type(text) is not str:
            alone.append(text)
            continue
        if not text:
            continue
        known = _memo.get((names, text, None))
        if known is not None:
            found = found or bool(known)
            continue
        if gate_each and not _gate(text, names):
            continue
        batch.append(text)
        size += len(text) + len(_SEPARATOR)
        if size >= JOIN_CHARS:
            found = _search_joined(batch, names, alone) or found
            batch, size = [], 0
    if batch:
        found = _search_joined(batch, names, alone) or found
    return found or any(find_pii(text, names) for text in alone)


def _search_joined(batch: list[str], names: tuple[str, ...], alone: list[object]) -> bool:
    """Search ``batch`` joined and remember each text's findings; texts a finding ran past
    go to ``alone``. Returns whether any remembered text holds a finding."""
    if len(batch) == 1:
        return bool(find_pii(batch[0], names))
    joined = _SEPARATOR.join(batch)
    if not _gate(joined, names):
        return False
    starts, pos = [], 0
    for text in batch:
        starts.append(pos)
        pos += len(text) + len(_SEPARATOR)
    found: dict[int, list[Span]] = {}  # only the texts with findings
    sent_back: set[int] = set()
    i = 0
    for name, start, end in _search(joined, names):
        while i + 1 < len(batch) and starts[i + 1] <= start:
            i += 1
        if end - starts[i] > len(batch[i]):  # runs past its text: search those alone
            j = i
            while j < len(batch) and starts[j] < end:
                sent_back.add(j)
                j += 1
            continue
        found.setdefault(i, []).append((name, start - starts[i], end - starts[i]))
    any_found = False
    for k, text in enumerate(batch):
        if k in sent_back:
            alone.append(text)
        else:
            spans = found.get(k, ())
            _remember(names, text, None, spans)
            any_found = any_found or bool(spans)
    return any_found


def has_pii(text: object, detectors: Iterable[str] | None = None) -> bool:
    """True when ``text`` contains personal data or a secret. Text without a finding costs a
    full search anyway, so the search is the whole one, remembered for the redaction that
    usually follows (the rule pack asks, then redacts)."""
    return bool(find_pii(text, detectors))


def redact_pii(text: _T, detectors: Iterable[str] | None = None) -> tuple[_T | str, list[str]]:
    """Mask every finding as ``[REDACTED:<detector>]``; return the text and detectors that hit.
    Anything but a string comes back as it is, with no detectors."""
    spans = find_pii(text, detectors)
    if not spans or not isinstance(text, str):
        return text, []
    out: list[str] = []
    last = 0
    for name, start, end in spans:
        out += (text[last:start], f"[REDACTED:{name}]")
        last = end
    out.append(text[last:])
    redacted = "".join(out)
    if len(redacted) >= WINDOWED and type(text) is str:
        _recheck_near(redacted, tuple(detectors or PII_DETECTORS), _marker_spans(spans))
    hit = {name for name, _, _ in spans}
    if any("+" in name for name in hit):  # overlapping findings merged: name each part
        hit = {part for name in hit for part in name.split("+")}
    return redacted, sorted(hit)


def _marker_spans(spans: list[Span]) -> list[tuple[int, int]]:
    """Where each ``[REDACTED:...]`` marker lies in the redacted text."""
    markers, shift = [], 0
    for name, start, end in spans:
        size = len(name) + 11  # "[REDACTED:" + name + "]"
        markers.append((start + shift, start + shift + size))
        shift += size - (end - start)
    return markers


# The engine checks a redacted input again (a finding redaction could not mask blocks). In a
# large redacted text, whatever was not found before redaction can only be found where the
# text changed: every pattern that can reach into a ``[REDACTED:...]`` marker is shorter than
# WINDOW (unbounded tokens cannot hold its ``[``, ``:`` or ``]``), so only the neighbourhood
# of each marker is searched again, and the result is remembered for the re-check.
WINDOWED = 64 * 1024
WINDOW = 1024


def _recheck_near(text: str, names: tuple[str, ...], markers: list[tuple[int, int]]) -> None:
    found: list[Span] = []
    window_start = window_end = -1
    windows: list[tuple[int, int]] = []
    for start, end in markers:
        lo, hi = max(0, start - WINDOW), min(len(text), end + WINDOW)
        if lo <= window_end:
            window_end = hi
        else:
            if window_end >= 0:
                windows.append((window_start, window_end))
            window_start, window_end = lo, hi
    windows.append((window_start, window_end))
    for lo, hi in windows:
        for name, start, end in _search(text[lo:hi], names):
            if (start == 0 and lo > 0) or (end == hi - lo and hi < len(text)):
                return  # a finding touching the window's edge may be longer: search it all
            found.append((name, start + lo, end + lo))
    _remember(names, text, None, found)
