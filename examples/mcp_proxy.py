"""staso in front of an MCP server: what Claude Desktop or Cursor see through `staso mcp proxy`.

    python examples/mcp_proxy.py

Runs offline. The MCP server is the reference filesystem server
(`@modelcontextprotocol/server-filesystem`, with node) when it is installed in
``.mcp-servers/`` or on PATH as ``mcp-server-filesystem``; otherwise a small files server
written with the `mcp` SDK stands in. The client is the `mcp` SDK's own ``ClientSession``,
starting ``staso mcp proxy -- <server>`` as an MCP client would:

1. a read is allowed and returns the file;
2. writing ``.env`` is blocked by the built-in protected-paths pack (nothing is written);
3. a write over 1,000 characters needs a person: the client is told, nothing is done;
4. a person approves (here from Python; the dashboard or ``staso escalations approve`` do the
   same), the client makes the identical call again, and it runs once.

Decisions go to ``$STASO_HOME`` (default ``~/.staso``): ``staso serve`` shows them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

import staso as st

POLICY = """version: 1
rules:
  - use: builtin/protected_paths
  - name: big_write
    tools: [write_file]
    when: size(tool_input.content) > 1000
    action: escalate
    reason: a large write needs a person
"""
STAND_IN = '''
import sys
from pathlib import Path
from mcp.server.fastmcp import FastMCP

server = FastMCP("files-stand-in", log_level="WARNING")
ROOT = Path(sys.argv[1])

@server.tool()
def read_text_file(path: str) -> str:
    return Path(path).read_text()

@server.tool()
def write_file(path: str, content: str) -> str:
    Path(path).write_text(content)
    return f"Successfully wrote to {path}"

server.run()
'''
REFERENCE = (Path(__file__).resolve().parents[1] / ".mcp-servers" / "node_modules"
             / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js")


def files_server(work: Path, files: Path) -> list[str]:
    """The reference filesystem server's command line, else the stand-in's."""
    node = shutil.which("node")
    if REFERENCE.exists() and node:
        return [node, str(REFERENCE), str(files)]
    installed = shutil.which("mcp-server-filesystem")
    if installed:
        return [installed, str(files)]
    (work / "stand_in.py").write_text(STAND_IN)
    return [sys.executable, str(work / "stand_in.py"), str(files)]


def text(result: object) -> str:
    return "\n".join(c.text for c in result.content  # type: ignore[attr-defined]
                     if isinstance(c, TextContent))


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="staso-mcp-example-"))
    files = work / "files"
    files.mkdir()
    (files / "notes.txt").write_text("Ship the release on Friday.")
    (work / "staso.yaml").write_text(POLICY)
    server = files_server(work, files)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--policy", str(work / "staso.yaml"), "--",
              *server], env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        print(f"connected to {init.serverInfo.name} through staso mcp proxy")

        read_back = await session.call_tool("read_text_file",
                                            {"path": str(files / "notes.txt")})
        print(f"1. read notes.txt: {text(read_back)}")

        blocked = await session.call_tool("write_file", {"path": str(files / ".env"),
                                                         "content": "API_KEY=sk-live"})
        print(f"2. write .env: {text(blocked)}")
        print(f"   .env exists: {(files / '.env').exists()}")

        big = {"path": str(files / "report.md"), "content": "# Report\n" + "x" * 2000}
        pending = await session.call_tool("write_file", big)
        print(f"3. large write: {text(pending)}")
        escalation_id = text(pending).split("Escalation id: ")[1].split(".")[0]

        # against a staso server (STASO_BASE_URL) an approver's key answers, not the agent's
        st.init(api_key=os.environ.get("STASO_APPROVER_KEY"), agent_name="example-approver")
        answered = st.approve(escalation_id, by="manager", comment="the report is expected")
        st.shutdown()
        print(f"4. {answered.resolved_by} approved {answered.id}; the identical call again:")
        ran = await session.call_tool("write_file", big)
        print(f"   {text(ran)} ({(files / 'report.md').stat().st_size} bytes on disk)")
        again = await session.call_tool("write_file", big)
        print(f"   once more: {'needs a person' if again.isError else 'ran again?!'}")


if __name__ == "__main__":
    anyio.run(main)
