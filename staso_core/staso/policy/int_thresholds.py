"""The commonest condition, decided without converting the input into CEL: one field of
the input compared with a whole number (``has(tool_input.amount) && tool_input.amount >
1000``, or the comparison alone), when the field holds a plain ``int``.

Why: the CEL binding converts a value by trying types one after another, and each miss
formats an exception. Putting ``{"amount": 50}`` into a CEL context and running two such
conditions took ~4 µs of a ~38 µs embedded ``guard()`` on the 50-rule benchmark, ~2.5 of
it the conversion; comparing an int in Python takes ~0.2.

CEL stays the judge of everything else. ``int_threshold`` answers only for a condition
whose whole source is one of the two shapes (read with a strict pattern of CEL's own
syntax: ASCII names, a decimal literal), and then only when the field is absent under
``has()`` (false) or holds an ``int`` that is not a bool and fits CEL's 64-bit int;
anything else (a float, a string, a bool, a number past 64 bits, an absent field the
condition reads without ``has()``, an input that is a ``dict`` subclass) gets None, and the
engine runs the CEL program as before. tests/test_int_thresholds.py compares the two on
generated values and sources.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

_WS = r"[ \t\r\n]*"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SHAPE = re.compile(
    rf"{_WS}(?:has\({_WS}tool_input{_WS}\.{_WS}(?P<tested>{_NAME}){_WS}\){_WS}&&{_WS})?"
    rf"tool_input{_WS}\.{_WS}(?P<field>{_NAME}){_WS}(?P<op><=|>=|==|!=|<|>){_WS}"
    rf"(?P<number>-?(?:0|[1-9][0-9]*)){_WS}")
_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne}
# CEL's words, which cannot name a field after a dot in this shape
_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue",
                       "else", "for", "function", "if", "import", "let", "loop", "package",
                       "namespace", "return", "var", "void", "while"})
_INT64 = range(-(2 ** 63), 2 ** 63)

# True or False where the condition is decided; None: run the CEL program
Threshold = Callable[[dict[str, Any]], "bool | None"]


def int_threshold(source: str | None) -> Threshold | None:
    """A Python test deciding the condition ``source`` where it can, or None when the
    source is not one of the two shapes."""
    if not source:
        return None
    found = _SHAPE.fullmatch(source)
    if found is None:
        return None
    field, tested = found.group("field"), found.group("tested")
    if field in _RESERVED or (tested is not None and tested != field):
        return None
    digits = found.group("number")
    if len(digits) > 20:  # past int64 (CEL refuses the literal; int() has a length limit)
        return None
    number = int(digits)
    if number not in _INT64:
        return None
    compare = _OPERATORS[found.group("op")]
    guarded = tested is not None

    def decide(tool_input: dict[str, Any]) -> bool | None:
        if type(tool_input) is not dict:  # a subclass's own get() or [] could differ from
            return None  # what CEL reads through the binding: CEL decides
        value = tool_input.get(field, _ABSENT)
        if value is _ABSENT:
            return False if guarded else None  # (without has(): CEL's error says which)
        if type(value) is int and value in _INT64:
            return compare(value, number)
        return None
    return decide


_ABSENT = object()
