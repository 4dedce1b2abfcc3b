"""Escalation long-polls held outside the request's call chain.

A request in progress keeps every frame of its ASGI call chain alive: the middleware, the
router, FastAPI's handler (its dependencies, exit stacks, Request and Response) and the
route. For a long-poll held for a minute by each of 10,000 agents that chain was most of
the ~33 KB each cost (measured with tracemalloc). So ``GET /v1/escalations/{id}?wait=``
is answered in tries: each try is an ordinary request through the whole application (keys,
errors and JSON as for any route), and the route either answers it or, the escalation
still pending, asks to be held (``Held.hold``) and returns without a response. The chain
then unwinds, and the application's own entry point (``LongPollingApp.__call__``), outside
it, holds the connection with one future until the escalation changes, the hold ends or
the caller hangs up; it then runs the next try.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..waiting import Hold

HELD = "staso.held"  # scope key of the Held record of a request that may be held
PATH = "/v1/escalations/"
HANG_UP_CHECK = 2.0  # seconds between checks that held callers are still connected
# tries run at once: the rest wait their turn here, as cheap as held, rather than inside
# the stack queued for a database read (~30 KB each: 10,000 agents connecting at once to
# a PostgreSQL server grew it by 300 MB, and approving them all added ~70 MB on SQLite);
# more than the read threads, so the reads never idle
TRIES = 32


class Held:
    """What one long-poll's tries share: when its hold ends, and whether the last try
    asked to be held (``hold``)."""

    __slots__ = ("deadline", "hold")

    def __init__(self) -> None:
        self.deadline: float | None = None  # time.monotonic(), set by the first try
        self.hold: Hold | None = None


class NoResponse(Response):
    """What a try that asks to be held returns: the request is answered by a later try."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return


class LongPollingApp(FastAPI):
    """FastAPI, holding escalation long-polls outside all of itself, middleware included
    (see the module's docstring): a held long-poll keeps alive only uvicorn's connection,
    this frame and one future. Every other request goes straight to FastAPI."""

    _hang_ups: HangUps | None = None
    _tries: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" \
                or not _route_path(scope).startswith(PATH):
            await super().__call__(scope, receive, send)
            return
        state = self.state.staso
        loop = asyncio.get_running_loop()
        if self._tries is None or self._tries[0] is not loop:
            self._tries = (loop, asyncio.Semaphore(TRIES))
        tries = self._tries[1]
        held = Held()
        try:
            while True:
                # each try on a copy of the scope: what the stack adds to it (route, path
                # parameters, FastAPI's state) is not kept while held, ~1 KB (measured)
                async with tries:
                    await super().__call__({**scope, HELD: held}, receive, send)
                hold, held.hold = held.hold, None
                if hold is None:
                    return  # answered (or refused)
                if self._hang_ups is None:
                    self._hang_ups = HangUps()
                state.metrics.long_polls += 1
                self._hang_ups.add(hold, receive)
                try:
                    await hold.future
                finally:
                    state.metrics.long_polls -= 1
                    state.service.notifier.release(hold)
                if self._hang_ups.hung_up(hold):
                    return  # nothing to answer: no one listens
        finally:
            if held.hold is not None:  # a try failed after asking to be held
                state.service.notifier.release(held.hold)


class HangUps:
    """Ends the holds of callers that hung up: every few seconds, one task checks every
    held connection, rather than a task per waiter reading its own (~1.2 KB each,
    measured). A caller that hangs up is thus forgotten within ``HANG_UP_CHECK`` s."""

    def __init__(self) -> None:
        self._held: dict[Hold, Receive] = {}
        self._checker: asyncio.Task[None] | None = None

    def add(self, hold: Hold, receive: Receive) -> None:
        self._held[hold] = receive
        loop = asyncio.get_running_loop()
        if self._checker is None or self._checker.get_loop() is not loop:
            self._checker = loop.create_task(self._check())

    def hung_up(self, hold: Hold) -> bool:
        """Forget ``hold``, its wait over; True if it ended because its caller hung up."""
        return self._held.pop(hold, None) is None

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._held:
                await asyncio.sleep(HANG_UP_CHECK)
                for hold, receive in list(self._held.items()):
                    if hold.future.get_loop() is loop and not hold.future.done() and \
                            _hung_up(receive):
                        del self._held[hold]
                        hold.wake()
        finally:
            if self._checker is asyncio.current_task():
                self._checker = None


def _hung_up(receive: Receive) -> bool:
    """Whether the caller hung up, learnt without waiting: ``receive`` runs up to its
    first pause and is dropped there (as Starlette's ``Request.is_disconnected``, without
    its task or cancel scope). A GET's request message, if still unread, is dropped."""
    step = receive().__await__()
    try:
        step.send(None)
    except StopIteration as done:
        return bool(done.value.get("type") == "http.disconnect")
    except Exception:  # the connection is broken: as good as gone
        return True
    else:
        return False  # it paused: the caller is still there
    finally:
        with contextlib.suppress(Exception):
            step.close()


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
