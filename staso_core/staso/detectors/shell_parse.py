"""tree-sitter-bash, loaded on first use and run under a work budget.

tree-sitter-bash is super-linear on some inputs (a 32 KiB run of ``a|`` takes seconds, 1 KiB
of ``{`>`` tens of milliseconds), so every parse is fed through a progress callback that
counts the parser's operations and cancels once the caller's budget is spent. A cancelled
parse returns None and the caller fails closed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

# Progress callbacks are ~20-50 µs of parser work apart on ordinary shell text; the clock is
# a backstop for inputs where the lexer (not counted as operations) does the work.
MAX_OPS = 1500
MAX_SECONDS = 0.03
# ... and for all the strings of one tool input together (a megabyte split into thousands of
# short commands would otherwise cost thousands of parses): see ``evaluation``.
MAX_EVALUATION_OPS = 6000
MAX_EVALUATION_SECONDS = 0.1

_PARSER: list[Parser] = []


def _parser() -> Parser:
    if not _PARSER:
        import tree_sitter
        import tree_sitter_bash

        _PARSER.append(tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language())))
    return _PARSER[0]


class Budget:
    """Parser work shared by every parse made for one call, nested strings included, and
    counted against the evaluation's budget too when one is open."""

    __slots__ = ("deadline", "ops", "outer")

    def __init__(self, ops: int = MAX_OPS, seconds: float = MAX_SECONDS) -> None:
        self.ops = ops
        self.deadline = time.perf_counter() + seconds
        self.outer = _EVALUATION.get()

    def spend(self) -> bool:
        """Count one parser operation; True once this budget or the evaluation's is spent."""
        self.ops -= 1
        if self.outer is not None:
            self.outer.ops -= 1
        return self.spent()

    def spent(self) -> bool:
        outer = self.outer
        return self.ops < 0 or time.perf_counter() > self.deadline or \
            (outer is not None and outer.spent())


_EVALUATION: ContextVar[Budget | None] = ContextVar("staso_shell_evaluation", default=None)


@contextmanager
def evaluation() -> Iterator[None]:
    """One budget for every shell parse of one policy evaluation, whatever number of strings
    the tool input is split into; past it, the detector fails closed (judges dangerous)."""
    token = _EVALUATION.set(Budget(MAX_EVALUATION_OPS, MAX_EVALUATION_SECONDS))
    try:
        yield
    finally:
        _EVALUATION.reset(token)


def parse(source: bytes, budget: Budget) -> Node | None:
    """Root node of ``source``, or None when the budget ran out before the parse finished."""
    if budget.spent():
        return None

    def read(offset: int, _point: Any) -> bytes:
        return source[offset:offset + 65536]

    def progress(*_: Any) -> bool:
        return budget.spend()

    parser = _parser()
    try:
        tree = parser.parse(read, progress_callback=progress)
    except ValueError:  # cancelled by the progress callback
        parser.reset()  # else the next parse would resume this one
        return None
    return tree.root_node if tree is not None else None
