"""Cancellation that reaches the other side.

When the proxy stops waiting for a request it sent (its client cancelled the call, or the
answer came from elsewhere), the peer must be told, or the upstream tool runs on and the
client's form stays open: the SDK's sessions never send ``notifications/cancelled`` for
a request they give up on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import mcp.types as types
from mcp import ClientSession

T = TypeVar("T")

NOTICE_TIMEOUT = 5.0  # seconds the notice may take to send once the request is given up


async def cancelling(session: Any, send: Callable[[], Awaitable[T]], reason: str) -> T:
    """``await send()``, one request on ``session``; cancelled, it tells the peer to stop."""
    request_id = session._request_id  # (private) the id the request takes: no await between
    try:
        return await send()
    except anyio.get_cancelled_exc_class():
        params = types.CancelledNotificationParams(requestId=request_id, reason=reason)
        notice = types.CancelledNotification(params=params)
        wrapped: Any = (types.ClientNotification(notice) if isinstance(session, ClientSession)
                        else types.ServerNotification(notice))
        with anyio.CancelScope(shield=True), anyio.move_on_after(NOTICE_TIMEOUT):
            await session.send_notification(wrapped)
        raise
