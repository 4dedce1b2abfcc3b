"""Long-polls (``GET /v1/escalations/{id}?wait=``) held by the server between tries: what
each guarantees, on SQLite and PostgreSQL. No bound is a machine's speed: waits are
generous, and only lower bounds are timed."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

from servers import Server, cli, wait_for
from staso.waiting import ChangeFeed


def _escalate(server: Server, amount: int, **extra: Any) -> str:
    body = {"tool_name": "process_refund", "tool_input": {"amount": amount,
                                                          "at": time.time_ns()}, **extra}
    answer = server.request("POST", "/v1/guard", json=body).json()
    assert answer["action"] == "escalate", answer
    return str(answer["escalation_id"])


def _held(server: Server) -> int:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    line = next(x for x in text.splitlines() if x.startswith("staso_long_polls "))
    return int(float(line.split()[1]))


def test_a_hold_that_ends_returns_the_pending_escalation(server: Server) -> None:
    esc = _escalate(server, 6001)
    started = time.monotonic()
    answer = server.request("GET", f"/v1/escalations/{esc}?wait=0.6")
    assert answer.status_code == 200 and answer.json()["status"] == "pending"
    assert time.monotonic() - started >= 0.55  # held for its wait, not answered at once
    wait_for(lambda: _held(server) == 0, "the gauge back to 0")


def test_every_waiter_on_one_escalation_wakes_with_its_answer(server: Server) -> None:
    esc = _escalate(server, 6002)
    count = 200

    async def main() -> list[Any]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers("agent"),
                                     limits=limits, timeout=60) as client:
            polls = [asyncio.create_task(client.get(f"/v1/escalations/{esc}?wait=50"))
                     for _ in range(count)]
            while await asyncio.to_thread(_held, server) < count:
                await asyncio.sleep(0.1)
            denied = await asyncio.to_thread(server.request, "POST",
                                             f"/v1/escalations/{esc}/deny", role="approver",
                                             json={"comment": "no"})
            assert denied.status_code == 200
            answers = await asyncio.gather(*polls)
            return [(a.status_code, a.json()["status"], a.json()["comment"]) for a in answers]

    started = time.monotonic()
    assert asyncio.run(main()) == [(200, "denied", "no")] * count
    assert time.monotonic() - started < 45  # woken by the answer, not by the 50 s hold
    assert _held(server) == 0


def test_a_caller_that_hangs_up_frees_its_waiter(server: Server) -> None:
    esc = _escalate(server, 6003)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"GET /v1/escalations/{esc}?wait=60 HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {server.keys['agent']}\r\n\r\n".encode())
        wait_for(lambda: _held(server) == 1, "the long-poll held")
    wait_for(lambda: _held(server) == 0, "the hung-up long-poll let go", timeout=30)
    # and the escalation is still answered as ever
    approved = server.request("POST", f"/v1/escalations/{esc}/approve", role="approver",
                              json={"comment": "ok"})
    assert approved.status_code == 200
    assert server.request("GET", f"/v1/escalations/{esc}?wait=5").json()["status"] == \
        "approved"


def test_an_escalation_that_expires_while_held_is_answered_as_a_timeout(
        server: Server) -> None:
    body = {"tool_name": "process_refund", "tool_input": {"amount": 6004, "at": time.time_ns()},
            "wait": True, "escalation_timeout": 0.5}  # (so it expires in 0.5 s)
    esc = server.request("POST", "/v1/guard", json=body).json()["escalation_id"]
    started = time.monotonic()
    answer = httpx.get(f"{server.url}/v1/escalations/{esc}?wait=60", timeout=90,
                       headers=server.headers("agent")).json()
    assert answer["status"] == "timeout"
    assert time.monotonic() - started < 50  # at its expiry, not at the hold's end
    assert server.request("GET", f"/v1/escalations/{esc}?wait=20").json()["status"] == \
        "timeout"


def test_a_key_bound_to_other_agents_cannot_long_poll(server: Server) -> None:
    esc = _escalate(server, 6005)
    other = cli("keys", "create", "--role", "agent", "--name", "other-bot", "--agent",
                "other-bot", env=server.env).stdout.strip()
    for wait in ("", "?wait=5", "?wait=5.0"):
        answer = httpx.get(f"{server.url}/v1/escalations/{esc}{wait}", timeout=30,
                           headers={"Authorization": f"Bearer {other}"})
        assert answer.status_code == 403, answer.text
    assert _held(server) == 0


@pytest.mark.parametrize("wait", ["-1", "soon", "nan"])
def test_a_bad_wait_is_refused(server: Server, wait: str) -> None:
    esc = _escalate(server, 6006)
    assert server.request("GET", f"/v1/escalations/{esc}?wait={wait}").status_code == 422


def test_holds_leave_nothing_registered() -> None:
    feed = ChangeFeed()

    async def main() -> None:
        token = feed.token("esc_a")
        timed_out = feed.hold("esc_a", token, 0.05)
        woken = feed.hold("esc_a", token, 30)
        other = feed.hold("esc_b", feed.token("esc_b"), 30)
        feed.changed("esc_a")
        await asyncio.wait_for(asyncio.gather(timed_out.future, woken.future), 10)
        assert not other.future.done()
        late = feed.hold("esc_a", token, 30)  # changed since its token: done at once
        assert late.future.done()
        for hold in (timed_out, woken, other, late):
            feed.release(hold)

    asyncio.run(main())
    assert not feed._async and not feed._waiting and not feed._deadlines
