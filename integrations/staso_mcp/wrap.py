"""``staso mcp wrap CONFIG.json``: an MCP client's configuration rewritten so each stdio
server runs through ``staso mcp proxy``, and ``--undo`` to take it back.

The format is Claude Desktop's and Cursor's (``{"mcpServers": {name: {"command", "args",
"env"}}}``; VS Code's ``"servers"`` too). A server entry becomes ``staso mcp proxy --name
NAME [options] -- COMMAND ARGS...``: everything the client needs to undo it is in the
entry itself, so no state is kept elsewhere, a second wrap changes nothing and ``--undo``
works on a file edited since. Entries for remote servers (``url``) are left alone: the
proxy's HTTP form runs beside them. The file as it was before each rewrite is kept as
``CONFIG.json.staso-backup``; the new file replaces the old one atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKUP_SUFFIX = ".staso-backup"
_PROXY = ["mcp", "proxy"]


@dataclass
class Rewrite:
    """What a wrap or an undo did, server by server."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already as asked
    skipped: dict[str, str] = field(default_factory=dict)  # name → why
    backup: Path | None = None


def staso_command() -> list[str]:
    """How a client starts staso: the absolute path of the ``staso`` script (clients start
    servers with a bare PATH), else this Python with ``-m staso.cli``."""
    found = shutil.which("staso")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "staso.cli"]


def _servers(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object with 'mcpServers'")
    key = "mcpServers" if "mcpServers" in config else "servers" if "servers" in config else None
    if key is None or not isinstance(config[key], dict):
        raise ValueError(f"{path}: no 'mcpServers' object (Claude Desktop / Cursor format) "
                         "or 'servers' object (VS Code format)")
    servers: dict[str, Any] = config[key]
    return servers


# the proxy's options that take a value (a value may itself look like "--")
_VALUED = {"--name", "--policy", "--escalation-timeout", "--upstream-timeout", "--upstream",
           "--listen", "--header"}


def _runs_staso(runner: list[str]) -> bool:
    """Whether ``runner`` starts staso: the ``staso`` script itself, or ``python -m
    staso.cli`` (a look-alike such as ``stasoctl`` is somebody else's program)."""
    if runner == [] or not runner[0]:
        return False
    return Path(runner[0]).name in ("staso", "staso.exe") or runner[1:] == ["-m", "staso.cli"]


def _proxied(entry: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """The proxy's own options and the original command line, if ``entry`` is wrapped."""
    args = entry.get("args", [])
    line = [str(a) for a in [entry.get("command", ""), *(args if isinstance(args, list) else [])]]
    for start in range(1, len(line) - 1):
        if line[start:start + 2] != _PROXY or not _runs_staso(line[:start]):
            continue
        rest = line[start + 2:]
        i = 0
        while i < len(rest):
            if rest[i] == "--":
                return rest[:i], rest[i + 1:]
            i += 2 if rest[i] in _VALUED else 1
        return None
    return None


def _load(path: Path) -> tuple[Any, str]:
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc}); comments are not supported") from exc


def _replace(path: Path, text: str, mode: int) -> None:
    """``path`` holds ``text`` with ``mode``, atomically: a temporary file renamed over it,
    so an existing symlink at ``path`` is replaced, never written through."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(path: Path, config: Any, original: str) -> Path:
    """Write ``config`` (and ``original`` beside it as the backup) with the file's own
    permissions (a configuration often holds tokens)."""
    mode = path.stat().st_mode & 0o7777
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    _replace(backup, original, mode)
    _replace(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n", mode)
    return backup


def wrap_config(path: Path | str, options: list[str] | None = None,
                command: list[str] | None = None) -> Rewrite:
    """Run each stdio server of the configuration at ``path`` through the proxy, with the
    proxy ``options`` (``["--wait", "--policy", "/abs/staso.yaml"]`` …)."""
    path = Path(path).resolve()  # a symlinked configuration: its target is rewritten
    config, original = _load(path)
    runner = command or staso_command()
    report = Rewrite()
    for name, entry in _servers(config, path).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
            why = "a remote server (url)" if isinstance(entry, dict) and "url" in entry \
                else "no command: not a stdio server"
            report.skipped[name] = why
            continue
        if entry.get("type", "stdio") != "stdio":
            report.skipped[name] = f"type {entry['type']!r}: not a stdio server"
            continue
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            report.skipped[name] = "'args' is not a list of strings"
            continue
        if _proxied(entry) is not None:
            report.unchanged.append(name)
            continue
        entry["command"], entry["args"] = runner[0], [
            *runner[1:], *_PROXY, "--name", name, *(options or []), "--",
            entry["command"], *args]
        report.changed.append(name)
    if report.changed:
        report.backup = _save(path, config, original)
    return report


def unwrap_config(path: Path | str) -> Rewrite:
    """Give each wrapped server its own command line back."""
    path = Path(path).resolve()
    config, original = _load(path)
    report = Rewrite()
    for name, entry in _servers(config, path).items():
        proxied = _proxied(entry) if isinstance(entry, dict) else None
        if proxied is None:
            report.unchanged.append(name)
            continue
        command_line = proxied[1]
        if not command_line:
            report.skipped[name] = "its proxy entry names no command"
            continue
        entry["command"], entry["args"] = command_line[0], command_line[1:]
        report.changed.append(name)
    if report.changed:
        report.backup = _save(path, config, original)
    return report
