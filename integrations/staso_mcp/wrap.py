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


def _proxied(entry: dict[str, Any]) -> list[str] | None:
    """The proxy's own arguments and the original command line, if ``entry`` is wrapped:
    (``[options..., "--", COMMAND, ARGS...]``), else None."""
    args = entry.get("args", [])
    line = [entry.get("command", ""), *(args if isinstance(args, list) else [])]
    for start in range(len(line) - 1):
        if line[start:start + 2] == _PROXY and "--" in line[start + 2:]:
            runner = line[:start]
            if runner and (Path(str(runner[0])).name.startswith("staso")
                           or runner[-2:] == ["-m", "staso.cli"]):
                return [str(a) for a in line[start + 2:]]
    return None


def _load(path: Path) -> tuple[Any, str]:
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc}); comments are not supported") from exc


def _save(path: Path, config: Any, original: str) -> Path:
    """Write ``config`` atomically, with the same permissions, keeping ``original``."""
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    backup.write_text(original, encoding="utf-8")
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(config, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup


def wrap_config(path: Path | str, options: list[str] | None = None,
                command: list[str] | None = None) -> Rewrite:
    """Run each stdio server of the configuration at ``path`` through the proxy, with the
    proxy ``options`` (``["--wait", "--policy", "/abs/staso.yaml"]`` …)."""
    path = Path(path)
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
    path = Path(path)
    config, original = _load(path)
    report = Rewrite()
    for name, entry in _servers(config, path).items():
        proxied = _proxied(entry) if isinstance(entry, dict) else None
        if proxied is None:
            report.unchanged.append(name)
            continue
        command_line = proxied[proxied.index("--") + 1:]
        if not command_line:
            report.skipped[name] = "its proxy entry names no command"
            continue
        entry["command"], entry["args"] = command_line[0], command_line[1:]
        report.changed.append(name)
    if report.changed:
        report.backup = _save(path, config, original)
    return report
