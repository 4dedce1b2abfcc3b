"""Remote transport: the client talks to ``staso serve`` over HTTP with httpx.

As in httpx itself, the sync and async clients share one request model: every operation
builds a ``Call`` (method, path, body, time budget, whether a retry is safe, how to read
the answer), and ``_Attempts`` decides after each try whether to retry, return or fail.
Only the sending differs. Guard requests carry their decision id, so a retry after a lost
answer gets the first answer and never a second escalation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from .. import __version__
from ..approvers import AnswerRefused, NotAnApprover
from ..dead_letters import DEAD_LETTER_FILE, DeadLetters
from ..decision_filters import DecisionFilter, DecisionPage
from ..decision_log import DecisionLog
from ..errors import (
    AccessDenied,
    EscalationConflict,
    EscalationNotFound,
    EscalationUnavailable,
    GuardFailure,
    InvalidToolInput,
    NoFallback,
    ReusedIdNoFallback,
    StasoError,
    StoreUnavailable,
)
from ..jsonutil import wire_json
from ..models import ACTIONS, Escalation, GuardRequest, GuardResult
from ..settings import Settings

if TYPE_CHECKING:
    from ..grants import Grant

log = logging.getLogger("staso")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_LONG_POLL = 25.0  # seconds one long-poll request may hold, below common proxy timeouts


_JSON_HEADERS = {"Content-Type": "application/json"}
# errors whose calls must never fall back to allow (the policy said escalate or block)
_NO_FALLBACK = frozenset(e.__name__ for e in (NoFallback, EscalationUnavailable,
                                              ReusedIdNoFallback))


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    parse: Callable[[Any], Any]
    budget: float  # seconds for every attempt together
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    retry: bool = True  # safe to send again (idempotent)
    hold: float = 0.0  # seconds the server may hold the request (long-poll)
    # seconds to keep retrying a refused connection (a server restarting); None: the budget
    connect_retry: float | None = None

    def body(self) -> dict[str, Any]:
        """The request's body arguments for httpx (any text survives: ``wire_json``)."""
        if self.json is None:
            return {}
        return {"content": wire_json(self.json), "headers": _JSON_HEADERS}


class _Attempts:
    """The retry policy of one call: exponential backoff within the call's budget."""

    def __init__(self, call: Call, base_url: str = "") -> None:
        self.call = call
        self.base_url = base_url
        self.started = time.monotonic()
        self.deadline = self.started + call.budget
        self.tries = 0
        self.no_fallback: str | None = None  # an attempt said: this call must never allow

    def timeout(self) -> httpx.Timeout:
        left = max(self.deadline - time.monotonic(), 0.05)
        return httpx.Timeout(left + self.call.hold, connect=min(left, 5.0))

    def outcome(self, answer: httpx.Response | Exception) -> tuple[bool, Any]:
        """(True, value) when done, (False, seconds to sleep) to try again; raises on failure."""
        self.tries += 1
        if isinstance(answer, httpx.Response) and answer.status_code in (409, 503):
            self._note_no_fallback(answer)
        retryable = isinstance(answer, httpx.TransportError) or (
            isinstance(answer, httpx.Response) and answer.status_code in _RETRY_STATUS)
        delay = min(0.05 * 2 ** (self.tries - 1), 1.0)
        if isinstance(answer, httpx.ConnectError) and self.call.connect_retry is not None:
            # nothing was sent: safe to retry, but a server that stays down is a failure
            # within the short connect_retry, not the call's whole budget
            delay = min(delay, 0.25)
            retryable = time.monotonic() + delay - self.started < self.call.connect_retry
        if retryable and self.call.retry and time.monotonic() + delay < self.deadline:
            return False, delay
        if isinstance(answer, Exception):
            failure = _failure(answer, self.call, self.tries, self.base_url)
            if self.no_fallback is not None:  # a later attempt's failure does not undo it
                raise NoFallback(f"{self.no_fallback}; then {failure}") from answer
            raise failure from answer
        return True, self._read(answer)

    def _note_no_fallback(self, response: httpx.Response) -> None:
        try:
            data = response.json()
        except ValueError:
            return
        if isinstance(data, dict) and data.get("error") in _NO_FALLBACK:
            self.no_fallback = f"the staso server could not finish a decision that was not " \
                               f"an allow: {data.get('detail')}"

    def _read(self, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        detail = data.get("detail") if isinstance(data, dict) else None
        detail = detail if isinstance(detail, str) else response.text[:300]
        if status < 300:
            try:
                return self.call.parse(data)
            except GuardFailure:
                raise
            except Exception as exc:
                raise GuardFailure(f"malformed answer from the staso server to "
                                   f"{self.call.method} {self.call.path}: {exc}") from exc
        if self.no_fallback is not None:  # this call (or an attempt of it) must not allow
            raise NoFallback(self.no_fallback)
        error = data.get("error") if isinstance(data, dict) else None
        refused = _REFUSALS.get(error) if isinstance(error, str) else None
        if refused is not None:  # the same error as embedded: who may not answer, and why
            raise refused(detail)
        if status in (401, 403):
            raise AccessDenied(f"the staso server refused the API key ({status}): {detail}")
        if status == 404 and (not isinstance(data, dict) or (
                not data.get("error") and data.get("detail") == "Not Found")):
            # no route: the URL is not a staso server's root (e.g. it ends in /v1)
            raise GuardFailure(f"no staso API at {self.base_url or 'the server'} (is it the "
                               f"server's root URL?)")
        if status == 404:
            raise EscalationNotFound(detail)
        if status == 409:
            state = data.get("status", "") if isinstance(data, dict) else ""
            raise EscalationConflict(detail, status=str(state))
        if status in (413, 422):
            raise InvalidToolInput(f"the staso server rejected the request ({status}): {detail}")
        kind = "server error" if status >= 500 else "unexpected answer"
        raise GuardFailure(f"{kind} {status} from the staso server after {self.tries} "
                           f"attempt(s): {detail}")


# refusals of an answer, raised as embedded mode raises them (a NotAnApprover is an
# AccessDenied, an AnswerRefused a ValueError)
_REFUSALS: dict[str, type[StasoError]] = {"NotAnApprover": NotAnApprover,
                                          "AnswerRefused": AnswerRefused}


@functools.cache
def _ssl_context() -> Any:
    """One TLS context for every client of the process: httpx builds a new one (loading the
    CA bundle, ~20 ms) for each client otherwise, and a process may hold one client per
    event loop and per ``st.Client``."""
    return httpx.create_ssl_context()


class ServerUnreachable(GuardFailure):
    """No connection to the server at all; ``summary`` says so in one line for a person."""

    def __init__(self, base_url: str, exc: Exception, tries: int) -> None:
        why = "connection refused" if "refused" in str(exc).lower() else str(exc)
        self.summary = (f"cannot reach the staso server at {base_url or '?'}: {why} "
                        f"(is staso serve running?)")
        super().__init__(f"server unreachable ({tries} attempt(s)): {self.summary}")


def _failure(exc: Exception, call: Call, tries: int, base_url: str = "") -> GuardFailure:
    if isinstance(exc, httpx.TimeoutException):
        what = f"timed out after {call.budget:g} s"
    elif isinstance(exc, httpx.ConnectError):
        return ServerUnreachable(base_url, exc, tries)
    else:
        what = "connection failed"
    return GuardFailure(f"{what} ({type(exc).__name__}: {exc}) after {tries} attempt(s)")


# -- reading answers -------------------------------------------------------------------------
def _guard_result(data: Any) -> GuardResult:
    if not isinstance(data, dict):
        raise GuardFailure("malformed answer from the staso server: not a JSON object")
    action = data.get("action")
    if action not in ACTIONS:
        # an action this client does not know is a failure, never an allow
        raise GuardFailure(f"the staso server answered an unknown action {action!r}")
    result = GuardResult.from_dict(data)
    if action == "escalate" and not isinstance(result.escalation_id, str):
        raise GuardFailure("malformed answer: escalate without an escalation_id")
    if action == "modify" and not isinstance(result.modified_input, dict):
        raise GuardFailure("malformed answer: modify without a modified_input object")
    return result


def _escalation(data: Any) -> Escalation:
    if not isinstance(data, dict) or data.get("status") not in (
            "pending", "approved", "denied", "timeout"):
        raise GuardFailure("malformed escalation from the staso server")
    esc: Escalation = Escalation.from_dict(data)
    return esc


def _escalations(data: Any) -> list[Escalation]:
    if not isinstance(data, list):
        raise GuardFailure("malformed escalation list from the staso server")
    return [_escalation(item) for item in data]


def _grant(data: Any) -> Grant:
    from ..grants import Grant  # (imported when used: it brings the policy engine along)

    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise GuardFailure("malformed standing approval from the staso server")
    known = {f.name for f in dataclasses.fields(Grant)}
    return Grant(**{k: v for k, v in data.items() if k in known})


def _grants(data: Any) -> list[Grant]:
    if not isinstance(data, list):
        raise GuardFailure("malformed list of standing approvals from the staso server")
    return [_grant(item) for item in data]


def segment(value: str, kind: str = "escalation") -> str:
    """An id as one path segment: ``?``, ``#``, ``%`` and the rest percent-encoded (an id
    never reaches another route). "", "." and ".." (which a URL resolves away) and an id
    with a ``/`` (the server decodes ``%2F`` before routing: no route takes it) are no id:
    EscalationNotFound, as the server's 404 is."""
    if value in ("", ".", "..") or "/" in value:
        raise EscalationNotFound(f"no {kind} with id {value!r}")
    return quote(value, safe="")


@contextlib.contextmanager
def _grant_errors() -> Iterator[None]:
    """The grants routes' 404 and 409 as the errors the embedded store raises."""
    from ..grants import GrantNotFound, GrantRevoked

    try:
        yield
    except EscalationNotFound as exc:
        raise GrantNotFound(str(exc)) from None
    except EscalationConflict as exc:
        raise GrantRevoked(str(exc)) from None


def _decision_page(data: Any) -> DecisionPage:
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) \
            or not all(isinstance(item, dict) for item in data["items"]) \
            or not isinstance(data.get("next_cursor"), (str, type(None))):
        raise GuardFailure("malformed decision list from the staso server")
    return DecisionPage(data["items"], data["next_cursor"])


def _decision_row(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise GuardFailure("malformed decision from the staso server")
    return data


def _given_up(data: Any) -> None:
    return None


def _claimed(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("claimed"), bool):
        raise GuardFailure("malformed claim answer from the staso server")
    return bool(data["claimed"])


class HttpTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.base_url or ""
        self.headers = {"Authorization": f"Bearer {settings.api_key}",
                        "User-Agent": f"staso-python/{__version__}"}
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                  httpx.AsyncClient] = weakref.WeakKeyDictionary()
        self.log = DecisionLog(_ExecutionSink(self), dead_letters=DeadLetters(
            settings.home / DEAD_LETTER_FILE))

    # -- sending --------------------------------------------------------------------------
    def _sync(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, headers=self.headers,
                                        verify=_ssl_context())
        return self._client

    def _async(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                       verify=_ssl_context())
            self._aclients[loop] = client
        return client

    def send(self, call: Call) -> Any:
        attempts = _Attempts(self._bounded(call), self.base_url)
        while True:
            answer: httpx.Response | Exception
            try:
                answer = self._sync().request(call.method, call.path, **call.body(),
                                              params=call.params, timeout=attempts.timeout())
            except httpx.HTTPError as exc:
                answer = exc
            done, value = attempts.outcome(answer)
            if done:
                return value
            time.sleep(value)

    async def asend(self, call: Call) -> Any:
        attempts = _Attempts(self._bounded(call), self.base_url)
        while True:
            answer: httpx.Response | Exception
            try:
                answer = await self._async().request(
                    call.method, call.path, **call.body(), params=call.params,
                    timeout=attempts.timeout())
            except httpx.HTTPError as exc:
                answer = exc
            done, value = attempts.outcome(answer)
            if done:
                return value
            await asyncio.sleep(value)

    def _bounded(self, call: Call) -> Call:
        """The call with its connect_retry: the settings' (2 s by default), except a wait
        for an answer (a long-poll), which rides through a restart until its deadline."""
        if call.connect_retry is not None:
            return call
        return dataclasses.replace(call, connect_retry=self.settings.connect_retry)

    # -- the calls ------------------------------------------------------------------------
    def _budget(self, timeout: float | None = None) -> float:
        """Seconds a call may take: the guard call's own timeout, else the client's."""
        return self.settings.guard_timeout if timeout is None else timeout

    def _decide(self, request: GuardRequest) -> Call:
        return Call("POST", "/v1/guard", _guard_result, self._budget(request.timeout),
                    json=request.to_wire())

    def _wait(self, escalation_id: str, deadline: float, poll_interval: float) -> Call:
        hold = max(min(poll_interval, deadline - time.time(), _LONG_POLL), 0.0)
        # while waiting, keep retrying through server restarts until the agent's deadline
        budget = max(deadline - time.time(), 0.0) + self._budget()
        return Call("GET", f"/v1/escalations/{segment(escalation_id)}", _escalation,
                    budget, params={"wait": f"{hold:.3f}"}, hold=hold, connect_retry=budget)

    def _get(self, escalation_id: str, timeout: float | None = None) -> Call:
        return Call("GET", f"/v1/escalations/{segment(escalation_id)}", _escalation,
                    self._budget(timeout))

    def _claim(self, escalation_id: str, decision_id: str, timeout: float | None) -> Call:
        return Call("POST", f"/v1/escalations/{segment(escalation_id)}/claim", _claimed,
                    self._budget(timeout), json={"decision_id": decision_id})

    def decide(self, request: GuardRequest, size: int | None = None) -> GuardResult:
        result: GuardResult = self.send(self._decide(request))  # (the server sizes it)
        return result

    async def adecide(self, request: GuardRequest, size: int | None = None) -> GuardResult:
        result: GuardResult = await self.asend(self._decide(request))
        return result

    def wait_answer(self, escalation_id: str, deadline: float,
                    poll_interval: float) -> Escalation:
        while True:
            esc: Escalation = self.send(self._wait(escalation_id, deadline, poll_interval))
            if esc.status != "pending" or time.time() >= deadline:
                return esc

    async def await_answer(self, escalation_id: str, deadline: float,
                           poll_interval: float) -> Escalation:
        while True:
            esc: Escalation = await self.asend(self._wait(escalation_id, deadline,
                                                          poll_interval))
            if esc.status != "pending" or time.time() >= deadline:
                return esc

    def expire(self, escalation_id: str, *, timeout: float | None = None) -> Escalation:
        esc: Escalation = self.send(self._get(escalation_id, timeout))  # the server expires it
        return esc

    async def aexpire(self, escalation_id: str, *, timeout: float | None = None) -> Escalation:
        esc: Escalation = await self.asend(self._get(escalation_id, timeout))
        return esc

    def claim(self, answered: Escalation, decision_id: str, *,
              timeout: float | None = None) -> bool:
        return bool(self.send(self._claim(answered.id, decision_id, timeout)))

    async def aclaim(self, answered: Escalation, decision_id: str, *,
                     timeout: float | None = None) -> bool:
        return bool(await self.asend(self._claim(answered.id, decision_id, timeout)))

    def _give_up(self, escalation_id: str, decision_id: str, timeout: float | None) -> Call:
        return Call("POST", f"/v1/escalations/{segment(escalation_id)}/give-up", _given_up,
                    self._budget(timeout), json={"decision_id": decision_id})

    def give_up(self, escalation_id: str, decision_id: str, *,
                timeout: float | None = None) -> None:
        self.send(self._give_up(escalation_id, decision_id, timeout))

    async def agive_up(self, escalation_id: str, decision_id: str, *,
                       timeout: float | None = None) -> None:
        await self.asend(self._give_up(escalation_id, decision_id, timeout))

    def finish(self, request: GuardRequest, result: GuardResult, logged: bool) -> None:
        """The server logged the decision before answering; nothing to send."""

    def record_execution(self, request: GuardRequest | None, decision_id: str,
                         fields: dict[str, Any]) -> None:
        record = {"decision_id": decision_id, **fields}
        if request is not None:
            record.update(tool_name=request.tool_name, tool_input=request.tool_input,
                          context=request.context, environment=request.environment,
                          agent_name=request.agent_name)
        self.log.add(dict, record)

    def get_escalation(self, escalation_id: str) -> Escalation:
        esc: Escalation = self.send(self._get(escalation_id))
        return esc

    def list_escalations(self, **filters: Any) -> list[Escalation]:
        params = {k: v for k, v in filters.items() if v is not None}
        items: list[Escalation] = self.send(Call("GET", "/v1/escalations", _escalations,
                                                 self._budget(), params=params))
        return items

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None,
                modified_input: dict[str, Any] | None, grant: dict[str, Any] | None = None,
                via: str | None = None) -> Escalation:
        verb = {"approved": "approve", "denied": "deny"}[status]
        body: dict[str, Any] = {"by": by, "comment": comment}
        if via in ("api", "cli"):  # (the server records other channels itself)
            body["via"] = via
        if status == "approved":
            body["modified_input"] = modified_input
            if grant is not None:
                body["grant"] = grant
        # not retried: a lost answer to a resolution must not turn into a 409 on retry
        path = f"/v1/escalations/{segment(escalation_id)}/{verb}"
        esc: Escalation = self.send(Call("POST", path,
                                         _escalation, self._budget(), json=body, retry=False))
        return esc

    def list_grants(self, *, live_only: bool = False, limit: int = 200) -> list[Grant]:
        params: dict[str, Any] = {"limit": limit, **({"live": "true"} if live_only else {})}
        found: list[Grant] = self.send(Call("GET", "/v1/grants", _grants, self._budget(),
                                            params=params))
        return found

    def get_grant(self, grant_id: str) -> Grant:
        with _grant_errors():
            path = f"/v1/grants/{segment(grant_id, 'standing approval')}"
            grant: Grant = self.send(Call("GET", path,
                                          _grant, self._budget()))
        return grant

    def revoke_grant(self, grant_id: str, *, by: str) -> Grant:
        # the server records the key's name (``by`` is shown with it, as with answers);
        # not retried: a lost answer would come back as a 409 on retry
        with _grant_errors():
            path = f"/v1/grants/{segment(grant_id, 'standing approval')}"
            grant: Grant = self.send(Call("DELETE", path,
                                          _grant, self._budget(), params={"by": by},
                                          retry=False))
        return grant

    # -- the decision log, for operators (an approver or admin key) ----------------------
    def _decisions(self, filters: DecisionFilter) -> Call:
        return Call("GET", "/v1/decisions", _decision_page, self._budget(),
                    params=filters.params())

    def _decision(self, decision_id: str) -> Call:
        return Call("GET", f"/v1/decisions/{segment(decision_id, 'decision')}", _decision_row,
                    self._budget())

    def list_decisions(self, filters: DecisionFilter) -> DecisionPage:
        page: DecisionPage = self.send(self._decisions(filters))
        return page

    async def alist_decisions(self, filters: DecisionFilter) -> DecisionPage:
        page: DecisionPage = await self.asend(self._decisions(filters))
        return page

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        with contextlib.suppress(EscalationNotFound):  # the server's 404
            found: dict[str, Any] = self.send(self._decision(decision_id))
            return found
        return None

    async def aget_decision(self, decision_id: str) -> dict[str, Any] | None:
        with contextlib.suppress(EscalationNotFound):
            found: dict[str, Any] = await self.asend(self._decision(decision_id))
            return found
        return None

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        try:
            self.log.close()
        except StasoError as exc:
            log.warning("staso: could not send tool execution records: %s", exc)
        finally:
            if self._client is not None:
                self._client.close()


class _ExecutionSink:
    """The decision log's destination in remote mode: ``POST /v1/executions`` in batches."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def write_decisions(self, rows: list[dict[str, Any]],
                        updates: list[tuple[str, dict[str, Any]]]) -> None:
        records = rows + [{"decision_id": d, **f} for d, f in updates]
        for i in range(0, len(records), 500):
            chunk = records[i:i + 500]
            try:
                answer = self.transport.send(Call("POST", "/v1/executions", dict,
                                                  self.transport._budget(),
                                                  json={"records": chunk}))
            except (InvalidToolInput, AccessDenied):
                raise  # these records (422) or this key (401/403): the log dead-letters them
            except GuardFailure as exc:  # unreachable, 5xx: the log tries again later
                raise StoreUnavailable(f"the staso server could not record executions: "
                                       f"{exc}") from exc
            by_id = {r.get("decision_id"): r for r in chunk}
            for refused in answer.get("refused") or ():  # kept here, not lost
                decision_id = str(refused.get("decision_id"))
                self.transport.log.dead_letters.keep(
                    [("update", decision_id, by_id.get(decision_id))],
                    f"the staso server refused it: {refused.get('reason')}")
