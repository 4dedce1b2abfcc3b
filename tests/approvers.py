"""A person answering escalations from another thread, as the tests' stand-in approver."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import staso as st


def answer_later(action: Callable[..., Any], delay: float = 0.2, **kwargs: Any
                 ) -> threading.Thread:
    """After ``delay``, call ``action(escalation_id, **kwargs)`` on the first pending
    escalation (waiting up to 5 s for one to appear)."""
    def run() -> None:
        deadline = time.time() + 5
        while time.time() < deadline:
            pending = st.get_client().list_escalations(status="pending")
            if pending:
                action(pending[0].id, **kwargs)
                return
            time.sleep(0.02)
    t = threading.Thread(target=lambda: (time.sleep(delay), run()))
    t.start()
    return t


async def first_pending() -> Any:
    """The first pending escalation, once there is one (asked from a worker thread)."""
    client = st.get_client()
    while not (pending := await asyncio.to_thread(client.list_escalations, status="pending")):
        await asyncio.sleep(0.02)
    return pending[0]


class LoopTicker:
    """Counts how often the event loop runs a 10 ms sleeper: if a wait blocks the loop, the
    count stops growing. ``async with LoopTicker() as ticker: ... ticker.ticks``."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    async def __aenter__(self) -> LoopTicker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()


async def while_waiting(waiting: Any, pause: float = 0.3) -> tuple[Any, int]:
    """Run ``waiting`` (a coroutine that waits for a person); once its escalation exists,
    count the loop's ticks for ``pause`` seconds, then approve it. (its result, the ticks):
    if the wait blocked the event loop, the count stays near 0."""
    async def approver(ticker: LoopTicker) -> int:
        pending = await first_pending()
        before = ticker.ticks
        await asyncio.sleep(pause)
        progressed = ticker.ticks - before
        await asyncio.to_thread(st.approve, pending.id, by="manager")
        return progressed

    async with LoopTicker() as ticker:
        result, progressed = await asyncio.gather(waiting, approver(ticker))
    return result, progressed
