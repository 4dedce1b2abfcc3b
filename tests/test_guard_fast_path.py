"""``POST /v1/guard`` is answered ahead of FastAPI's router (``app.GuardFastPath``): every
answer, error or not, is the one the router gives; and under concurrent calls (group commit)
each decision is in the database when its answer arrives, while a row the database refuses
fails its own call only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REFUND_POLICY, make_policy
from staso.models import GuardResult, RuleResult
from staso.server import ServerConfig, create_app
from staso.server import app as server_app
from staso.server.api import _encode, encode_json
from staso.server.metrics import Metrics
from staso.store import Store
from staso.store.keys import create_key


class Served:
    def __init__(self, app: Any, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.app, self.client, self.keys = app, client, keys

    async def guard(self, body: Any, role: str | None = "agent", **kwargs: Any
                    ) -> httpx.Response:
        headers = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        if isinstance(body, (bytes, str)):
            return await self.client.post("/v1/guard", content=body, headers=headers, **kwargs)
        return await self.client.post("/v1/guard", json=body, headers=headers, **kwargs)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Served]:
    """A staso app on a fresh SQLite file, called in-process."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    keys = {"agent": create_key(store, role="agent", name="refund-agent")[1],
            "bound": create_key(store, role="agent", name="bound", agents="bot-*")[1],
            "approver": create_key(store, role="approver", name="alice")[1]}
    store.close()
    app = create_app(ServerConfig(database_url=url, policy=make_policy(tmp_path, REFUND_POLICY),
                                  max_input_bytes=2048,
                                  dead_letter_file=tmp_path / "dead.jsonl"))
    state = app.state.staso
    state.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://staso") as client:
            yield Served(app, client, keys)
    finally:
        await state.stop()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as served:
        yield served


def _calls() -> list[tuple[Any, str | None, dict[str, Any]]]:
    """(body, role, request options): each answer the guard route gives."""
    allow = {"tool_name": "process_refund", "tool_input": {"amount": 10}, "decision_id": "d-1"}
    return [
        (allow, "agent", {}),
        (allow, "agent", {}),  # the retry: answered from memory
        ({**allow, "tool_input": {"amount": 11}}, "agent", {}),  # a reused id: 409
        ({"tool_name": "process_refund", "tool_input": {"amount": 5000},
          "decision_id": "d-2"}, "agent", {}),  # escalate
        (allow, None, {}),  # 401
        (allow, "approver", {}),  # 403: the wrong role
        ({**allow, "decision_id": "d-3", "agent_name": "someone"}, "bound", {}),  # 403
        (b"{not json", "agent", {}),  # 422
        ({"tool_input": {}}, "agent", {}),  # 422: no tool_name
        ({"tool_name": "t", "tool_input": [1]}, "agent", {}),  # 422: not a dict
        ({"tool_name": "t", "tool_input": {"x": "y" * 3000}}, "agent", {}),  # 413: the input
        (b"x" * 80_000, "agent", {}),  # 413: the body (over 2 x 2048 + 64 KiB), unread
        ({**allow, "decision_id": "d-4", "timeout": "soon"}, "agent", {}),  # 422
    ]


def _comparable(response: httpx.Response) -> tuple[int, Any, str | None]:
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = response.text
    if isinstance(body, dict):
        body.pop("latency_ms", None)
        if "escalation_id" in body:
            body["escalation_id"] = bool(body["escalation_id"])
    return response.status_code, body, response.headers.get("www-authenticate")


async def test_every_answer_is_the_routers(served: Served, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    real_guard_app = server_app._guard_app

    async def spied(scope: Any, receive: Any, send: Any) -> None:
        taken.append(scope["path"])
        await real_guard_app(scope, receive, send)

    monkeypatch.setattr(server_app, "_guard_app", spied)
    fast = [_comparable(await served.guard(body, role, **kw)) for body, role, kw in _calls()]
    errors = dict(served.app.state.staso.metrics.http_errors)
    assert len(taken) == len(_calls()) - 1  # all but the body refused unread

    async def through_the_router(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # the same calls on a second app, where the router answers them
    monkeypatch.setattr(server_app.GuardFastPath, "__call__", through_the_router)
    (tmp_path / "routed").mkdir()
    async with serving(tmp_path / "routed") as other:
        routed = [_comparable(await other.guard(body, role, **kw))
                  for body, role, kw in _calls()]
        assert dict(other.app.state.staso.metrics.http_errors) == errors
    assert fast == routed
    assert [status for status, _, _ in fast] == [200, 200, 409, 200, 401, 403, 403, 422, 422,
                                                 422, 413, 413, 422]


async def test_the_route_stays_documented_and_other_methods_go_to_the_router(
        served: Served) -> None:
    assert "/v1/guard" in served.app.openapi()["paths"]
    assert (await served.client.get("/v1/guard")).status_code == 405


async def test_each_answer_follows_its_own_record(served: Served) -> None:
    """Group commit: many calls share a transaction, yet each answer comes only once its
    row is written, and a row the database refuses fails that call alone (503), while the
    rest of its batch is written and answered."""
    log = served.app.state.staso.service.log
    real = log._store
    written: set[str] = set()

    class Refusing:
        def write_decisions(self, rows: list[dict[str, Any]], updates: Any = ()) -> None:
            rows = list(rows)
            if any(r["tool_input"].get("refuse") for r in rows):
                raise ValueError("this row is refused")
            real.write_decisions(rows, updates)
            written.update(r["id"] for r in rows)

    log._store = Refusing()

    async def call(i: int) -> tuple[int, str, bool]:
        response = await served.guard({"tool_name": "process_refund", "decision_id": f"g-{i}",
                                       "tool_input": {"amount": i, "refuse": i % 7 == 3}})
        return response.status_code, f"g-{i}", f"g-{i}" in written  # at the answer

    answers = await asyncio.gather(*(call(i) for i in range(120)))
    for status, decision_id, recorded in answers:
        refused = int(decision_id[2:]) % 7 == 3
        assert (status, recorded) == ((503, False) if refused else (200, True)), decision_id
    store = Store(served.app.state.staso.config.database_url)
    try:
        for _, decision_id, _ in answers:
            assert (store.get_decision(decision_id) is not None) == (decision_id in written)
    finally:
        store.close()


def test_the_answer_json_is_to_dict() -> None:
    """The answer is encoded from each rule result's cached JSON: the same JSON as
    ``to_dict`` gives, odd text included."""
    results = [RuleResult(f"r{i}", True, "block") for i in range(5)] + [
        RuleResult("odd", False, "escalate", reason="caf\u00e9 \u2028 \"q\" \ud800")]
    for result in (
        GuardResult(action="allow"),
        GuardResult(action="escalate", reason="r\u00e9", results=results, decision_id="d",
                    rules_triggered=["odd"], modified_input={"a": [1, {"b": None}]},
                    answers=[{"by": "x"}], tool_name="t", latency_ms=1.5),
        GuardResult(action="block", reason="a lone \udc80 surrogate", results=results),
    ):
        assert json.loads(_encode(result)) == json.loads(encode_json(result.to_dict()))


def test_latency_histogram_is_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.0001, 0.0005, 0.0007, 0.003, 0.2, 5.0):
        metrics.decided("allow", seconds)
    lines = dict(line.rsplit(" ", 1) for line in metrics.render(None, 1).splitlines()
                 if line.startswith("staso_guard_latency_seconds_bucket"))
    assert [int(n) for n in lines.values()] == [2, 3, 3, 4, 4, 4, 4, 4, 5, 5, 6]
