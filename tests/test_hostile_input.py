"""Oversize and deeply nested tool inputs, embedded and over HTTP: each gets a
clear error or a block, never a crash, a hang or a stored half-row."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import staso as st
from conftest import logged
from servers import Server
from tally import tally


def nested(depth: int, leaf: Any = "rm -rf /") -> dict[str, Any]:
    value: Any = leaf
    for _ in range(depth):
        value = {"a": value}
    return {"q": value}


def test_embedded_nesting_is_checked_at_any_depth(home: Path) -> None:
    # deep but allowed: the detectors still find the dangerous command at the bottom
    deep = st.guard("run", nested(400))
    assert deep.action == "block" and deep.rule_name == "builtin/dangerous_shell"
    for depth in (600, 5_000, 200_000):
        started = time.perf_counter()
        with pytest.raises(st.InvalidToolInput, match="nested deeper than 500 levels") as err:
            st.guard("run", nested(depth))
        assert len(str(err.value)) < 200  # the path is shortened, not 200,000 segments long
        assert time.perf_counter() - started < 5
    listed: list[Any] = []
    cur = listed
    for _ in range(5_000):
        cur.append([])
        cur = cur[0]
    with pytest.raises(st.InvalidToolInput, match="nested deeper"):
        st.guard("run", {"q": listed})
    assert [r["action"] for r in logged()] == ["block"]  # only the valid call was logged


@pytest.fixture
def agent_http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={**server.headers("agent"),
                      "content-type": "application/json"}, timeout=60) as client:
        yield client


def test_server_refuses_deep_and_oversize_bodies_and_keeps_serving(
        server: Server, agent_http: httpx.Client) -> None:
    sent, refused = 0, 0
    for depth in (1_000, 100_000):
        for opening, closing in (('{"a":', "}"), ("[", "]")):
            body = ('{"tool_name":"run","tool_input":{"q":' + opening * depth + "1"
                    + closing * depth + "}}")
            answer = agent_http.post("/v1/guard", content=body)
            sent += 1
            assert answer.status_code == 422 and "recursion" in answer.json()["detail"]
            refused += 1
    big = agent_http.post("/v1/guard", content=json.dumps(
        {"tool_name": "run", "tool_input": {"s": "a" * 2_000_000}}))
    assert big.status_code == 413 and "1,048,576-byte limit" in big.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"tool_name":"run","tool_input":{"s":"'
        for _ in range(200):
            yield b"a" * 100_000
        yield b'"}}'

    streamed = agent_http.post("/v1/guard", content=chunks())
    assert streamed.status_code == 413 and "limit" in streamed.json()["detail"]
    many_keys = agent_http.post("/v1/guard", json={
        "tool_name": "run", "tool_input": {f"k{i}": i for i in range(50_000)}})
    assert many_keys.status_code == 200  # wide but under the size limit: decided
    sent += 3
    refused += 2
    ok = agent_http.post("/v1/guard", json={"tool_name": "run", "tool_input": {"q": "ls"}})
    assert ok.status_code == 200 and ok.json()["action"] == "allow"
    tally(f"deep, oversize and streamed bodies ({server.backend})", sent=sent + 1, refused=refused,
          crashes=0, lost=0)
