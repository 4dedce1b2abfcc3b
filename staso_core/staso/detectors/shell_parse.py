"""tree-sitter-bash, loaded on first use and run under a work budget, and a linear scan of
bash's quoting state so a long text can be cut where a cut changes nothing.

The budget counts work, not time: parser operations (the progress callback fires every ~100
of them) plus a charge per byte fed to the parser, shared by every parse made for one string
and for one whole evaluation. A verdict therefore does not depend on how busy the machine is.
tree-sitter-bash is quadratic on long runs of pipes and redirections in one statement (4 KiB
of ``a|`` takes ~65 ms for only ~340 operations), so text with many such dense runs is
refused before it is parsed (``dense``). A wall-clock backstop stays, far above what honest
input needs (honest parses spend the whole work budget in ~25 ms; the backstop is 250 ms per
evaluation), only against inputs slow in a way nobody has found yet. A cancelled parse
returns None and the caller fails closed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

# Work units: one per parser progress callback (~12 µs of parser work on ordinary shell
# text), one per BYTES_PER_OP bytes parsed, and PARSE_OPS for starting a parse at all (a
# short string's parse costs ~50 µs before the parser reports any progress: without this
# charge, thousands of short strings would pass the evaluation's budget almost free).
MAX_OPS = 2000
BYTES_PER_OP = 256
PARSE_OPS = 4
# ... and for all the strings of one tool input together (a megabyte split into thousands of
# short commands would otherwise cost thousands of parses): see ``evaluation``.
MAX_EVALUATION_OPS = 3000
# Wall-clock backstops against slow paths not yet found, far above what the work budgets
# allow (tens of ms): a verdict must come from counted work, not from the machine's load.
# At 0.25 s a garbage-collection pause on a busy machine turned an 8 ms honest script into
# "dangerous".
MAX_SECONDS = 2.0
MAX_EVALUATION_SECONDS = 2.0
# The quoting scan: tokens (quotes, escapes, substitutions) it may step over per string.
MAX_SCAN_TOKENS = 60000

# One parser per thread: a tree-sitter Parser keeps the state of its last parse (a cancelled
# one resumes unless reset), so two threads sharing one (the server's and the embedded
# client's evaluation pools) would read each other's input.
_LOCAL = threading.local()


def _parser() -> Parser:
    parser: Parser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        import tree_sitter
        import tree_sitter_bash

        parser = _LOCAL.parser = tree_sitter.Parser(
            tree_sitter.Language(tree_sitter_bash.language()))
    return parser


class Budget:
    """Parser work shared by every parse made for one call, nested strings included, and
    counted against the evaluation's budget too when one is open."""

    __slots__ = ("deadline", "ops", "outer")

    def __init__(self, ops: int = MAX_OPS, seconds: float = MAX_SECONDS) -> None:
        self.ops = ops
        self.deadline = time.perf_counter() + seconds
        self.outer = _EVALUATION.get()

    def spend(self, ops: int = 1) -> bool:
        """Count ``ops`` units of work; True once this budget or the evaluation's is spent."""
        self.ops -= ops
        if self.outer is not None:
            self.outer.ops -= ops
        return self.spent()

    def spent(self) -> bool:
        outer = self.outer
        return self.ops < 0 or time.perf_counter() > self.deadline or \
            (outer is not None and outer.spent())


_EVALUATION: ContextVar[Budget | None] = ContextVar("staso_shell_evaluation", default=None)


def open_evaluation() -> Token[Budget | None]:
    """Open the evaluation's budget (see ``evaluation``); close it with the token."""
    return _EVALUATION.set(Budget(MAX_EVALUATION_OPS, MAX_EVALUATION_SECONDS))


def close_evaluation(token: Token[Budget | None]) -> None:
    _EVALUATION.reset(token)


@contextmanager
def evaluation() -> Iterator[None]:
    """One budget for every shell parse of one policy evaluation, whatever number of strings
    the tool input is split into; past it, the detector fails closed (judges dangerous)."""
    token = _EVALUATION.set(Budget(MAX_EVALUATION_OPS, MAX_EVALUATION_SECONDS))
    try:
        yield
    finally:
        _EVALUATION.reset(token)


# 24 pipes or redirections in one line, at most 12 characters apart: where tree-sitter-bash
# turns quadratic. A few such runs in one piece are refused (the caller fails closed).
_DENSE = re.compile(r"[|>](?:(?:[^\n|>]|\\\n){0,12}[|>]){23}")
MAX_DENSE = 3


def dense(source: str) -> bool:
    """True when ``source`` holds more long runs of pipes/redirections than a parse affords."""
    if source.count("|") + source.count(">") < 24 * (MAX_DENSE + 1):
        return False
    return any(n >= MAX_DENSE for n, _ in enumerate(_DENSE.finditer(source)))


def parse(source: bytes, budget: Budget) -> Node | None:
    """Root node of ``source``, or None when the budget ran out before the parse finished."""
    if budget.spend(PARSE_OPS + len(source) // BYTES_PER_OP):
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


# ---------------------------------------------------------------------------------------
# Quoting state. Frames: ' " $' (quotes), $( ( ` (command text), ${ (parameter), << (a heredoc
# body). Between two tokens the state is constant, so the scan steps from token to token with
# C-level searches and costs one Python step per quote or substitution, not per character.

_CODE_TOKEN = re.compile(r"""'[^']*'|"[^"\\`$]*"|['"`()]|\\[\s\S]?|\$[('{]|<<<|<<-?"""
                         r"""|#(?<![^\s;&|()<>]#)""")
_CODE_TOKEN_NL = re.compile(_CODE_TOKEN.pattern + r"|\n")
_DQ_TOKEN = re.compile(r"""["`]|\\[\s\S]?|\$[({]""")
_ANSI_TOKEN = re.compile(r"\\[\s\S]?|'")
_BRACE_TOKEN = re.compile(r"""'[^']*'|"[^"\\`$]*"|['"`}]|\\[\s\S]?|\$[('{]""")
_HEREDOC_WORD = re.compile(r"""[ \t]*(?:'([^'\n]*)'|"([^"\n]*)"|\\?([^\s;&|<>()'"`]+))""")
_CODE_FRAMES = frozenset({"$(", "(", "`"})
_CLOSERS = {"'": "'", '"': '"', "$'": "'", "$(": ")", "(": ")", "`": "`", "${": "}"}
HEAD_CAP = 512


class ScanBudgetSpent(Exception):
    """The quoting scan stepped over more tokens than it may: the caller fails closed."""


Frame = tuple[str, int, str, str]  # kind, where its opener starts, end pattern, reopening


class Quoting:
    """Bash's quoting state along ``text``, scanned forward once, on demand.

    After ``advance(limit)``, ``last_clean`` is the last line end before ``limit`` where bash
    is back at the top level (no quote, substitution or heredoc open, the line not ending in
    ``|``, ``&&`` or ``|&``), and ``stack`` the frames open on [``gap``, ``limit``].
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0          # everything before pos is scanned
        self.gap = 0          # ``stack`` holds on [gap, pos)
        self.stack: list[Frame] = []
        self.pending: list[tuple[str, bool, str]] = []  # heredocs: word, <<-, reopening text
        self.last_clean = -1
        self.lo = 0
        # the last line end at or after ``lo`` and the frames open there
        self.snap: tuple[int, tuple[Frame, ...]] = (-1, ())
        self.tokens = 0

    def advance(self, limit: int, lo: int = 0) -> None:
        text = self.text
        limit = min(limit, len(text))
        self.lo = lo
        while self.pos < limit:
            self.tokens += 1
            if self.tokens > MAX_SCAN_TOKENS:
                raise ScanBudgetSpent
            stack = self.stack
            kind = stack[-1][0] if stack else ""
            start = self.pos
            if kind in ("'", "<<"):
                if kind == "'":
                    end = text.find("'", start, limit)
                    close = end + 1
                else:
                    found = _heredoc_end(text, stack[-1][2], start, limit)
                    end, close = found if found else (-1, -1)
                self._snap(start, limit if end == -1 or end >= limit else end)
                if end == -1 or end >= limit:
                    self.pos = limit
                    return
                stack.pop()
                self.pos = self.gap = close
                if kind == "<<" and self.pending:
                    self._open_heredoc(close)
                continue
            if kind == '"':
                m = _DQ_TOKEN.search(text, start, limit + 2)
            elif kind == "$'":
                m = _ANSI_TOKEN.search(text, start, limit + 2)
            elif kind == "${":
                m = _BRACE_TOKEN.search(text, start, limit + 2)
            else:  # endpos: never search past the limit (a text without tokens is searched once)
                m = (_CODE_TOKEN_NL if self.pending else _CODE_TOKEN).search(text, start,
                                                                              limit + 2)
            stop = limit if m is None or m.start() >= limit else m.start()
            if not stack and not self.pending:
                self._clean(start, stop)
            self._snap(start, stop)
            if stop == limit:
                self.pos = limit
                return
            assert m is not None
            tok, end = m.group(), m.end()
            if (end > limit or end == limit + 2) and len(tok) > 1 and tok[0] in "'\"":
                tok, end = tok[0], m.start() + 1  # a whole string past limit: open it only
            self.pos = self.gap = end
            self._token(tok, m.start(), end)

    def _snap(self, a: int, b: int) -> None:
        if b > self.lo:
            nl = self.text.rfind("\n", max(a, self.lo), b)
            if nl != -1:
                if len(self.stack) > 64:
                    raise ScanBudgetSpent  # no honest text nests so deep
                self.snap = (nl, tuple(self.stack))

    def _clean(self, a: int, b: int) -> None:
        """Note the last line end in the top-level stretch [a, b) that a cut may follow."""
        text = self.text
        for _ in range(4):
            nl = text.rfind("\n", a, b)
            if nl == -1:
                return
            line = text[text.rfind("\n", 0, nl) + 1:nl].rstrip(" \t\r")
            if not line.endswith(("|", "&&", "|&")):
                self.last_clean = max(self.last_clean, nl)
                return
            b = nl

    def _token(self, tok: str, at: int, end: int) -> None:
        stack = self.stack
        kind = stack[-1][0] if stack else ""
        c = tok[0]
        if c == "\\" or (len(tok) > 1 and c in "'\"" and tok[-1] == c):
            return  # an escape, or a whole simple quoted string
        if tok == "\n":
            self._open_heredoc(end)
            return
        if c == "#":
            nl = self.text.find("\n", end)
            self.pos = self.gap = len(self.text) if nl == -1 else nl
            return
        if tok in ("<<", "<<-"):
            m = _HEREDOC_WORD.match(self.text, end)
            if m:
                word = next(g for g in m.groups() if g is not None)
                self.pending.append((word, tok == "<<-", self.text[self.text.rfind(
                    "\n", 0, at) + 1:at] + tok + "'" + word + "'"))
                self.pos = self.gap = m.end()
            return
        if tok == "<<<":
            return
        if (kind == '"' and c == '"') or (kind == "$'" and c == "'") or \
                (kind == "${" and c == "}") or (kind == "`" and c == "`"):
            stack.pop()
            return
        if c == ")":
            if kind in ("$(", "("):
                stack.pop()
            return
        if len(stack) >= 64:
            raise ScanBudgetSpent  # no honest text nests so deep
        stack.append((tok, at, "", tok))

    def _open_heredoc(self, body: int) -> None:
        word, dash, head = self.pending.pop(0)
        pattern = ("\t*" if dash else "") + re.escape(word)
        if len(head) > HEAD_CAP:
            head = ": <<'" + word + "'"
        self.stack.append(("<<", body, pattern, head + "\n" + word + "\n"))

    def reopen(self, stack: tuple[Frame, ...]) -> tuple[str, str]:
        """Text that reopens the frames of ``stack`` before a piece, and text that closes them
        after a piece."""
        if not stack:
            return "", ""
        text = self.text
        first = stack[0][1]
        line = text.rfind("\n", 0, first) + 1
        if stack[0][0] == "<<":
            line = -1
        heads = []
        for n, (kind, at, _, reopen) in enumerate(stack):
            if kind == "<<":
                heads.append(reopen[:reopen.index("\n") + 1])
            elif n == 0 and line >= 0 and at - line <= HEAD_CAP:
                heads.append(text[line:at] + kind)
            else:
                heads.append(kind)
        closers = []
        for kind, _, _, reopen in reversed(stack):
            closers.append(reopen[reopen.index("\n"):] if kind == "<<" else _CLOSERS[kind])
        return "".join(heads), "".join(closers)


def _heredoc_end(text: str, pattern: str, start: int, limit: int) -> tuple[int, int] | None:
    m = re.compile("^" + pattern + "$", re.M).search(text, start, limit)
    if m is None or (m.end() == limit < len(text) and text[limit] != "\n"):
        return None  # not ended before limit (or only a prefix of a longer line)
    return m.start(), m.end()
