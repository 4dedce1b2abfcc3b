"""Dangerous shell commands: wiping the filesystem, writing to disks, fork bombs, piping
downloads into a shell, opening up permissions on system trees."""

from __future__ import annotations

import re
import shlex

# Paths whose recursive removal or chmod wrecks a machine. `./build`, `/tmp/x` are fine.
_CRITICAL = re.compile(
    r"""^(?:/|/\*|~|~/|~/\*|\$HOME|\$HOME/|\$\{HOME\}|/(?:bin|boot|dev|etc|home|lib|lib64|opt|
    proc|root|sbin|srv|sys|usr|var)(?:/\*?)?|/\.\*|\.\.?/?\*?)$""",
    re.VERBOSE,
)
_SEPARATORS = re.compile(r"&&|\|\||;|\n|`|\$\(")
_FORK_BOMB = re.compile(r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:|"
                        r"(\w+)\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}")
_PIPE_TO_SHELL = re.compile(
    r"\b(?:curl|wget|fetch)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z|k|da)?sh\b|"
    r"\b(?:ba|z)?sh\s+<\s*\(\s*(?:curl|wget)\b")
_DISK_WRITE = re.compile(
    r"\bdd\b[^|;\n]*\bof=/dev/(?!null\b|zero\b|stdout\b|stderr\b)\w|"
    r"\bmkfs(?:\.\w+)?\s+(?:-\S+\s+)*/dev/|"
    r">\s*/dev/(?:sd|hd|nvme|vd|xvd|mmcblk|disk)\w*|"
    r"\bshred\b[^|;\n]*/dev/|\bwipefs\b")


# Every pattern below needs one of these tokens; text without any is skipped in one search.
_GATE = re.compile(r"rm|ch(?:mod|own|grp)|\bdd\b|mkfs|/dev/|shred|wipefs|curl|wget|fetch|"
                   r"\(\s*\)")


def _commands(text: str) -> list[list[str]]:
    parts = []
    for chunk in _SEPARATORS.split(text):
        for piece in chunk.split("|"):
            try:
                words = shlex.split(piece, comments=True)
            except ValueError:
                words = piece.split()
            while words and (words[0] in ("sudo", "doas", "nohup", "time", "exec", "command")
                             or ("=" in words[0] and not words[0].startswith("-"))):
                words = words[1:]
            if words:
                parts.append(words)
    return parts


def _is_rm_root(words: list[str]) -> bool:
    if words[0].rsplit("/", 1)[-1] != "rm":
        return False
    flags = "".join(w[1:] for w in words[1:] if w.startswith("-") and not w.startswith("--"))
    long_flags = {w for w in words[1:] if w.startswith("--")}
    recursive = "r" in flags or "R" in flags or "--recursive" in long_flags
    if "--no-preserve-root" in long_flags:
        return True
    targets = [w for w in words[1:] if not w.startswith("-")]
    return recursive and any(_CRITICAL.match(t) for t in targets)


def _is_open_permissions(words: list[str]) -> bool:
    name = words[0].rsplit("/", 1)[-1]
    if name not in ("chmod", "chown", "chgrp"):
        return False
    recursive = any(w.startswith("-") and not w.startswith("--") and "R" in w
                    for w in words[1:]) or "--recursive" in words
    targets = [w for w in words[1:] if not w.startswith("-")][1:]
    mode_world = name != "chmod" or any(m in words for m in ("777", "a+rwx", "o+w", "a+w", "666"))
    return recursive and mode_world and any(_CRITICAL.match(t) for t in targets)


def is_dangerous_shell(text: str) -> bool:
    """True when ``text`` holds a shell command that can destroy or open up a machine."""
    if not text or len(text) < 4 or not _GATE.search(text):
        return False
    if _FORK_BOMB.search(text) or _PIPE_TO_SHELL.search(text) or _DISK_WRITE.search(text):
        return True
    if "rm" not in text and "chmod" not in text and "chown" not in text and "chgrp" not in text:
        return False
    return any(_is_rm_root(w) or _is_open_permissions(w) for w in _commands(text))
