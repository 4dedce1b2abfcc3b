"""A condition's source read as text, without a parser (cheap, and no parser to load on
the run-time path): where its strings end, and the conjuncts at its top level."""

from __future__ import annotations

import re
from collections.abc import Iterator

# what ``conjuncts`` must see at the top level: comments and strings (skipped), brackets,
# and the operators that bind looser than ``&&`` (``||``, the ternary's ``?``)
_LOGIC = re.compile(r"(?P<comment>//[^\n]*)"
                    r"|(?P<prefix>(?<!\w)[rRbB]{1,2})?(?P<quote>\"\"\"|'''|\"|')"
                    r"|(?P<open>[(\[{])|(?P<close>[)\]}])|(?P<and>&&)|(?P<loose>\|\||\?)")


def conjuncts(source: str) -> list[str] | None:
    """The parts of a condition joined by ``&&`` at its top level (``a && (b || c)``: ``a``
    and ``(b || c)``), each a condition of its own; None when an operator that binds looser
    (``||``, ``?:``, also the ``.?`` of optional fields) stands at the top level, where the
    parts would not be conjuncts. In CEL a false conjunct makes the whole false, whatever the
    others are, errors included (``Engine`` relies on it). Linear in the text."""
    parts, depth, start = [], 0, 0
    for found in tokens(source, _LOGIC):
        if found.group("open"):
            depth += 1
        elif found.group("close"):
            depth = max(depth - 1, 0)
        elif depth == 0 and found.group("loose"):
            return None
        elif depth == 0 and found.group("and"):
            parts.append(source[start:found.start()])
            start = found.end()
    parts.append(source[start:])
    return parts


def tokens(source: str, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """``pattern``'s matches in ``source``, in order, string literals stepped over whole: a
    match of its ``quote`` group (with an optional ``prefix``: ``r``, ``b``) skips to the
    string's end and is not yielded, so nothing inside a string is ever seen."""
    at = 0
    while (found := pattern.search(source, at)) is not None:
        at = found.end()
        if found.group("quote"):
            at = string_end(source, at, found.group("quote"),
                            "r" in (found.group("prefix") or "").lower())
        else:
            yield found


def string_end(source: str, at: int, quote: str, raw: bool) -> int:
    """Where a string literal that opened with ``quote`` just before ``at`` ends."""
    while at < len(source):
        if source.startswith(quote, at):
            return at + len(quote)
        at += 2 if source[at] == "\\" and not raw else 1
    return at


def uncommented(source: str) -> str:
    """``source`` with each comment made a space: what follows a comment reads as what
    follows its line (``tool_input.exists // note`` + newline + ``(x, ...)`` is a call of
    ``exists``, not a field of that name). A ``//`` inside a string is kept."""
    out, kept = [], 0
    for found in tokens(source, _LOGIC):
        if found.group("comment"):
            out.append(source[kept:found.start()])
            out.append(" ")
            kept = found.end()
    out.append(source[kept:])
    return "".join(out)
