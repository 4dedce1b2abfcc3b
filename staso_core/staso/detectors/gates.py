"""What a short text must hold before a built-in pack's detector can fire on it.

Each detector already starts with a cheap test of its own (a few substring checks or one
regex) and says no at once on a text that fails it. Run one after the other, four packs'
tests on every text of a call cost more than the rest of the engine's work together: ~20 µs
for the 50-rule benchmark's two short texts on the round-2 report machine. So each pack
also declares its test as a ``Gate``, and the engine joins those of the packs a tool's
rules use into one test (``joined``), made once per text: a text it rules out is handed
to none of those packs (``policy/engine.py``, ``_loud``).

A gate must let through every text its detector can fire on. Each is written from the
detector's own first test, and only ever wider:

- only plain ASCII ``str`` texts shorter than ``GATED_BELOW`` are judged by a gate at all;
  every other text goes to every detector as before: a ``Keyed`` text (judged with its
  key), a longer one, and any text with a non-ASCII character (``str.lower()`` can turn
  one into ASCII letters, as it does the Kelvin sign into "k");
- words are looked for in the lower-cased text, so a gate's word stands for a detector's
  test of that word in any case.

``tests/test_detector_gates.py`` checks, on the detector corpus, the attack cases and
generated texts, that no detector fires on a text its gate rules out.

One thing can still differ, as it already differed with the other texts of a call: the PII
pack searches 64 or more texts in joined chunks, and past 200 IBANs in one chunk
(``pii_numbers.MAX_STDNUM``) judges the rest by checksum alone; texts the gates leave out
move the chunks' bounds, so a value with a valid checksum that python-stdnum refuses may be
redacted in one case and not the other. The action is the same: 200 IBANs make the pack
fire either way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .pii import _NUMBER_PRECHECKS_JOINED
from .secrets_scan import _HINT_LEADS

# Below PII's short-text gate (secrets_scan.HOLDS_FROM), and short enough that a joined
# test (a regex search of ~70 words) costs less than the packs' own tests it spares.
GATED_BELOW = 256


@dataclass(frozen=True)
class Gate:
    """A detector fires only on a text that holds one of ``chars``, one of ``words`` once
    lower-cased, or a match of one of ``shapes`` (regular expressions)."""

    chars: str = ""
    words: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(word != word.lower() or not word.isascii() for word in self.words):
            raise ValueError("a gate's words are lower-case ASCII")


# shell.is_dangerous_shell: judge_windows needs "iex" or one of ":", "%", "\", "$home";
# _suspicious drops quotes and backslashes first (so "d'r'opdb" counts: a quote is in
# ``chars``), then needs "$'", one of its names, or "-", "|", "`", "<", "$(", ":", "(".
SHELL = Gate(chars="-|`<$:(%\\'\"/",
             words=("iex", "dropdb", "mysqladmin", "rmtree", "remove_tree", "removeall",
                    "rmsync", "rm_rf", "sql", "mariadb", "duckdb", "clickhouse", "pgcli"))
# sql.is_destructive_sql needs one of its keywords in the lower-cased text, and
# shell.runs_destructive_sql one of the client names
SQL = Gate(words=("drop", "delete", "update", "truncate", "alter", "sql", "mariadb",
                  "duckdb"))
# paths._may_name: every protected name holds one of these
PATHS = Gate(chars="/.\\%~", words=("id_",))
# pii._gate on a short text: an e-mail's "@", a secret's lead (secrets_scan.may_hold_secret:
# its leads in the lower-cased text, or 8 digits and a ":"), or one of the number finders'
# pre-checks (pii._PRECHECKS, each a shape every finding of its finder holds), joined. Not
# their common first test (``_NUMBERS_SHAPE``: four digits in a row): that let through every
# order number ("refund #1234"), and then all four packs ran on it (~7 µs a call of the
# 50-rule benchmark's inputs on the round-2 report machine)
PII = Gate(chars="@", words=tuple(sorted(_HINT_LEADS)),
           shapes=(_NUMBER_PRECHECKS_JOINED.pattern, r":(?<=\d{8}:)"))


def joined(gates: Iterable[Gate]) -> Callable[[str], bool]:
    """One test that lets a text through when any of ``gates`` would: a search of the
    characters, one of a trie of the words, one per shape, instead of each pack's own
    tests. Made once for each set of gates (tool names can be model-made, and building
    the trie cost ~0.8 ms of a new tool's first call)."""
    return _joined(frozenset(gates))


@functools.lru_cache(maxsize=64)
def _joined(gates: frozenset[Gate]) -> Callable[[str], bool]:
    chars = "".join(sorted({c for gate in gates for c in gate.chars}))
    words = {word for gate in gates for word in gate.words}
    shapes = sorted({shape for gate in gates for shape in gate.shapes})
    in_chars = re.compile(f"[{re.escape(chars)}]").search if chars else _never
    in_words = re.compile(_trie(words)).search if words else _never
    # each shape searched alone: one led by a character or class is skipped to in C,
    # where an alternation of two is tried at every position (3x slower on 255 characters)
    in_shapes = [re.compile(shape).search for shape in shapes]

    def may_fire(text: str) -> bool:
        if in_chars(text) is not None or in_words(text.lower()) is not None:
            return True
        for search in in_shapes:  # noqa: SIM110 (a generator costs more than two searches)
            if search(text) is not None:
                return True
        return False
    return may_fire


def _never(text: str) -> None:
    return None


def _trie(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, branching on one character at a time: Python's
    regex engine tries each alternative at each position, and ~70 words in a flat
    alternation cost 2.6 µs on an 11-character text against 1.1 µs as a trie."""
    def branch(tails: list[str]) -> str:
        if "" in tails:  # a word ends here: finding it is enough
            return ""
        by_first: dict[str, list[str]] = {}
        for tail in tails:
            by_first.setdefault(tail[0], []).append(tail[1:])
        options = [re.escape(first) + branch(rest) for first, rest in sorted(by_first.items())]
        return options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"
    return branch(sorted(set(words)))
