"""The client: one per ``st.init``. Builds requests, runs the guard flow on a transport,
turns failures into fail-closed decisions, and keeps the decision log."""

from __future__ import annotations

import atexit
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .conversations import current_context
from .decision_filters import DecisionFilter, DecisionPage
from .errors import EscalationUnavailable, InvalidToolInput, NoFallback, PluginTimeout, StasoError
from .jsonutil import check_json, encoded_size
from .models import TOOL_NAME_LIMIT, Escalation, GuardRequest, GuardResult
from .options import GuardOptionKwargs, GuardOptions, guard_options
from .plugin_guard import failed
from .resolution import escalation_flow
from .settings import Settings
from .steps import Flow, Record, Step, WaitAnswer
from .transports.base import Transport

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .grants import Grant

log = logging.getLogger("staso")


_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(int.from_bytes(secrets.token_bytes(4), "big"))


def new_decision_id() -> str:
    """Unique without a syscall per call: a random per-process prefix and a counter."""
    return f"dec_{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


PendingWatcher = Callable[[GuardResult], None]
_pending_watchers: ContextVar[tuple[PendingWatcher, ...]] = ContextVar("staso_pending_watchers",
                                                                      default=())


@contextmanager
def watch_pending(watcher: PendingWatcher) -> Iterator[None]:
    """Call ``watcher(result)`` (the pending escalation) when a guard call made in this
    context starts waiting for a person: an adapter can tell its user while it waits (the
    MCP proxy sends progress, or asks the person in the client). A watcher that raises is
    logged and ignored: it never changes the decision."""
    token = _pending_watchers.set((*_pending_watchers.get(), watcher))
    try:
        yield
    finally:
        _pending_watchers.reset(token)


def _tell_watchers(result: GuardResult) -> None:
    for watcher in _pending_watchers.get():
        try:
            watcher(result)
        except Exception:
            log.exception("staso: a pending-escalation watcher failed (ignored)")


def _build_transport(settings: Settings) -> Transport:
    if settings.remote:
        from .transports.http import HttpTransport

        return HttpTransport(settings)
    from .dead_letters import DEAD_LETTER_FILE
    from .plugins import make_plugin_manager
    from .policy.discovery import load_any_policy
    from .service import DecisionService
    from .store import open_store, sqlite_url
    from .transports.embedded import EmbeddedTransport

    pm = make_plugin_manager(settings.plugins)
    policy = load_any_policy(settings.policy, pm)
    store = open_store(sqlite_url(settings.home))
    service = DecisionService(store, policy, pm,
                              dead_letter_file=settings.home / DEAD_LETTER_FILE)
    return EmbeddedTransport(service, workers=settings.eval_workers)


class Client:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.resolve()
        self.transport = _build_transport(self.settings)
        self._closed = False
        self._lock = threading.Lock()
        atexit.register(self.shutdown)

    # -- building requests ------------------------------------------------------------------
    def _request(self, tool_name: str, tool_input: Any, context: dict[str, Any] | None,
                 wait: bool, escalation_timeout: float,
                 timeout: float | None = None) -> tuple[GuardRequest, int]:
        if not isinstance(tool_name, str) or not tool_name:
            raise InvalidToolInput(f"tool_name must be a non-empty string, not {tool_name!r}")
        if len(tool_name) > TOOL_NAME_LIMIT:
            raise InvalidToolInput(f"tool_name is {len(tool_name):,} characters, over the "
                                   f"{TOOL_NAME_LIMIT}-character limit")
        size = encoded_size(tool_input)
        merged = current_context()
        if merged:  # ``st.conversation``'s keys are the caller's too: checked as context= is
            check_json(merged, "conversation context")
        if context:
            if not isinstance(context, dict):
                raise InvalidToolInput(f"context must be a dict, not {type(context).__name__}")
            check_json(context, "context")
            merged.update(context)
        request = GuardRequest.made(
            tool_name=tool_name, tool_input=tool_input, decision_id=new_decision_id(),
            agent_name=self.settings.agent_name, environment=self.settings.environment,
            context=merged, wait=wait, escalation_timeout=escalation_timeout,
            timeout=self.settings.guard_timeout if timeout is None else timeout)
        return request, size

    def _too_large(self, request: GuardRequest, size: int) -> GuardResult:
        limit = self.settings.max_input_bytes
        return GuardResult(
            action="block", rule_name="staso/input_too_large", severity="high",
            reason=f"tool_input is {size:,} bytes of JSON, over the {limit:,}-byte limit",
            decision_id=request.decision_id, tool_name=request.tool_name)

    def _failure(self, request: GuardRequest, exc: BaseException, fail_closed: bool,
                 escalating: bool) -> GuardResult:
        kind = type(exc).__name__
        log.error("staso: no decision for %r (%s: %s)", request.tool_name, kind, exc)
        if isinstance(exc, PluginTimeout):  # a hung plugin is a failed check, never an allow
            verdict = failed(exc.plugin, exc.what)  # as a plugin that raised is reported
            rule_name, reason = verdict.rule_name, verdict.reason
        elif fail_closed or escalating:  # an escalation (or a block) never degrades to allow
            if fail_closed:
                why = "failing closed"
            elif isinstance(exc, NoFallback) and not isinstance(exc, EscalationUnavailable):
                why = "a decision that was not an allow cannot fall back to allow"
            else:
                why = "an escalation cannot fall back to allow"
            rule_name = "staso/unavailable"
            reason = f"staso could not decide ({kind}: {exc}); {why}"
        else:
            return GuardResult(action="allow", reason="", decision_id=request.decision_id,
                               tool_name=request.tool_name)
        return GuardResult(action="block", severity="high", rule_name=rule_name, reason=reason,
                           decision_id=request.decision_id, tool_name=request.tool_name)

    # -- the flow -------------------------------------------------------------------------
    @staticmethod
    def _waiting(request: GuardRequest, result: GuardResult, deadline: float,
                 poll: float) -> Flow:
        """The rest of a call whose first answer is an escalation it waits on."""
        yield Record(request, result)  # the pending decision is logged at once
        result = yield from escalation_flow(request, result, deadline, poll)
        return result, True

    def _prepare(self, tool_name: str, tool_input: Any, context: dict[str, Any] | None,
                 options: GuardOptions) -> tuple[GuardRequest, GuardResult | None, int]:
        if self._closed:
            raise StasoError("this staso client was shut down; call st.init() again")
        request, size = self._request(tool_name, tool_input, context,
                                      options.wait_for_escalation, options.escalation_timeout,
                                      options.timeout)
        if not self.settings.enabled:
            return request, GuardResult(action="allow", decision_id=request.decision_id,
                                        tool_name=tool_name), size
        if size > self.settings.max_input_bytes:
            truncated = replace(request, tool_input={"_truncated": f"{size} bytes"})
            return truncated, self._too_large(request, size), size
        return request, None, size

    def _complete(self, request: GuardRequest, result: GuardResult, logged: bool,
                  started: float) -> GuardResult:
        result = result.stamped(request.decision_id, (time.perf_counter() - started) * 1000)
        if self.settings.enabled:
            self.transport.finish(request, result, logged)
        return result

    def guard(self, tool_name: str, tool_input: dict[str, Any], *,
              context: dict[str, Any] | None = None,
              **options: Unpack[GuardOptionKwargs]) -> GuardResult:
        """Decide on one tool call before it runs (the options: ``GuardOptions``)."""
        return self.guard_with(tool_name, tool_input, guard_options(options), context)

    async def aguard(self, tool_name: str, tool_input: dict[str, Any], *,
                     context: dict[str, Any] | None = None,
                     **options: Unpack[GuardOptionKwargs]) -> GuardResult:
        """``guard`` for asyncio: waits await, and no disk I/O runs on the event loop."""
        return await self.aguard_with(tool_name, tool_input, guard_options(options), context)

    def guard_with(self, tool_name: str, tool_input: dict[str, Any], options: GuardOptions,
                   context: dict[str, Any] | None = None) -> GuardResult:
        """``guard`` with options built (and checked) once, as adapters hold them."""
        run = self._start(tool_name, tool_input, context, options)
        if run.result is None:
            try:  # the first answer (the embedded transport uses the size: inline or not)
                step = run.decided(self.transport.decide(run.request, run.size))
                while step is not None:  # an escalation the call waits on
                    step = run.step(step.run(self.transport))
            except Exception as exc:
                run.failed(exc)
        return self._finish(run)

    async def aguard_with(self, tool_name: str, tool_input: dict[str, Any],
                          options: GuardOptions, context: dict[str, Any] | None = None
                          ) -> GuardResult:
        """``guard_with`` for asyncio."""
        run = self._start(tool_name, tool_input, context, options)
        if run.result is None:
            try:
                step = run.decided(await self.transport.adecide(run.request, run.size))
                while step is not None:
                    step = run.step(await step.arun(self.transport))
            except Exception as exc:
                run.failed(exc)
        return self._finish(run)

    def _start(self, tool_name: str, tool_input: Any, context: dict[str, Any] | None,
               options: GuardOptions) -> _Run:
        started = time.perf_counter()
        request, ready, size = self._prepare(tool_name, tool_input, context, options)
        return _Run(request, size, ready, started, self._fail_closed(options.fail_closed),
                    options)

    def _finish(self, run: _Run) -> GuardResult:
        if run.error is not None:
            if isinstance(run.error, InvalidToolInput):
                raise run.error
            run.result = self._failure(run.request, run.error, run.fail_closed, run.escalating)
        assert run.result is not None
        return self._complete(run.request, run.result, run.logged, run.started)

    def _fail_closed(self, override: bool | None) -> bool:
        return self.settings.fail_closed if override is None else override

    # -- tool call records ------------------------------------------------------------------
    def record_execution(self, *, decision_id: str | None, tool_name: str,
                         tool_input: dict[str, Any], fields: dict[str, Any]) -> str:
        """Record a tool's execution: on its guard decision, or as an unguarded call."""
        if decision_id is not None:
            self.transport.record_execution(None, decision_id, fields)
            return decision_id
        request = GuardRequest(tool_name=tool_name, tool_input=tool_input,
                               decision_id=new_decision_id(),
                               agent_name=self.settings.agent_name,
                               environment=self.settings.environment,
                               context=current_context())
        self.transport.record_execution(request, request.decision_id, fields)
        return request.decision_id

    # -- escalations ------------------------------------------------------------------------
    def get_escalation(self, escalation_id: str) -> Escalation:
        return self.transport.get_escalation(escalation_id)

    def wait_for_answer(self, escalation_id: str, *, timeout: float = 300.0,
                        poll_interval: float = 3.0) -> Escalation:
        """The escalation once a person answers it, or as it is after ``timeout`` seconds.
        Unlike ``guard(wait_for_escalation=True)`` this uses nothing up: the identical call
        made afterwards is the one an approval lets through."""
        return self.transport.wait_answer(escalation_id, time.time() + timeout, poll_interval)

    async def await_answer(self, escalation_id: str, *, timeout: float = 300.0,
                           poll_interval: float = 3.0) -> Escalation:
        """``wait_for_answer`` for asyncio; the event loop stays free."""
        return await self.transport.await_answer(escalation_id, time.time() + timeout,
                                           poll_interval)

    def list_escalations(self, **filters: Any) -> list[Escalation]:
        return self.transport.list_escalations(**filters)

    def approve(self, escalation_id: str, *, by: str, comment: str | None = None,
                modified_input: dict[str, Any] | None = None,
                grant: dict[str, Any] | None = None, via: str | None = None) -> Escalation:
        """Approve, or count one approval where the rule needs several (the escalation then
        stays pending). ``grant``: also allow calls like this one for a while (a standing
        approval: ``{"ttl": "1h", "max_uses": 20, "when": "tool_input.amount <= 2000"}``)."""
        if modified_input is not None:
            encoded_size(modified_input)
        return self.transport.resolve(escalation_id, status="approved", by=_who(by),
                                      comment=comment, modified_input=modified_input,
                                      grant=grant, via=via)

    def deny(self, escalation_id: str, *, by: str, comment: str | None = None,
             via: str | None = None) -> Escalation:
        return self.transport.resolve(escalation_id, status="denied", by=_who(by),
                                      comment=comment, modified_input=None, via=via)

    # -- the decision log ------------------------------------------------------------------
    def list_decisions(self, **filters: Any) -> DecisionPage:
        """One page of recorded decisions, newest first (remote: an approver or admin key).
        Filters: ``agent``, ``tool``, ``rule`` (a name or a glob with ``*``), ``action``
        (``"block"`` or ``"block,escalate"``), ``q`` (text in the id, tool, agent, rule,
        reason or escalation id), ``since``/``until`` (epoch seconds, or ``"15m"``,
        ``"7d"`` back from now), ``limit`` (1 to 500, default 50) and ``cursor`` (the last
        page's ``next_cursor``). Text matches ignore case. A bad filter raises BadFilter
        (a ValueError) naming it."""
        return self.transport.list_decisions(DecisionFilter.parse(**filters))

    async def alist_decisions(self, **filters: Any) -> DecisionPage:
        """``list_decisions`` for asyncio."""
        return await self.transport.alist_decisions(DecisionFilter.parse(**filters))

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """One recorded decision (inputs masked per ``redact_in_log``) with its
        ``escalation`` (or None), or None if no decision has this id."""
        return self.transport.get_decision(decision_id)

    async def aget_decision(self, decision_id: str) -> dict[str, Any] | None:
        """``get_decision`` for asyncio."""
        return await self.transport.aget_decision(decision_id)

    # -- standing approvals ---------------------------------------------------------------
    def list_grants(self, *, live_only: bool = False, limit: int = 200) -> list[Grant]:
        """Standing approvals, newest first (``live_only``: those that may still be used);
        ``grant.state(time.time())`` says live, used up, expired or revoked."""
        return self.transport.list_grants(live_only=live_only, limit=limit)

    def get_grant(self, grant_id: str) -> Grant:
        """One standing approval (GrantNotFound if there is none with this id)."""
        return self.transport.get_grant(grant_id)

    def revoke_grant(self, grant_id: str, *, by: str) -> Grant:
        """End a standing approval at once: the next call it would have allowed goes to a
        person again. GrantNotFound for an unknown id, GrantRevoked if it was revoked
        already. Remote, the server records the key's name (``by`` is shown with it)."""
        return self.transport.revoke_grant(grant_id, by=_who(by))

    def flush(self) -> None:
        self.transport.flush()

    def shutdown(self) -> None:
        """Flush the decision log and close; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.transport.close()
        finally:
            atexit.unregister(self.shutdown)


class _Run:
    """One guard call in progress: its first answer, then (for an escalation it waits on)
    the flow of steps that ends it; remembers how it ended. The first answer is asked for
    directly, not as a step of a generator: most calls end there, and the generator, its
    step object and its ``StopIteration`` were 8k of the 193k instructions of a guard()."""

    def __init__(self, request: GuardRequest, size: int, ready: GuardResult | None,
                 started: float, fail_closed: bool, options: GuardOptions) -> None:
        self.request, self.size, self.result = request, size, ready
        self.started, self.fail_closed, self.options = started, fail_closed, options
        # the wait's deadline counts from the start of the call, as the person's time does
        self.deadline = time.time() + options.escalation_timeout if request.wait else 0.0
        self.flow: Flow | None = None
        self.logged = self.escalating = False
        self.error: Exception | None = None

    def decided(self, result: GuardResult) -> Step | None:
        """The call's first answer; the first step of the wait, if it waits on a person."""
        self.result = result
        if result.action != "escalate" or not self.request.wait:
            return None
        self.flow = Client._waiting(self.request, result, self.deadline,
                                    self.options.escalation_poll_interval)
        return self.step(None)

    def step(self, value: Any) -> Step | None:
        """The next transport step, or None once the flow has a result."""
        if self.flow is None:
            return None
        try:
            step = self.flow.send(value)
        except StopIteration as stop:
            self.result, self.logged = stop.value
            return None
        self.escalating = self.escalating or isinstance(step, WaitAnswer)
        if isinstance(step, Record):  # logged pending: the wait for a person begins
            _tell_watchers(step.result)
        return step

    def failed(self, exc: Exception) -> None:
        self.error = exc
        self.escalating = self.escalating or isinstance(exc, NoFallback)


def _who(by: str) -> str:
    if not isinstance(by, str) or not by.strip():
        raise ValueError("'by' must name the person answering (e.g. by='alice')")
    return by.strip()

