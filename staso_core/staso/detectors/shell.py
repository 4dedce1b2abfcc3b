"""Dangerous shell commands, judged on tree-sitter-bash's parse tree.

Caught: recursive rm of /, ~, $HOME or a top-level system tree (and any --no-preserve-root);
find over those with -delete or -exec rm; dd, mkfs, shred, wipefs, cp, tee or a redirection
onto a block device; recursive chmod to a world-writable mode or chown of those trees; fork
bombs; a download or a decoder piped into a shell or interpreter, ``bash <(curl ...)``,
``sh -c "$(curl ...)"``; psql/mysql/sqlite3 given destructive SQL (judged by the SQL
detector). Wrappers are peeled off recursively (sudo, doas, env, nice, nohup, timeout, time,
exec, command, xargs, stdbuf, ionice, chroot, ...), and code held in strings is parsed again:
``bash -c``, ``eval``, ``su -c``, ``ssh host '...'``, ``watch``, ``python -c "os.system(...)"``,
heredocs and ``echo ... |`` into a shell or SQL client. Quotes and backslashes inside command
names (``r''m``, ``\\rm``) are resolved as the shell would.

Not caught: commands assembled at run time from variables the text does not assign
(``$a$b -rf /``), or fetched and run in two separate steps. Text that mentions a command
inside a sentence ("never run rm -rf / at work") is prose; a line that *starts* with the
command is a command, wherever it appears.

Linear time: a C-level search for the command names that can be dangerous (allowing quotes
and backslashes between their letters) skips almost every string without parsing. Text that
has one is cut into pieces of about ``PIECE`` characters at line ends where a linear scan of
bash's quoting state (``shell_parse.Quoting``) says the shell is back at the top level; a
construct longer than a piece is cut inside and reopened with the line that opened it. Only
pieces holding a candidate are parsed.
Every parse shares one work budget (parser operations and bytes; a clock only as a far
backstop), and so does
every string parsed again inside (``bash -c``), nested at most ``MAX_DEPTH`` deep. When the
budget runs out, or nesting goes deeper, before a verdict is reached, the text is judged
dangerous: the detector fails closed, it never allows by giving up. Any internal error also
answers dangerous.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

from . import shell_parse
from .shell_rules import (
    DYNAMIC,
    NETWORK_CLIENTS,
    Cmd,
    Dangerous,
    basename,
    is_block_device,
    judge_argv,
)

if TYPE_CHECKING:
    from tree_sitter import Node

PIECE = 4096
MAX_DEPTH = 12



def _word(name: str) -> re.Pattern[str]:
    # Starts with the literal so the regex engine scans for it at C speed; the lookbehind
    # after it checks the word boundary (``git-rm`` and ``form`` are not ``rm``).
    return re.compile(re.escape(name) + r"(?<![\w-]" + re.escape(name) + r")(?![\w-])")


def _words(*names: str) -> tuple[re.Pattern[str], ...]:
    return tuple(_word(n) for n in names)


_RECURSIVE = _words("rm", "chmod", "chown", "chgrp")
_FIND = _word("find")
_PIPED = _words("curl", "wget", "fetch", "aria2c", "http", "https", "lwp-request", "GET",
                "wget2", "xh", "curlie", "base64", "xxd", "openssl", "uudecode")
_SQL = _words("psql", "mysql", "mariadb", "sqlite3", "sqlite", "duckdb")
_NETWORK = _words("nc", "ncat", "netcat", "socat", "telnet")
_FLAG_R = re.compile(r"-[a-zA-Z]*[rR]")
_DYNAMIC_NAME = re.compile(r"\$\S*\s+(?:-\S+\s+)*-[a-zA-Z]*[rR][a-zA-Z]*\s+[/~$]")
_FUNCTION = re.compile(r"\(\s*\)\s*\{")


def _suspicious(text: str) -> bool:
    """Cheap test that ``text`` may hold a dangerous command; every check is a C-level scan.

    Quotes and backslashes are dropped first, as the shell drops them from ``r''m``.
    """
    if "$'" in text:  # ANSI-C quoting can spell any name
        return True
    n = text
    if "'" in n or '"' in n or "\\" in n:
        n = n.replace("'", "").replace('"', "").replace("\\", "")
    if "/dev/" in n or "dropdb" in n or "mysqladmin" in n or ("--delete" in n and "rsync" in n):
        return True
    if ("sql" in n or "mariadb" in n or "duckdb" in n) and any(w.search(n) for w in _SQL):
        return True
    if "-" in n:
        if _FLAG_R.search(n) and (any(w.search(n) for w in _RECURSIVE)
                                  or ("$" in n and _DYNAMIC_NAME.search(n) is not None)):
            return True
        if ("-delete" in n or "-exec" in n or "-ok" in n) and _FIND.search(n):
            return True
        if ("-e" in n or "-c" in n) and any(w.search(n) for w in _NETWORK):
            return True  # nc -e /bin/sh host port
    if ("|" in n or "`" in n or "<(" in n or "$(" in n or "<<" in n) and \
            any(w.search(n) for w in _PIPED + _NETWORK):
        return True
    if ":" in n and ("xec:" in n or "ystem:" in n or "XEC:" in n or "YSTEM:" in n) and \
            any(w.search(n) for w in _NETWORK):
        return True  # socat TCP:host:4444 EXEC:/bin/bash
    return "(" in n and ("|" in n or "&" in n) and _FUNCTION.search(n) is not None


# A command of these cut off at the end of a piece may have had a dangerous argument after it.
_CUT_NAMES = frozenset({"rm", "chmod", "chown", "chgrp", "find", "dd", "shred", "wipefs", "cp",
                        "tee", "mkfs", "psql", "mysql", "mariadb", "sqlite3", "duckdb"})
_WRITES = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})


def is_dangerous_shell(text: str) -> bool:
    """True when ``text`` holds a shell command that can destroy or open up a machine."""
    if not isinstance(text, str) or len(text) < 4 or not _suspicious(text):
        return False  # no piece of a text can be suspicious when the whole is not
    if "\x00" in text:  # bash -c stops reading at a NUL: what comes before it still runs
        text = text.replace("\x00", "\n")
    try:
        _Judge(shell_parse.Budget()).text(text, 0)
    except Dangerous:
        return True
    except Exception:
        return True
    return False


def runs_destructive_sql(text: str) -> bool:
    """True when ``text`` is a shell command that hands a database client destructive SQL
    (``psql -c "DROP TABLE users"``, ``mysql -e ...``, ``sqlite3 app.db "DELETE ..."``): the
    destructive-SQL pack judges SQL wherever a command line carries it.

    A command line that names a client and is dangerous for any reason counts: the shell
    judgement is not split by cause, and such a line is blocked by either pack."""
    if not isinstance(text, str) or not ("sql" in text or "mariadb" in text or "duckdb" in text):
        return False
    n = text.replace("'", "").replace('"', "").replace("\\", "")
    return any(w.search(n) for w in _SQL) and is_dangerous_shell(text)


class _Judge:
    __slots__ = ("budget",)

    def __init__(self, budget: shell_parse.Budget) -> None:
        self.budget = budget

    def text(self, text: str, depth: int) -> None:
        """Raise Dangerous if any command in ``text`` is dangerous."""
        if depth > MAX_DEPTH and _suspicious(text):
            raise Dangerous
        if len(text) <= PIECE:
            if _suspicious(text):
                self.piece(text, depth, None)
            return
        quoting = shell_parse.Quoting(text)
        start, head = 0, ""
        try:
            while start < len(text):
                end, tail, next_head, cut_hazard = _cut(quoting, start)
                piece = text[start:end]
                if _suspicious(piece) or (head and _suspicious(head + piece)):
                    self.piece(head + piece + tail, depth,
                               len(head) + len(piece.rstrip(" \t\n;")) if cut_hazard else None)
                start, head = end, next_head
        except shell_parse.ScanBudgetSpent:
            raise Dangerous from None

    def piece(self, source_text: str, depth: int, cut: int | None) -> None:
        """Parse and judge one piece; ``cut`` is where it was cut off inside a command line
        (a command reaching there may have had more arguments after it: fail closed)."""
        if shell_parse.dense(source_text):
            raise Dangerous  # where tree-sitter-bash turns quadratic
        source = source_text.encode("utf-8", "surrogatepass")
        root = shell_parse.parse(source, self.budget)
        if root is None:
            raise Dangerous
        if cut is not None:
            cut = len(source_text[:cut].encode("utf-8", "surrogatepass"))
        _Walk(self, depth, cut).run(root)
        if cut is not None and root.has_error and \
                _suspicious(source_text[source_text.rfind("\n", 0, len(source_text) - 1) + 1:]):
            raise Dangerous  # a construct left open at the cut may hide one

    def sql(self, sql: str) -> None:
        from . import sql as sql_detector

        if sql_detector.is_destructive_sql(sql):
            raise Dangerous


def _cut(quoting: shell_parse.Quoting, start: int) -> tuple[int, str, str, bool]:
    """Where the piece starting at ``start`` ends, text closing what is open there, text
    reopening it before the next piece, and whether the cut may split a command.

    A piece ends at the last line end in its second half where bash is at the top level; when
    there is none (a quoted string or heredoc longer than that), at a line end (else a space)
    inside the open construct, which the next piece reopens with the line that opened it."""
    text = quoting.text
    hi = start + PIECE
    if hi >= len(text):
        return len(text), "", "", False
    lo = start + PIECE // 2
    quoting.advance(hi, lo)
    if quoting.last_clean >= lo:
        return quoting.last_clean + 1, "", "", False
    nl, stack = quoting.snap
    hazard = not stack  # a top-level line that goes on (``|`` at its end)
    if nl < lo:  # no line end in the window: cut at a space inside a line
        stack, hazard = tuple(quoting.stack), True
        if quoting.gap >= hi:  # a comment or heredoc word running past hi
            nl = quoting.gap - 1
        else:
            lo = max(quoting.gap, lo)
            nl = max(text.rfind(" ", lo, hi), text.rfind(";", lo, hi))
            nl = hi - 1 if nl == -1 else nl
    cut = nl + 1
    head, tail = quoting.reopen(stack)
    return cut, tail, head, hazard


class _R:
    """A finished node: its word value (DYNAMIC where run-time), whether a download runs inside
    it, and the command it stands for (commands, pipelines, redirected statements)."""

    __slots__ = ("cmd", "dl", "kind", "names", "text")

    def __init__(self, kind: str, text: str = "", dl: bool = False, cmd: Cmd | None = None,
                 names: tuple[str, ...] = ()) -> None:
        self.kind, self.text, self.dl, self.cmd, self.names = kind, text, dl, cmd, names


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_DQ_ESCAPE = re.compile(r"\\([$`\"\\\n])")
_DYNAMIC_NODES = frozenset({"command_substitution", "process_substitution",
                            "arithmetic_expansion"})
_CONTAINERS = frozenset({"program", "list", "compound_statement", "subshell", "ERROR",
                         "do_group", "if_statement", "while_statement", "for_statement",
                         "else_clause", "elif_clause", "case_item", "negated_command"})


class _Walk:
    """One post-order pass over a parse tree, iterative so depth costs no recursion."""

    __slots__ = ("counter", "cut_at", "depth", "env", "judge", "spawns")

    def __init__(self, judge: _Judge, depth: int, cut_at: int | None) -> None:
        self.judge, self.depth, self.cut_at = judge, depth, cut_at
        self.env: dict[str, str] = {}
        self.spawns: dict[str, int] = {}  # command name -> when it was last run in the background
        self.counter = 0

    def run(self, root: Node) -> None:
        stack: list[tuple[Node, list[Node], list[_R], int]] = [(root, root.children, [], 0)]
        index = [0]
        steps = 0
        while stack:
            steps += 1
            if steps & 1023 == 0 and self.judge.budget.spent():
                raise Dangerous  # out of budget before a verdict: fail closed
            node, kids, results, seq = stack[-1]
            i = index[-1]
            if i < len(kids):
                index[-1] = i + 1
                child = kids[i]
                stack.append((child, child.children, [], self.counter))
                index.append(0)
                continue
            stack.pop()
            index.pop()
            result = self.finish(node, results, seq)
            if stack:
                stack[-1][2].append(result)

    def _spawn(self, names: tuple[str, ...]) -> None:
        for n in names:
            self.counter += 1
            self.spawns[n] = self.counter

    def finish(self, node: Node, kids: list[_R], seq: int) -> _R:
        kind = node.type
        if not kids:
            raw = (node.text or b"").decode("utf-8", "replace")
            if kind == "word":
                return _R(kind, _ESCAPE.sub(r"\1", raw))
            if kind == "raw_string":
                return _R(kind, raw[1:-1])
            if kind == "string_content":
                return _R(kind, _DQ_ESCAPE.sub(r"\1", raw))
            if kind == "ansi_c_string":
                return _R(kind, _ansi_c(raw[2:-1]))
            return _R(kind, raw)
        dl = any(k.dl for k in kids)
        if kind in ("string", "translated_string", "concatenation"):
            return _R(kind, "".join(k.text for k in kids if k.kind not in ('"', '$"')), dl)
        if kind in ("simple_expansion", "expansion"):
            name = next((k.text for k in kids if k.kind in ("variable_name",
                                                            "special_variable_name")), "")
            value = "~" if name == "HOME" else self.env.get(name, DYNAMIC)
            return _R(kind, value, dl)
        if kind in _DYNAMIC_NODES:
            return _R(kind, DYNAMIC, dl)
        if kind == "variable_assignment":
            if len(kids) >= 3 and kids[1].kind == "=":
                self.env[kids[0].text] = kids[2].text
            return _R(kind, "", dl)
        if kind == "command_name":
            return _R(kind, kids[0].text, dl)
        if kind == "command":
            return self.command(node, kids)
        if kind == "file_redirect":
            op = next((k.kind for k in kids if k.kind in _WRITES), None)
            if op and is_block_device(kids[-1].text):
                raise Dangerous
            if any(k.text.startswith(("/dev/tcp/", "/dev/udp/")) for k in kids):
                raise Dangerous  # bash -i >& /dev/tcp/host/port: a shell on a socket
            return _R(kind, "", dl)
        if kind == "heredoc_redirect":
            body = next((k.text for k in kids if k.kind == "heredoc_body"), "")
            return _R(kind, body, dl)
        if kind == "herestring_redirect":
            return _R(kind, kids[-1].text, dl)
        if kind == "heredoc_body":
            return _R(kind, "".join(k.text for k in kids), dl)
        if kind == "redirected_statement":
            stmt = kids[0]
            for k in kids[1:]:
                if k.kind in ("heredoc_redirect", "herestring_redirect") and stmt.cmd:
                    self.feed(stmt.cmd, k.text)
            return _R(kind, "", dl, stmt.cmd, stmt.names)
        if kind == "pipeline":
            return self.pipeline(kids)
        if kind == "function_definition":
            name = kids[0].text if kids else ""
            if name and self.spawns.get(name, -1) > seq:  # runs itself in a pipe or with &
                raise Dangerous
            return _R(kind)
        if kind in _CONTAINERS:
            for n, k in enumerate(kids):
                if k.kind == "&" and n:
                    self._spawn(kids[n - 1].names)
            last = kids[-1]
            return _R(kind, "", dl, last.cmd if len(kids) == 1 else None,
                      last.names if len(kids) == 1 else ())
        return _R(kind, "".join(k.text for k in kids), dl)

    def command(self, node: Node, kids: list[_R]) -> _R:
        words = [k for k in kids if k.kind not in ("variable_assignment", "file_redirect",
                                                    "herestring_redirect", "heredoc_redirect")]
        if not words:
            return _R("command")
        argv = [w.text for w in words]
        dls = [w.dl for w in words]
        cmd = judge_argv(argv, dls, self.sub_text, self.judge.sql)
        for k in kids:
            if k.kind == "herestring_redirect":
                self.feed(cmd, k.text)
        if self.cut_at is not None and node.end_byte >= self.cut_at and cmd.argv and \
                (argv[0].rsplit("/", 1)[-1] in _CUT_NAMES or _suspicious(" ".join(argv))):
            raise Dangerous  # its arguments may go on past the piece: fail closed
        name = argv[0].rsplit("/", 1)[-1]
        return _R("command", "", any(dls) or cmd.download or cmd.decoder, cmd, (name,))

    def pipeline(self, kids: list[_R]) -> _R:
        stages = [k for k in kids if k.cmd is not None or k.kind in ("command",
                                                                       "redirected_statement")]
        names: list[str] = []
        source = shell_before = False
        prev: Cmd | None = None
        for stage in stages:
            names.extend(stage.names)
            cmd = stage.cmd
            if cmd is None:
                prev = None
                continue
            if cmd.stdin_code is not None and source:
                raise Dangerous
            if shell_before and cmd.argv and basename(cmd.argv[0]) in NETWORK_CLIENTS:
                raise Dangerous  # ... | sh -i | nc host port: a shell's output to the network
            shell_before = shell_before or cmd.stdin_code == "sh"
            if prev is not None and prev.emits is not None:
                self.feed(cmd, prev.emits)
            if prev is not None and cmd.xargs is not None:
                extra = [a for a in prev.argv[1:] if not a.startswith("-")]
                judge_argv(cmd.xargs + extra, [False] * (len(cmd.xargs) + len(extra)),
                           self.sub_text, self.judge.sql)
            source = source or cmd.download or cmd.decoder
            prev = cmd
        self._spawn(tuple(names))
        return _R("pipeline", "", source or any(k.dl for k in kids), prev, tuple(names))

    def feed(self, cmd: Cmd, text: str) -> None:
        """Judge ``text`` arriving on the standard input of ``cmd``."""
        if cmd.stdin_code in ("sh", "code"):
            self.sub_text(text)
        elif cmd.stdin_code == "sql":
            self.judge.sql(text)

    def sub_text(self, text: str) -> None:
        self.judge.text(text, self.depth + 1)


def _ansi_c(body: str) -> str:
    try:
        return codecs.decode(body.encode("latin-1", "backslashreplace"), "unicode_escape")
    except (UnicodeDecodeError, ValueError):
        return DYNAMIC
