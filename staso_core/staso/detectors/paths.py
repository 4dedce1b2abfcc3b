"""Protected paths: system configuration, devices, keys and credentials, secrets files, and
Windows system directories.

A path is judged after it is normalised the way the file system would see it: URL-decoded
(repeatedly, a bounded number of rounds), ``file://`` URLs opened up, ``~``, ``$HOME`` and
Windows environment variables expanded, ``//``, ``/./`` and ``..`` resolved with
``posixpath``/``ntpath`` (a relative climb such as ``../../etc/passwd`` is taken to reach the
root), ``/private/etc`` (macOS) and ``/mnt/c`` (WSL) mapped, Windows case folded.

Only tokens that name something protected-looking are normalised: one linear regex pass
finds such names, and each distinct token around them is judged once. At most
``MAX_TOKENS`` such tokens are looked at per string; a string with more counts as naming a
protected path (blocked, never allowed by giving up), so no input can make the check slow.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from itertools import product
from typing import Any
from urllib.parse import unquote, urlsplit

from .shell_rules import ansi_c

MAX_TOKENS = 20_000
DECODE_ROUNDS = 4

# Characters that end a path in free text, a command line or a JSON/YAML document.
_DELIMS = rb"\x00-\x20\x7f\"'`(),;<>|&=\[\]{}:"
_TOKEN_END = re.compile(rb"[" + _DELIMS + rb"]")
_LAST_DELIM = re.compile(rb"(?s:.*)[" + _DELIMS + rb"]")
# Names worth normalising a token for, on ASCII-lowercased bytes. Every branch starts with
# a literal character: only then does the regex engine skip, at C speed, every position
# whose character starts no branch (one branch led by a class like [/\\] makes it try every
# position, 6x slower). The look-ahead after a separator or dot rejects ``//`` and ``..``
# runs at once.
_ROOT_NAME = (rb"(?=[a-z0-9_])(?:(?:etc|boot|sys|proc|root|dev|windows|winnt|var|run)"
              rb"(?![a-z0-9_-])|[a-z0-9_]{1,6}~\d)")  # or an 8.3 short name: C:\WINDOW~1
_MARKER = re.compile(
    rb"/" + _ROOT_NAME + rb"|\\" + _ROOT_NAME +
    rb"|\.(?=[a-z_])(?:ssh|aws|gnupg|kube|docker|netrc|pgpass|npmrc|pypirc|git-credentials|"
    rb"azure|config/gcloud|env|htpasswd|[a-z]{0,6}_history|git[/\\]config|tfstate)"
    rb"|id_(?:rsa|dsa|ecdsa|ed25519)"
    rb"|%(?=[0-9a-fsw])(?:[0-9a-f]{2}|systemroot%|windir%)"  # any escape: %65tc is etc
    rb"|~root|physicaldrive|harddisk|globalroot")
_SCHEME_BEFORE = re.compile(rb"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{1,30}:\Z")
_DRIVE = re.compile(r"[a-z]:(?:[\\/]|$)")
# An administrative share, on this machine or another: the whole drive (\\host\c$\Windows)
_ADMIN_SHARE = re.compile(r"[\\/]{2}[^\\/]{1,255}[\\/]([a-z])\$(?=[\\/]|$)")
_TRAILING_DOTS = re.compile(r"(?<=[^/.])[. ]+(?:/|$)")
_SHORT_NAME = re.compile(r"([a-z0-9_]{1,6})~\d{1,3}")
_CLIMB = re.compile(r"(?:\.\.(?:/|\Z))*")

_ROOT_DIRS = frozenset({"etc", "boot", "sys", "proc", "root", "windows", "winnt"})
_SAFE_DEVICES = frozenset({"null", "zero", "stdin", "stdout", "stderr", "tty", "random",
                           "urandom", "fd", "full"})
_SERVICE_DIRS = (("var", "run", "secrets"), ("run", "secrets"), ("var", "lib", "postgresql"),
                 ("var", "lib", "mysql"), ("var", "run", "docker.sock"), ("run", "docker.sock"))
_SECRET_NAMES = frozenset({".ssh", ".aws", ".gnupg", ".netrc", ".pgpass", ".git-credentials",
                           "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_rsa.pub",
                           "id_dsa.pub", "id_ecdsa.pub", "id_ed25519.pub", ".htpasswd",
                           ".bash_history", ".zsh_history", ".sh_history", ".psql_history",
                           ".mysql_history", ".python_history", "terraform.tfstate",
                           "terraform.tfstate.backup"})
_HOME_SECRET_NAMES = frozenset({".kube", ".docker", ".npmrc", ".pypirc", ".azure", ".config"})
_HOME_PARENTS = frozenset({"home", "users"})
_ROOT_NAMES = _ROOT_DIRS | {"dev", "var", "run"}
# the names a glob is matched against: every name the judgement below looks at
_GLOB_NAMES = tuple(sorted(_ROOT_NAMES | _SECRET_NAMES | _HOME_SECRET_NAMES | _HOME_PARENTS | {
    "secrets", "lib", "postgresql", "mysql", "docker.sock", "private", "mnt", ".env", ".git",
    "config", "gcloud"}))
_ENV_TEMPLATES = frozenset({"example", "sample", "template", "dist", "tmpl", "defaults"})
_WINDOWS_VARS = (("%systemroot%", "c:\\windows"), ("%windir%", "c:\\windows"),
                 ("%systemdrive%", "c:"), ("%userprofile%", "c:\\users\\~"),
                 ("%homedrive%%homepath%", "c:\\users\\~"), ("%homepath%", "\\users\\~"),
                 ("%appdata%", "c:\\users\\~\\appdata\\roaming"),
                 ("%localappdata%", "c:\\users\\~\\appdata\\local"))
_HOME_VARS = ("${home}", "$home")


def is_protected_path(text: object) -> bool:
    """True when ``text`` names (or contains) a path to system config, keys or secrets.
    Anything but a string names no path: False."""
    if not isinstance(text, str) or not _may_name(text):
        return False
    return _stages([text], [MAX_TOKENS])


def protected_path_in_any(texts: Iterable[object]) -> bool:
    """``any(is_protected_path(t) for t in texts)``, judged a joined chunk at a time.

    A megabyte split over thousands of short values costs one pass of each stage per
    ``JOIN_CHARS`` instead of one per value. Joined by newlines, which end every token, word
    and line the stages look at, the texts show everything each shows alone (the shared
    work budget only runs out sooner); what a chunk shows is confirmed value by value."""
    chunk: list[str] = []
    size = 0
    for text in texts:
        if not isinstance(text, str) or not _may_name(text):
            continue
        chunk.append(text)
        size += len(text) + 1
        if size >= JOIN_CHARS:
            if _chunk_protected(chunk):
                return True
            chunk, size = [], 0
    return bool(chunk) and _chunk_protected(chunk)


JOIN_CHARS = 64 * 1024


def _chunk_protected(chunk: list[str]) -> bool:
    if not _stages(chunk, [MAX_TOKENS]):
        return False
    return len(chunk) == 1 or any(_stages([text], [MAX_TOKENS]) for text in chunk)


def _may_name(text: str) -> bool:
    """Every protected name holds one of these (see _MARKER)."""
    # (plain tests, not a generator: this runs once per value, thousands of times a call)
    return "/" in text or "." in text or "\\" in text or "%" in text or "~" in text or \
        "id_" in text.lower()


def _stages(texts: list[str], budget: list[int]) -> bool:
    """The names in ``texts`` (one, or several joined by newlines), then what a shell would
    read there: quotes and escapes inside a word taken out (/et''c, /"etc", /et\\c), globs
    matched against the protected names (/e?c, /[e]tc, /{etc,x}, .en?), and relative names
    after ``cd /`` (cd /; cat etc/shadow); those are never read as prose."""
    if _scan("\n".join(texts), budget, 0):
        return True
    read = [_unquoted(text) for text in texts]
    changed = [r for r, text in zip(read, texts, strict=True) if r is not text]
    if changed and _scan("\n".join(changed), budget, 0, prose=False):
        return True
    globbed = [r for r in read if "*" in r or "?" in r or "[" in r or "{" in r]
    if globbed and _globbed("\n".join(globbed), budget):
        return True
    # ``cd /`` reaches every word after it in its own text only: judged text by text
    return any(_after_cd_root(r, [budget[0]]) for r in read if "cd" in r or "CD" in r)


def _unquoted(text: str) -> str:
    """``text`` with quotes and escapes inside words taken out (``$'\\x2fetc'`` decoded to
    ``/etc``); ``text`` itself if none."""
    if not ("'" in text or '"' in text or "\\" in text):
        return text
    unquoted = _decode_ansi_c(text) if "$'" in text else text
    unquoted = unquoted.replace("'", "").replace('"', "")  # (str.translate: 5x slower)
    if "\\" in unquoted:
        unquoted = _ESCAPE.sub("", unquoted)
    return text if unquoted == text else unquoted


_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'", re.DOTALL)
# ``$'...'`` strings with escapes decoded per text, at most; a text with more is judged as
# naming a protected path (decoding each costs microseconds: no input may make it slow)
MAX_ANSI_C = 2000
_TOO_MANY = "/etc/ (more $'...' strings than are decoded)"


def _decode_ansi_c(text: str) -> str:
    """The text bash reads in each ``$'...'`` (``$'\\x2fetc'`` is ``/etc``); one it cannot
    read is kept as written."""
    if text.count("$'") > MAX_ANSI_C:
        return _TOO_MANY
    return _ANSI_C.sub(_read_ansi_c, text)


def _read_ansi_c(m: re.Match[str]) -> str:
    text = ansi_c(m[1])
    return m[1] if text is None else text


# a backslash between two name characters (quotes go anywhere)
_ESCAPE = re.compile(r"\\(?<=[A-Za-z0-9._-]\\)(?=[A-Za-z0-9._-])")
_WORD = re.compile(r"[^\s;|&<>()`'\"=,]+")
_GLOB_WORD = re.compile(r"[^\s;|&<>()`'\"=]+")
_GLOB_CHARS = re.compile(r"[?*\[{]")
# a name holding a glob, found from its start only (linear)
_GLOB_PART = re.compile(r"(?<![^/\\])[^/\\]*[?*\[{][^/\\]*")
_BRACES = re.compile(r"\{([^{}]*)\}")
_CD_ROOT = re.compile(r"[cC](?<![\w-].)[dD][ \t]+/+[ \t]*(?=[;&|)\n]|$)")
MAX_GLOB_CHOICES = 64


def _globbed(text: str, budget: list[int]) -> bool:
    """Whether a word with shell globs in it could name a protected path: each globbed name
    is replaced by the protected names it matches (a leading ``*`` or ``?`` skips dot files,
    as the shell does). A name of only ``*`` and ``?`` right under ``/`` with more after it
    (``/*/shadow``) spans every root directory, ``/etc`` among them: protected; elsewhere
    it is left as it is (``/tmp/*``, ``src/**/*.ts``).
    More than ``MAX_GLOB_CHOICES`` combinations in one word count as protected."""
    for m in _GLOB_WORD.finditer(text):
        word = m.group().lower()
        if not _GLOB_CHARS.search(word) or not (word[0] in ".~" or "/" in word or "\\" in word):
            continue
        spans: list[tuple[int, int, list[str]]] = []  # globbed names and what they match
        total = 1
        for part in _GLOB_PART.finditer(word):
            glob = part.group().replace("[^", "[!")  # bash negates a class with either
            if not glob.strip("*?"):
                if part.start() == 1 and word[0] == "/" and part.end() < len(word):
                    return True  # /*/shadow: every root directory, /etc among them
                continue
            budget[0] -= 1
            if budget[0] < 0:
                return True
            found = sorted({name for alt in _brace_alternatives(glob) for name in _GLOB_NAMES
                            if fnmatchcase(name, alt) and (alt[:1] == "." or name[:1] != ".")})
            if found:
                spans.append((part.start(), part.end(), found))
                total *= len(found)
                if total > MAX_GLOB_CHOICES:
                    return True
        for combo in product(*(found for _, _, found in spans)) if spans else ():
            pieces, last = [], 0
            for (start, end, _), name in zip(spans, combo, strict=True):
                pieces += [word[last:start], name]
                last = end
            pieces.append(word[last:])
            if _path_protected("".join(pieces)):
                return True
    return False


def _brace_alternatives(part: str) -> list[str]:
    """``{etc,x}`` as the shell expands it (the first brace group; the rest stay globs)."""
    m = _BRACES.search(part)
    if m is None or "," not in m.group(1):
        return [part]
    return [part[:m.start()] + alt + part[m.end():] for alt in m.group(1).split(",")[:16]]


def _after_cd_root(text: str, budget: list[int]) -> bool:
    """After ``cd /``, a relative ``etc/shadow`` is ``/etc/shadow``."""
    cd = _CD_ROOT.search(text)
    if cd is None:
        return False
    for m in _WORD.finditer(text, cd.end()):
        word = m.group().lower()
        if word.split("/", 1)[0] in _ROOT_NAMES:
            budget[0] -= 1
            if budget[0] < 0 or _path_protected("/" + word):
                return True
    return False


def _scan(text: str, budget: list[int], depth: int, prose: bool = True) -> bool:
    low = text.encode("ascii", "replace").lower()  # one byte per character: same offsets
    pos, line = 0, [-1, -1, False]  # line: see _command_line
    seen: dict[str, bool] = {}
    while (m := _MARKER.search(low, pos)) is not None:
        before = _LAST_DELIM.match(low, pos, m.start())
        start = before.end() if before else pos
        after = _TOKEN_END.search(low, m.end())
        end = after.start() if after else len(low)
        start, url = _with_prefix(low, start)
        pos = end
        budget[0] -= 1
        if budget[0] < 0:
            return True
        token = text[start:end].lower()
        protected = seen.get(token)  # a repeated token is judged once (where it stands
        if protected is None:        # is looked at each time: "the .env file", "cat .env")
            protected = seen[token] = _token_protected(token, url, budget, depth)
        if protected and (not prose or "%" in token or not _mention(text, start, end, line)):
            return True
    return False


_DETERMINERS = frozenset((
    "a", "an", "the", "your", "my", "our", "their", "this", "that", "these", "those",
    "each", "every", "any", "no", "its", "his", "her"))
_MENTION_NOUNS = frozenset((
    "file", "files", "key", "keys", "pair", "format", "syntax", "variable", "variables",
    "support", "entry", "entries", "template", "templates", "convention", "pattern",
    "loader", "parser", "section", "directory", "folder", "setup", "approach", "docs",
    "documentation", "page", "example", "examples"))
# a line that starts with one of these is a command line (it reads or sends files)
_COMMAND_WORDS = frozenset((
    "cat", "less", "more", "head", "tail", "cp", "mv", "scp", "rsync", "curl", "wget", "nc",
    "ncat", "socat", "base64", "xxd", "od", "hexdump", "strings", "grep", "egrep", "fgrep",
    "rg", "sed", "awk", "tar", "zip", "gzip", "source", "vi", "vim", "nano", "emacs",
    "type", "get-content", "gc", "tee", "dd", "python", "python3", "node", "ruby", "perl",
    "php", "sh", "bash", "zsh", "sudo", "env", "xargs", "eval", "exec", "cut", "tr", "nl",
    "tac", "sftp", "ftp", "diff"))
_SHELL_OPERATORS = re.compile(r"[;|&`$<>]")
_NEXT_WORD = re.compile(r"[ \t]+([A-Za-z]+)")
_PREV_WORD = re.compile(r"([A-Za-z]+)[ \t]+\Z")


def _mention(text: str, start: int, end: int, line: list[Any]) -> bool:
    """Whether the name at ``text[start:end]`` is mentioned in a sentence rather than used:
    it sits in a noun phrase, after a determiner and before a noun ("a .env file", "your
    id_rsa key", "the /etc/hosts section"), on a line that is not a command line (does not
    start with a command that reads or sends files, holds no shell operator). Anything else
    counts: "cat .env", "Show me .env", "Read id_rsa please.", "cat the .env file"."""
    after = _NEXT_WORD.match(text, end)
    if after is None or after.group(1).lower() not in _MENTION_NOUNS:
        return False
    before = _PREV_WORD.search(text, max(0, start - 40), start)
    if before is None or before.group(1).lower() not in _DETERMINERS:
        return False
    return not _command_line(text, start, line)


def _command_line(text: str, start: int, line: list[Any]) -> bool:
    """Whether the line holding ``start`` reads as a command line. ``line`` caches the last
    line's bounds and verdict: the scan moves forward, so each line is looked at once."""
    if line[0] <= start < line[1]:
        return bool(line[2])
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line_end = line_end if line_end >= 0 else len(text)
    words = text[line_start:line_end].split(None, 1)
    command = bool(words) and (words[0].lower().lstrip("$#>(") in _COMMAND_WORDS
                               or bool(_SHELL_OPERATORS.search(text, line_start, line_end)))
    line[:] = [line_start, line_end, command]
    return command


def _with_prefix(low: bytes, start: int) -> tuple[int, bytes]:
    """Take back into the token what the ``:`` delimiter cut off: a drive letter (``C:``,
    also inside ``\\\\?\\C:`` and ``file:///C:``) or the scheme of a URL (``file:``,
    ``https:`` before ``//``). Returns the new start and the scheme, if any."""
    if start < 2 or low[start - 1] != 0x3A:  # ':'
        return start, b""
    if low[start - 2:start - 1].isalpha() and (
            start == 2 or low[start - 3] in b"/\\" or _TOKEN_END.match(low, start - 3)):
        return start - 2, b""
    scheme = _SCHEME_BEFORE.search(low, max(0, start - 32), start)
    if scheme is None or not (low.startswith(b"//", start) or
                              low[scheme.start():start] == b"file:"):
        return start, b""
    return scheme.start(), low[scheme.start():start - 1]


def _token_protected(token: str, scheme: bytes, budget: list[int], depth: int) -> bool:
    if "%" in token and depth < DECODE_ROUNDS:
        decoded = _unquote(token)
        if decoded != token and _scan(decoded, budget, depth + 1):
            return True
    if scheme == b"file":
        parts = urlsplit(token)
        if parts.netloc not in ("", "localhost", "127.0.0.1"):
            return False
        path = parts.path
        return _path_protected(path[1:] if _DRIVE.match(path[1:]) else path)
    if scheme:
        return False  # a URL on another host, not a local path
    return _path_protected(token)


def _unquote(token: str) -> str:
    """``urllib.parse.unquote``; for a token with many escapes, the same decoding done by the
    codec machinery in C (urllib spends about 0.3 us per escape in Python)."""
    if token.count("%") <= 256:
        return unquote(token)
    raw = re.sub(r"%(?![0-9a-fA-F]{2})", "%25", token).replace("\\", "\\\\").replace("%", "\\x")
    return raw.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def _path_protected(path: str) -> bool:
    """Judge one lowercased path, normalising it first."""
    path = path.rstrip(". ")  # Windows ignores trailing dots and spaces; so does prose
    if not path:
        return False
    for var, value in _WINDOWS_VARS if "%" in path else ():
        path = path.replace(var, value)
    for var in _HOME_VARS if "$" in path else ():
        if path.startswith(var):
            path = "~" + path[len(var):]
    remote = False
    if "globalroot" in path or "harddiskvolume" in path:  # \\?\GLOBALROOT\Device\..., shadow copies
        return True
    if (share := _ADMIN_SHARE.match(path)) is not None:  # \\localhost\c$\..., //host/c$/...
        path = share.group(1) + ":" + path[share.end():]
    if "\\" in path or _DRIVE.match(path):
        if path.startswith(("\\\\.\\", "//./")):  # device namespace: \\.\PhysicalDrive0
            return True
        drive, rest = ntpath.splitdrive(path)
        remote = drive.startswith(("\\\\", "//")) and drive[2:3] not in ("?", ".")
        if drive[2:3] == "?" and rest.lstrip("\\/")[:2].endswith(":"):  # \\?\C:\…
            drive, rest = ntpath.splitdrive(rest.lstrip("\\/"))
        # Windows ignores trailing dots and spaces in every name: C:\Windows.\System32
        path = _TRAILING_DOTS.sub("/", rest.replace("\\", "/"))
        if drive and not remote:
            path = "/" + path.lstrip("/")
    if path.startswith("~"):
        user, _, rest = path[1:].partition("/")
        path = ("/root/" if user == "root" else "/home/~/") + rest
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    climb = _CLIMB.match(norm).end()  # type: ignore[union-attr]  # always matches
    if climb:
        norm = "/" + norm[climb:]
    if norm.startswith("/private/"):
        norm = norm[8:]
    elif norm.startswith("/mnt/") and norm[6:7] in ("/", ""):  # WSL: /mnt/c/Windows
        norm = norm[6:] or "/"
    return _names_protected(norm.split("/"), norm.startswith("/") and not remote)


def _names_protected(comps: list[str], absolute: bool) -> bool:
    if "~" in "".join(comps):  # 8.3 short names: WINDOW~1 is windows
        comps = [_long_name(c) for c in comps]
    if absolute and len(comps) > 1:
        first = comps[1]
        if first in _ROOT_DIRS:
            return True
        if first == "dev" and len(comps) > 2 and comps[2] not in _SAFE_DEVICES:
            return True
        if any(tuple(comps[1:1 + len(d)]) == d for d in _SERVICE_DIRS):
            return True
    if not _SECRET_NAMES.isdisjoint(comps):
        return True
    for name in _HOME_SECRET_NAMES.intersection(comps):
        i = comps.index(name)
        in_home = (i >= 2 and comps[i - 2] in _HOME_PARENTS) or (i >= 1 and comps[i - 1] == "root")
        if in_home and (name != ".config" or comps[i + 1:i + 2] == ["gcloud"]):
            return True
    if ".git" in comps and comps[comps.index(".git") + 1:comps.index(".git") + 2] == ["config"]:
        return True  # remote URLs there may hold credentials (https://user:token@host)
    base = comps[-1]
    return base == ".env" or base.endswith((".tfstate", ".tfstate.backup")) or (
        base.startswith(".env.") and _ENV_TEMPLATES.isdisjoint(base.split(".")[2:]))


_LONG_NAMES = ("windows", "winnt", "program files", "programdata", "documents and settings",
               "system32", "users")


def _long_name(comp: str) -> str:
    """The long name an 8.3 short name stands for, when it is one of the protected ones."""
    m = _SHORT_NAME.fullmatch(comp)
    if m is None:
        return comp
    prefix = m.group(1)
    return next((name for name in _LONG_NAMES if name.replace(" ", "").startswith(prefix)),
                comp)
