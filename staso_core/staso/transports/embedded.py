"""In-process transport: the decision service runs inside the agent, on a local SQLite file.

Async methods evaluate policy inline (microseconds of CPU) and move every database touch
to a worker thread, so the event loop is never blocked on disk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..models import Escalation, GuardRequest, GuardResult
from ..service import DecisionService


class EmbeddedTransport:
    def __init__(self, service: DecisionService) -> None:
        self.service = service

    def decide(self, request: GuardRequest) -> GuardResult:
        return self.service.decide(request)

    async def adecide(self, request: GuardRequest) -> GuardResult:
        previous = self.service.recent(request.decision_id)
        if previous is not None:
            return previous
        result = self.service.evaluate(request)
        if result.action == "escalate":
            result = await asyncio.to_thread(self.service.escalate, request, result)
        return result

    def wait(self, escalation_id: str, deadline: float, poll_interval: float) -> Escalation:
        return self.service.wait(escalation_id, deadline, poll_interval)

    async def await_(self, escalation_id: str, deadline: float,
                     poll_interval: float) -> Escalation:
        return await self.service.wait_async(escalation_id, deadline, poll_interval)

    def expire(self, escalation_id: str) -> Escalation:
        return self.service.expire(escalation_id)

    async def aexpire(self, escalation_id: str) -> Escalation:
        return await asyncio.to_thread(self.service.expire, escalation_id)

    def claim(self, escalation_id: str, decision_id: str) -> bool:
        return self.service.claim(escalation_id, decision_id)

    async def aclaim(self, escalation_id: str, decision_id: str) -> bool:
        return await asyncio.to_thread(self.service.claim, escalation_id, decision_id)

    def finish(self, request: GuardRequest, result: GuardResult, logged: bool) -> None:
        self.service.finish(request, result, logged=logged)

    def record_execution(self, request: GuardRequest | None, decision_id: str,
                         fields: dict[str, Any]) -> None:
        self.service.record_execution(request, decision_id, fields)

    def get_escalation(self, escalation_id: str) -> Escalation:
        return self.service.get_escalation(escalation_id)

    def list_escalations(self, **filters: Any) -> list[Escalation]:
        return self.service.list_escalations(**filters)

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None,
                modified_input: dict[str, Any] | None) -> Escalation:
        return self.service.resolve(escalation_id, status=status, by=by, comment=comment,
                                    modified_input=modified_input)

    def flush(self) -> None:
        self.service.log.flush()

    def close(self) -> None:
        self.service.close()

