"""``staso mcp proxy --upstream URL --listen HOST:PORT``: a streamable-HTTP MCP server
(``http://HOST:PORT/mcp``) in front of a streamable-HTTP MCP server.

One upstream session serves every client; ``--header`` values (an API key, say) go with
each request upstream, so the upstream's credentials stay with the proxy. The clients'
own headers are not passed on. On a loopback address the proxy checks ``Host`` and
``Origin`` (DNS-rebinding protection), as the SDK's own servers do.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

from .proxy import UPSTREAM_TIMEOUT, GuardedProxy, ProxyOptions
from .upstream import Upstream, connected

if TYPE_CHECKING:
    from typing_extensions import Unpack

CONNECT_TIMEOUT = 30.0  # seconds to connect to the upstream (reads wait for the call)


class _Endpoint:
    """The session manager as an ASGI app at exactly ``/mcp`` (a mount would redirect
    ``/mcp`` to ``/mcp/``, and MCP clients do not all follow redirects)."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.manager.handle_request(scope, receive, send)


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` → ``("Name", "value")``; anything else is a clear error."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name or any(c.isspace() for c in name) or "\n" in value:
        raise ValueError(f"a header is 'Name: value', not {text!r}")
    return name, value


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0 picks a free one)."""
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen takes HOST:PORT, not {text!r}")
    return host, int(port)


def _security(host: str, port: int) -> TransportSecuritySettings | None:
    """Host/Origin checks for a loopback address (a web page must not reach the proxy
    through a rebound DNS name); on any other address the operator decides who reaches it."""
    try:
        address = ipaddress.ip_address(host)  # the address bound, as the kernel names it
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    loopback = address.is_loopback or (mapped is not None and mapped.is_loopback)
    if not loopback:
        return None
    names = ["127.0.0.1", "localhost", "[::1]"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{n}:{port}" for n in names] + names,
        allowed_origins=[f"http://{n}:{port}" for n in names])


async def run_http_proxy(upstream_url: str, listen: str, headers: Mapping[str, str] = {},
                         **options: Unpack[ProxyOptions]) -> None:
    """Serve the streamable-HTTP MCP server at ``upstream_url``, guarded, on ``listen``;
    prints ``listening on http://HOST:PORT/mcp`` on stderr once it accepts clients."""
    host, port = parse_listen(listen)
    upstream_timeout = options.get("upstream_timeout", UPSTREAM_TIMEOUT)
    timeout = httpx.Timeout(CONNECT_TIMEOUT, read=max(upstream_timeout, CONNECT_TIMEOUT))

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[tuple[Any, Any]]:
        async with httpx.AsyncClient(headers=dict(headers), timeout=timeout) as http, \
                streamable_http_client(upstream_url, http_client=http) as (read, write, _):
            yield read, write

    # the upstream answers initialize once here (its identity and capabilities, reported
    # to every client); each client then gets a connection of its own
    async with connect() as (read, write), \
            connected(read, write, Upstream(timedelta(seconds=upstream_timeout))) as init:
        pass
    proxy = GuardedProxy(init, connect=connect, **options)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound, port = sock.getsockname()[:2]
    manager = StreamableHTTPSessionManager(app=proxy.server,
                                           security_settings=_security(bound, port))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with manager.run():
            shown = f"[{host}]" if ":" in host else host
            print(f"staso mcp proxy: listening on http://{shown}:{port}/mcp "
                  f"(in front of {upstream_url})", file=sys.stderr, flush=True)
            yield

    app = Starlette(routes=[Route("/mcp", endpoint=_Endpoint(manager))], lifespan=lifespan)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    await server.serve(sockets=[sock])
