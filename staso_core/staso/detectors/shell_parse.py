"""tree-sitter-bash, loaded on first use and run under a work budget.

tree-sitter-bash is super-linear on some inputs (a 32 KiB run of ``a|`` takes seconds, 1 KiB
of ``{`>`` tens of milliseconds), so every parse is fed through a progress callback that
counts the parser's operations and cancels once the caller's budget is spent. A cancelled
parse returns None and the caller fails closed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

# Progress callbacks are ~20-50 µs of parser work apart on ordinary shell text; the clock is
# a backstop for inputs where the lexer (not counted as operations) does the work.
MAX_OPS = 1500
MAX_SECONDS = 0.03

_PARSER: list[Parser] = []


def _parser() -> Parser:
    if not _PARSER:
        import tree_sitter
        import tree_sitter_bash

        _PARSER.append(tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language())))
    return _PARSER[0]


class Budget:
    """Parser work shared by every parse made for one call, nested strings included."""

    __slots__ = ("deadline", "ops")

    def __init__(self) -> None:
        self.ops = 0
        self.deadline = time.perf_counter() + MAX_SECONDS

    def spent(self) -> bool:
        return self.ops > MAX_OPS or time.perf_counter() > self.deadline


def parse(source: bytes, budget: Budget) -> Node | None:
    """Root node of ``source``, or None when the budget ran out before the parse finished."""
    if budget.spent():
        return None

    def read(offset: int, _point: Any) -> bytes:
        return source[offset:offset + 65536]

    def progress(*_: Any) -> bool:
        budget.ops += 1
        return budget.spent()

    parser = _parser()
    try:
        tree = parser.parse(read, progress_callback=progress)
    except ValueError:  # cancelled by the progress callback
        parser.reset()  # else the next parse would resume this one
        return None
    return tree.root_node if tree is not None else None
