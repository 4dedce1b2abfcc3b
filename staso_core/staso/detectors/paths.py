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
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_TOKENS = 20_000
DECODE_ROUNDS = 4

# Characters that end a path in free text, a command line or a JSON/YAML document.
_DELIMS = rb"\x00-\x20\x7f\"'`(),;<>|&=\[\]{}:"
_TOKEN_END = re.compile(rb"[" + _DELIMS + rb"]")
_LAST_DELIM = re.compile(rb"(?s:.*)[" + _DELIMS + rb"]")
# Names worth normalising a token for, on ASCII-lowercased bytes; each branch is led by a
# literal character, so the engine skips quickly over text without one.
_MARKER = re.compile(
    rb"[/\\](?:etc|boot|sys|proc|root|dev|windows|winnt|var|run)(?![a-z0-9_-])"
    rb"|\.(?:ssh|aws|gnupg|kube|docker|netrc|pgpass|npmrc|pypirc|git-credentials|azure|"
    rb"config/gcloud|env)"
    rb"|id_(?:rsa|dsa|ecdsa|ed25519)"
    rb"|%(?:[0-9a-f]{2}|systemroot%|windir%)"  # any escape: %65tc is etc
    rb"|~root|physicaldrive|harddisk")
_SCHEME_BEFORE = re.compile(rb"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{1,30}:\Z")
_DRIVE = re.compile(r"[a-z]:(?:[\\/]|$)")
_CLIMB = re.compile(r"(?:\.\.(?:/|\Z))*")

_ROOT_DIRS = frozenset({"etc", "boot", "sys", "proc", "root", "windows", "winnt"})
_SAFE_DEVICES = frozenset({"null", "zero", "stdin", "stdout", "stderr", "tty", "random",
                           "urandom", "fd", "full"})
_SERVICE_DIRS = (("var", "run", "secrets"), ("run", "secrets"), ("var", "lib", "postgresql"),
                 ("var", "lib", "mysql"))
_SECRET_NAMES = frozenset({".ssh", ".aws", ".gnupg", ".netrc", ".pgpass", ".git-credentials",
                           "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_rsa.pub",
                           "id_dsa.pub", "id_ecdsa.pub", "id_ed25519.pub"})
_HOME_SECRET_NAMES = frozenset({".kube", ".docker", ".npmrc", ".pypirc", ".azure", ".config"})
_HOME_PARENTS = frozenset({"home", "users"})
_ENV_TEMPLATES = frozenset({"example", "sample", "template", "dist", "tmpl", "defaults"})
_WINDOWS_VARS = (("%systemroot%", "c:\\windows"), ("%windir%", "c:\\windows"),
                 ("%systemdrive%", "c:"), ("%userprofile%", "c:\\users\\~"),
                 ("%homedrive%%homepath%", "c:\\users\\~"), ("%homepath%", "\\users\\~"),
                 ("%appdata%", "c:\\users\\~\\appdata\\roaming"),
                 ("%localappdata%", "c:\\users\\~\\appdata\\local"))
_HOME_VARS = ("${home}", "$home")


def is_protected_path(text: str) -> bool:
    """True when ``text`` names (or contains) a path to system config, keys or secrets."""
    if not text:
        return False
    if not any(c in text for c in "/\\.%~") and "id_" not in text.lower():
        return False  # every protected name holds one of these (see _MARKER)
    return _scan(text, [MAX_TOKENS], 0)


def _scan(text: str, budget: list[int], depth: int) -> bool:
    low = text.encode("ascii", "replace").lower()  # one byte per character: same offsets
    pos, seen, line = 0, set(), [-1, -1, False]  # line: see _in_prose
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
        if token in seen:  # a repeated token is judged once
            continue
        seen.add(token)
        if _token_protected(token, url, budget, depth) and (
                "/" in token or "\\" in token or "%" in token or not _in_prose(text, start, line)):
            return True
    return False


def _in_prose(text: str, start: int, line: list[Any]) -> bool:
    """Whether the line holding ``start`` reads as a sentence ("Put your settings in a .env
    file.") rather than a value or a command line (".env", "cat .env"). Only a bare name
    without any directory (``.env``, ``id_rsa``) is let off in prose; a path never is.
    ``line`` caches the last line's bounds and verdict: the scan moves forward, so each line
    is looked at once."""
    if line[0] <= start < line[1]:
        return bool(line[2])
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line_end = line_end if line_end >= 0 else len(text)
    words = text[line_start:line_end].strip()
    prose = any(c.isspace() for c in words) and (
        words[:1].isupper() or words.endswith((".", "?", "!")))
    line[:] = [line_start, line_end, prose]
    return prose


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
    if "\\" in path or _DRIVE.match(path):
        if path.startswith(("\\\\.\\", "//./")):  # device namespace: \\.\PhysicalDrive0
            return True
        drive, rest = ntpath.splitdrive(path)
        remote = drive.startswith(("\\\\", "//")) and drive[2:3] not in ("?", ".")
        if drive[2:3] == "?" and rest.lstrip("\\/")[:2].endswith(":"):  # \\?\C:\…
            drive, rest = ntpath.splitdrive(rest.lstrip("\\/"))
        path = rest.replace("\\", "/")
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
    base = comps[-1]
    return base == ".env" or (base.startswith(".env.")
                              and _ENV_TEMPLATES.isdisjoint(base.split(".")[2:]))
