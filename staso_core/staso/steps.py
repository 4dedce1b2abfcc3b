"""The steps of a guard call: what the client asks its transport, one typed object each.

A call's first answer is asked for directly (``transport.decide``); the wait for a person
that follows an escalation (``Client._waiting``, ``resolution.escalation_flow``) is one
generator that yields steps and is sent their answers; the client's two driver loops run
each step with ``step.run(transport)`` (``guard``) or ``await step.arun(transport)``
(``aguard``), the way httpx writes its sync and async send loops over one request model.
Every async twin on a transport is named ``a`` + the sync name.

Steps are never changed once made, but they are not frozen dataclasses: a frozen one sets
each field through ``object.__setattr__`` (0.35 -> 0.15 µs a step).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Union

from .models import Escalation, GuardRequest, GuardResult
from .transports.base import Transport


@dataclass(slots=True)
class Decide:
    """Ask again for a first answer (and store its escalation): a waited call whose
    approval another identical call used first."""

    request: GuardRequest

    def run(self, transport: Transport) -> GuardResult:
        return transport.decide(self.request)

    async def arun(self, transport: Transport) -> GuardResult:
        return await transport.adecide(self.request)


@dataclass(slots=True)
class Record:
    """Log a pending decision at once (a waited call's final answer updates it later)."""

    request: GuardRequest
    result: GuardResult

    def run(self, transport: Transport) -> None:
        transport.finish(self.request, self.result, False)

    async def arun(self, transport: Transport) -> None:
        transport.finish(self.request, self.result, False)  # memory only: no I/O to await


@dataclass(slots=True)
class WaitAnswer:
    """Wait until a person answers the escalation, or ``deadline`` (epoch seconds)."""

    escalation_id: str
    deadline: float
    poll_interval: float

    def run(self, transport: Transport) -> Escalation:
        return transport.wait_answer(self.escalation_id, self.deadline, self.poll_interval)

    async def arun(self, transport: Transport) -> Escalation:
        return await transport.await_answer(self.escalation_id, self.deadline,
                                            self.poll_interval)


@dataclass(slots=True)
class Expire:
    """Mark an escalation whose time is up as timed out (once, wherever it is read)."""

    escalation_id: str
    timeout: float | None = None  # the call's timeout: how long a locked store is waited for

    def run(self, transport: Transport) -> Escalation:
        return transport.expire(self.escalation_id, timeout=self.timeout)

    async def arun(self, transport: Transport) -> Escalation:
        return await transport.aexpire(self.escalation_id, timeout=self.timeout)


@dataclass(slots=True)
class Claim:
    """Use up an answered escalation for this call (an approval is single use)."""

    answered: Escalation
    decision_id: str
    timeout: float | None = None

    def run(self, transport: Transport) -> bool:
        return transport.claim(self.answered, self.decision_id, timeout=self.timeout)

    async def arun(self, transport: Transport) -> bool:
        return await transport.aclaim(self.answered, self.decision_id, timeout=self.timeout)


@dataclass(slots=True)
class GiveUp:
    """The call's deadline passed before an answer it could use: its decision row records
    the timeout it was told."""

    escalation_id: str
    decision_id: str
    timeout: float | None = None

    def run(self, transport: Transport) -> None:
        transport.give_up(self.escalation_id, self.decision_id, timeout=self.timeout)

    async def arun(self, transport: Transport) -> None:
        await transport.agive_up(self.escalation_id, self.decision_id, timeout=self.timeout)


Step = Union[Decide, Record, WaitAnswer, Expire, Claim, GiveUp]  # noqa: UP007 (a runtime alias)
# A flow yields steps, is sent each one's answer, and returns (decision, already logged).
Flow = Generator[Step, Any, tuple[GuardResult, bool]]
