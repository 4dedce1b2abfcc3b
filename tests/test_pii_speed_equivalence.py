"""The PII finders are searched in pieces for speed (led by a literal, split into branches, led
by the character before a number): each must find exactly what the one plain pattern it
stands for finds. The plain patterns below are the readable statement of what is found."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from staso.detectors import pii, secrets_scan
from staso.detectors.pii_numbers import leftmost

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-](?<![A-Za-z0-9._%+-].)[A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9-]{1,63}\.[A-Za-z0-9.-]{1,190}(?<=[A-Za-z]{2})(?![A-Za-z0-9-])")
_PHONE = re.compile(
    r"\+(?<![\w+]\+)(?:\d{7,15}(?!\w)|"
    r"\d{1,3}[ .-]?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]))"
    r"|\((?<![\w+]\()\d{3}\)\s?\d{3}[ .-]\d{4}(?![\w-])"
    r"|\d(?<![\w+]\d)\d\d[ .-]\d{3}[ .-]\d{4}(?![\w-])")
_PIECES = ["@", "a@b.co", "x.y+z@mail.example.org", "a" * 64, "a" * 65, ".com", "555-123-4567",
           "+1 (555) 123-4567", "(555) 123-4567", "+12025550143", "555 123 4567", "4111 1111",
           "4111111111111111", "CC4111111111111111", "0.4111111111111111", "DE89 3704 0044",
           "0532 0130 00", "gb82west12345698765432", "-", " ", ".", "+", "(", ")", "_", "\n",
           "é", "\u0663", "\uff14", "1", "12", "123", "x"]
texts = st.lists(st.sampled_from(_PIECES), max_size=14).map("".join)


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_email_phone_as_one_pattern(text: str) -> None:
    assert list(pii.emails(text)) == [m.span() for m in _EMAIL.finditer(text)]
    assert list(pii.phones(text)) == [m.span() for m in _PHONE.finditer(text)]


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab-c", max_size=30))
def test_leftmost_is_finditer_of_the_alternation(text: str) -> None:
    branches = ("a-?b", "b(?:-c)?a", "-c", "ca(?<=c.)b")
    got = [(start, m.end()) for start, m in
           leftmost([(re.compile(b), 0) for b in branches], text)]
    assert got == [m.span() for m in re.finditer("|".join(branches), text)]


@settings(max_examples=1000, deadline=None)
@given(texts)
def test_dense_and_sparse_card_searches_agree(text: str) -> None:
    """Cards are searched led by their first digit, or (in text dense with digits) by the
    character before them: both find the same."""
    from staso.detectors import pii_numbers as numbers

    def spans(dense: bool) -> list[tuple[int, int]]:
        out, pos = [], 0
        while (found := numbers._next_card(text, pos, dense)) is not None:
            out.append((found[0], found[1].end()))
            pos = found[0] + 1
        return out

    assert spans(True) == spans(False)


_KEY_PIECES = ["password", "pass", "pw", "pwd", "api_key", "api-key", "apikey", "db_pass",
               "database_pass", "client_secret", "secret", "token", "access_token", "key",
               "cookie", "contrasena", "pgpassword", "smtp_password", "x-api-key", "aws",
               "_", "-", " ", "=", ":", ": ", " is ", "\"", "'", "hunter2hunter2",
               "s3cr3tvalue99", "wjalrxutnfemi/k7mdeng/bpxrficyexamplekey", "a", "1", "\n"]
key_texts = st.lists(st.sampled_from(_KEY_PIECES), max_size=16).map("".join)


@settings(max_examples=3000, deadline=None)
@given(key_texts, st.sampled_from([secrets_scan.MAX_LEADS, 3]))
def test_keyword_patterns_tried_near_their_words_find_what_a_scan_finds(
        text: str, max_leads: int) -> None:
    # each pattern is tried only just before the words it needs (or, past MAX_LEADS words,
    # scanned): the matches must be the scan's
    low = text.encode("ascii", "replace").lower()
    saved, secrets_scan.MAX_LEADS = secrets_scan.MAX_LEADS, max_leads
    try:
        for pattern, leads in ((secrets_scan._KEYWORD, secrets_scan._KEYWORD_LEADS),
                               (secrets_scan._KEYWORD_INNER, secrets_scan._KEYWORD_LEADS),
                               *zip(secrets_scan._AWS_NAMED, secrets_scan._AWS_NAMED_LEADS,
                                    strict=True)):
            assert [m.span(0) for m in secrets_scan._near(pattern, low, leads)] == \
                [m.span(0) for m in pattern.finditer(low)]
    finally:
        secrets_scan.MAX_LEADS = saved
