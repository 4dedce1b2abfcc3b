"""In-process transport: the decision service runs inside the agent, on a local SQLite file.

A small input on staso's own detectors is evaluated inline (tens of microseconds; a thread
hop would double that). A large input, or a policy that calls plugin code, is evaluated on
a few worker threads instead, so the caller can stop waiting at its ``timeout`` and an
async caller's event loop keeps running meanwhile. Every database touch of an async call
runs in a worker thread, so the event loop is never blocked on disk.

A call that gives up at its timeout leaves nothing behind but the answer it was given: the
escalation is stored only after the evaluation came back in time, so a late evaluation
(which runs to its end in its thread; threads cannot be stopped) is discarded and never
escalates, and the decision log records the failure decision the caller received.

The limit of threads: they share the GIL. Python code in a worker hands it back every
switch interval, but one C call that keeps it (a regular expression on a crafted input)
stops every thread, the caller's too, until it returns. That is why the detectors must be
linear in their input; the timeout cannot make up for one that is not.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .. import grants
from ..decision_filters import DecisionFilter, DecisionPage, decision_json
from ..errors import EscalationNotFound, GuardFailure, PluginTimeout
from ..grants import Grant
from ..jsonutil import encoded_size
from ..models import Escalation, GuardRequest, GuardResult
from ..service import DecisionService, shorten_gil_slices
from ..store import lock_waits_until

log = logging.getLogger("staso")

# Why 4 threads: each one can be held by a slow evaluation until it ends, so the pool
# bounds the threads a flood of slow calls can occupy; calls beyond it wait in the queue
# (a queued call whose caller timed out is cancelled, never run). Evaluation is CPU work
# under one GIL, so more threads would not decide faster.
DEFAULT_WORKERS = 4
# Up to this many bytes of JSON, staso's own (linear) detectors take well under a
# millisecond, far below any sensible timeout: evaluated on the caller's thread. The hop to
# a worker thread measured +40 µs on a ~60 µs guard() median (50-rule policy, 2 busy cores).
DEFAULT_INLINE_BYTES = 4096


class EmbeddedTransport:
    def __init__(self, service: DecisionService, *, workers: int = DEFAULT_WORKERS,
                 inline_bytes: int = DEFAULT_INLINE_BYTES) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.service = service
        self.workers, self.inline_bytes = workers, inline_bytes
        self._pool: ThreadPoolExecutor | None = None  # started on first use
        self._pool_lock = threading.Lock()

    # -- deciding -------------------------------------------------------------------------
    def decide(self, request: GuardRequest, size: int | None = None) -> GuardResult:
        # the client made the decision id for this call: no earlier answer to look up
        if request.timeout is None or self._small(request, size):  # no deadline: no hop
            return self.service.decide(request, fresh=True)
        return self.service.decide(request, self._evaluate_on_worker, fresh=True)

    async def adecide(self, request: GuardRequest, size: int | None = None) -> GuardResult:
        # even without a deadline a large call leaves the loop: it must keep running meanwhile
        return await self.service.adecide(
            request, None if self._small(request, size) else self._aevaluate_on_worker)

    def _evaluate_on_worker(self, request: GuardRequest) -> GuardResult:
        future = self._submit(request)
        try:
            return future.result(request.timeout)
        except TimeoutError:
            if future.done():  # the evaluation itself raised TimeoutError
                raise
            raise self._gave_up(request, future) from None

    async def _aevaluate_on_worker(self, request: GuardRequest) -> GuardResult:
        future = self._submit(request)
        try:
            # wait_for cancels the wrapper on timeout, which cancels a queued evaluation
            return await asyncio.wait_for(asyncio.wrap_future(future), request.timeout)
        except TimeoutError:
            if future.done() and not future.cancelled():
                raise
            raise self._gave_up(request, future) from None

    def _small(self, request: GuardRequest, size: int | None) -> bool:
        """Cheap enough to evaluate on the caller's thread (or event loop)."""
        if size is None:  # a step of the escalation flow: sized again
            size = encoded_size(request.tool_input)
        return self.service.may_evaluate_inline(size, self.inline_bytes)

    def _submit(self, request: GuardRequest) -> Future[GuardResult]:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    shorten_gil_slices()  # a timed-out caller gets the GIL back promptly
                    self._pool = ThreadPoolExecutor(self.workers,
                                                    thread_name_prefix="staso-eval")
                pool = self._pool
        if request.timeout is None:
            return pool.submit(self.service.evaluate, request)
        return pool.submit(self._evaluate_in_time, request,
                           time.monotonic() + request.timeout)

    def _evaluate_in_time(self, request: GuardRequest, deadline: float) -> GuardResult:
        """A queued evaluation whose caller is past its timeout is not run. The caller
        cancels it when it gives up, but a caller starved of the GIL by busy evaluations
        cannot, and running the whole queue would keep it starved until the queue is empty."""
        if time.monotonic() >= deadline:
            raise GuardFailure("the caller's timeout passed before the evaluation started")
        return self.service.evaluate(request)

    def _gave_up(self, request: GuardRequest, future: Future[GuardResult]) -> GuardFailure:
        if not future.cancel():  # running: let it finish, and drop what it returns
            name = request.tool_name

            def discard(done: Future[GuardResult]) -> None:
                if done.exception() is None:  # (a skipped one raised GuardFailure)
                    log.warning("staso: the evaluation of %r finished after its caller's "
                                "timeout; its result was discarded", name)
            future.add_done_callback(discard)
        started = not future.cancelled()  # cancelled: still queued behind busy threads
        plugin = self.service.plugins.blame(request.decision_id, started)
        if plugin is not None:  # it hung in a plugin: the call blocks, naming it
            return PluginTimeout(plugin, f"did not answer within the {request.timeout:g} s "
                                         "timeout")
        return GuardFailure(f"policy evaluation did not finish within the "
                            f"{request.timeout:g} s timeout")

    # -- the rest of the flow ---------------------------------------------------------------
    def wait_answer(self, escalation_id: str, deadline: float,
                    poll_interval: float) -> Escalation:
        return self.service.wait_answer(escalation_id, deadline, poll_interval)

    async def await_answer(self, escalation_id: str, deadline: float,
                           poll_interval: float) -> Escalation:
        return await self.service.await_answer(escalation_id, deadline, poll_interval)

    # each write waits for a locked store only as long as the call's timeout
    def expire(self, escalation_id: str, *, timeout: float | None = None) -> Escalation:
        with lock_waits_until(_deadline(timeout)):
            return self.service.expire(escalation_id)

    async def aexpire(self, escalation_id: str, *, timeout: float | None = None) -> Escalation:
        with lock_waits_until(_deadline(timeout)):  # to_thread carries it to the thread
            return await asyncio.to_thread(self.service.expire, escalation_id)

    def claim(self, answered: Escalation, decision_id: str, *,
              timeout: float | None = None) -> bool:
        with lock_waits_until(_deadline(timeout)):
            return self.service.claim(answered, decision_id)

    async def aclaim(self, answered: Escalation, decision_id: str, *,
                     timeout: float | None = None) -> bool:
        with lock_waits_until(_deadline(timeout)):
            return await asyncio.to_thread(self.service.claim, answered, decision_id)

    def give_up(self, escalation_id: str, decision_id: str, *,
                timeout: float | None = None) -> None:
        with lock_waits_until(_deadline(timeout)):
            self.service.give_up(escalation_id, decision_id)

    async def agive_up(self, escalation_id: str, decision_id: str, *,
                       timeout: float | None = None) -> None:
        with lock_waits_until(_deadline(timeout)):
            await asyncio.to_thread(self.service.give_up, escalation_id, decision_id)

    def finish(self, request: GuardRequest, result: GuardResult, logged: bool) -> None:
        # an embedded call's decision id is new (made by the client), so no retry asks for
        # its answer again; only a waited escalation's is read back (the record of how it
        # ended starts from it). Remembering every allow cost ~1 µs a call.
        self.service.finish(request, result, logged=logged,
                            remember=result.action == "escalate")

    def record_execution(self, request: GuardRequest | None, decision_id: str,
                         fields: dict[str, Any]) -> None:
        self.service.record_execution(request, decision_id, fields)

    def get_escalation(self, escalation_id: str) -> Escalation:
        return self.service.get_escalation(escalation_id)

    def list_escalations(self, **filters: Any) -> list[Escalation]:
        return self.service.list_escalations(**filters)

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None,
                modified_input: dict[str, Any] | None, grant: dict[str, Any] | None = None,
                via: str | None = None) -> Escalation:
        # embedded, the answer comes from this process's own code (or staso's CLI on it)
        return self.service.resolve(escalation_id, status=status, by=by, comment=comment,
                                    modified_input=modified_input, grant=grant,
                                    via=via or "python")

    def list_grants(self, *, live_only: bool = False, limit: int = 200) -> list[Grant]:
        return self.service.store.list_grants(live_only=live_only, limit=limit)

    def get_grant(self, grant_id: str) -> Grant:
        return grants.lookup(self.service.store, grant_id)

    def revoke_grant(self, grant_id: str, *, by: str) -> Grant:
        return grants.revoke(self.service.store, grant_id, by=by)

    def list_decisions(self, filters: DecisionFilter) -> DecisionPage:
        self.service.flush()  # (what this process decided is in the log it reads)
        page = self.service.store.query_decisions(filters)
        masker = self.service.policy.log_masker
        return DecisionPage([decision_json(row, masker) for row in page.items],
                            page.next_cursor)

    async def alist_decisions(self, filters: DecisionFilter) -> DecisionPage:
        return await asyncio.to_thread(self.list_decisions, filters)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        self.service.flush()
        row = self.service.store.get_decision(decision_id)
        if row is None:
            return None
        data = decision_json(row, self.service.policy.log_masker)
        data["escalation"] = None
        if row.get("escalation_id"):  # as a server gives it (GET /v1/escalations/{id})
            try:
                esc = self.service.get_escalation(row["escalation_id"])
            except EscalationNotFound:
                return data
            data["escalation"] = {**esc.to_dict(),
                                  "time_to_resolution": esc.time_to_resolution}
        return data

    async def aget_decision(self, decision_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.get_decision, decision_id)

    def flush(self) -> None:
        self.service.flush()

    def close(self) -> None:
        if self._pool is not None:  # a slow evaluation still running is not waited for
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.service.close()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
