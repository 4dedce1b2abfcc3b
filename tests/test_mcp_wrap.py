"""`staso mcp wrap CONFIG.json`: a Claude Desktop / Cursor configuration rewritten so each
stdio server runs through the proxy (backup kept, idempotent, `--undo`), and the wrapped
entry, started as the client would start it, really guards the reference filesystem
server."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_peers import require_filesystem_server, text_of
from servers import cli

POLICY = """version: 1
rules:
  - use: builtin/protected_paths
"""


def claude_config(files: Path) -> dict[str, Any]:
    return {
        "globalShortcut": "Ctrl+Space",  # other settings stay as they are
        "mcpServers": {
            "files": {"command": "node", "args": [str(require_filesystem_server()),
                                                  str(files)],
                      "env": {"FILES_MODE": "1"}},
            "notes": {"command": sys.executable, "args": ["-m", "notes_server", "--", "x"]},
            "remote": {"url": "https://mcp.example.com/mcp"},
        },
    }


def wrap(config: Path, *options: str) -> str:
    return cli("mcp", "wrap", str(config), *options).stdout


async def test_wrap_is_kept_idempotent_and_undone(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello")
    (tmp_path / "staso.yaml").write_text(POLICY)
    config = tmp_path / "claude_desktop_config.json"
    original = claude_config(files)
    config.write_text(json.dumps(original, indent=2))
    before = config.read_text()

    said = wrap(config, "--policy", str(tmp_path / "staso.yaml"))
    assert "wrapped files" in said and "wrapped notes" in said
    assert "skipped remote: a remote server (url)" in said
    backup = tmp_path / "claude_desktop_config.json.staso-backup"
    assert backup.read_text() == before
    wrapped = json.loads(config.read_text())
    assert wrapped["globalShortcut"] == "Ctrl+Space"
    assert wrapped["mcpServers"]["remote"] == original["mcpServers"]["remote"]
    entry = wrapped["mcpServers"]["files"]
    assert entry["env"] == {"FILES_MODE": "1"}
    proxy_args = entry["args"][entry["args"].index("proxy") + 1:]
    assert proxy_args[:5] == ["--name", "files", "--policy", str(tmp_path / "staso.yaml"),
                              "--"]
    assert proxy_args[5:] == ["node", *original["mcpServers"]["files"]["args"]]

    # again: nothing changes, not even the backup
    once = config.read_text()
    assert "nothing to change" in wrap(config, "--policy", str(tmp_path / "staso.yaml"))
    assert config.read_text() == once and backup.read_text() == before

    # the wrapped entry, started as a client starts it, is the guarded server
    env = {**entry["env"], "STASO_HOME": str(tmp_path), "PATH": os.environ["PATH"]}
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.serverInfo.name == "secure-filesystem-server"
        read_back = await session.call_tool("read_text_file", {"path": str(files / "hello.txt")})
        assert not read_back.isError and text_of(read_back) == "hello"
        refused = await session.call_tool("write_file", {"path": str(files / ".env"),
                                                         "content": "KEY=1"})
        assert refused.isError and "blocked" in text_of(refused)
    assert not (files / ".env").exists()

    # a server added by hand after wrapping is left as it is by --undo
    edited = json.loads(config.read_text())
    edited["mcpServers"]["added"] = {"command": "added-server", "args": []}
    config.write_text(json.dumps(edited))
    said = wrap(config, "--undo")
    assert "unwrapped files" in said and "unwrapped notes" in said
    undone = json.loads(config.read_text())
    expected = copy.deepcopy(original)
    expected["mcpServers"]["added"] = {"command": "added-server", "args": []}
    assert undone == expected
    assert "nothing to change" in wrap(config, "--undo")


def test_wrap_reads_vs_code_servers_and_keeps_proxy_options(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"servers": {
        "local": {"type": "stdio", "command": "my-server", "args": ["--x", "--", "y"]},
        "web": {"type": "http", "url": "http://127.0.0.1:1/mcp"}}}))
    said = wrap(config, "--wait", "--approve-in-client")
    assert "wrapped local" in said and "skipped web: a remote server (url)" in said
    local = json.loads(config.read_text())["servers"]["local"]
    assert local["type"] == "stdio"
    after = local["args"][local["args"].index("proxy") + 1:]
    assert after == ["--name", "local", "--wait", "--approve-in-client", "--", "my-server",
                     "--x", "--", "y"]  # the server's own "--" survives
    wrap(config, "--undo")
    assert json.loads(config.read_text())["servers"]["local"] == {
        "type": "stdio", "command": "my-server", "args": ["--x", "--", "y"]}


def test_bad_configurations_are_clear_errors_and_untouched(tmp_path: Path) -> None:
    cases = {"comments.json": '{"mcpServers": {} // a comment\n}',
             "other.json": '{"servers": 3}',
             "list.json": "[]"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        ran = cli("mcp", "wrap", str(tmp_path / name), check=False)
        assert ran.returncode == 1 and ran.stderr.strip(), name
        assert "Traceback" not in ran.stderr
        assert (tmp_path / name).read_text() == text
        assert not (tmp_path / f"{name}.staso-backup").exists()
    missing = cli("mcp", "wrap", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 1 and "no configuration file" in missing.stderr
    bad_args = tmp_path / "bad_args.json"
    bad_args.write_text(json.dumps({"mcpServers": {"s": {"command": "x", "args": "a b"}}}))
    assert "skipped s: 'args' is not a list of strings" in wrap(bad_args)


def test_wrap_never_writes_through_links_and_keeps_permissions(tmp_path: Path) -> None:
    """A checked-out repository's configuration cannot aim the backup at another file
    (a symlink is replaced, not followed); the backup is as private as the configuration;
    a symlinked configuration stays a symlink and its target is rewritten."""
    victim = tmp_path / "settings.json"
    victim.write_text('{"mine": true}')
    repo = tmp_path / "repo" / ".cursor"
    repo.mkdir(parents=True)
    config = repo / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"s": {"command": "srv", "args": [],
                                                       "env": {"TOKEN": "t0k"}}}}))
    config.chmod(0o600)
    (repo / "mcp.json.staso-backup").symlink_to(victim)
    assert "wrapped s" in wrap(config)
    assert victim.read_text() == '{"mine": true}'
    backup = repo / "mcp.json.staso-backup"
    assert not backup.is_symlink() and "t0k" in backup.read_text()
    assert backup.stat().st_mode & 0o777 == 0o600 and config.stat().st_mode & 0o777 == 0o600

    dotfiles = tmp_path / "dotfiles.json"
    dotfiles.write_text(json.dumps({"mcpServers": {"s": {"command": "srv", "args": []}}}))
    link = tmp_path / "linked.json"
    link.symlink_to(dotfiles)
    wrap(link)
    assert link.is_symlink() and "proxy" in json.loads(dotfiles.read_text())[
        "mcpServers"]["s"]["args"]


def test_undo_reads_the_proxys_own_options(tmp_path: Path) -> None:
    """A server named "--" round-trips; a look-alike wrapper (not staso) is wrapped like
    any server and --undo leaves its own command alone."""
    config = tmp_path / "mcp.json"
    servers = {"--": {"command": "node", "args": ["server.js"]},
               "mine": {"command": "/opt/tools/stasoctl",
                        "args": ["mcp", "proxy", "--", "real-server"]}}
    config.write_text(json.dumps({"mcpServers": servers}))
    said = wrap(config, "--wait")
    assert "wrapped --" in said and "wrapped mine" in said
    wrapped = json.loads(config.read_text())["mcpServers"]["mine"]
    assert wrapped["args"][-6:] == ["--", "/opt/tools/stasoctl", "mcp", "proxy", "--",
                                    "real-server"]
    wrap(config, "--undo")
    assert json.loads(config.read_text())["mcpServers"] == servers
