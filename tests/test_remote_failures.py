"""Remote mode when things go wrong (fail closed; a retry reuses the decision id): a network
that drops
answers, a slow server, 5xx and malformed or unknown answers. Never allow by accident."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import staso as st
from servers import Server
from tally import tally


class DroppingProxy:
    """A TCP proxy that forwards the first ``drops`` requests to the server and then cuts
    the connection before the answer reaches the client: the server acted, the client
    never heard."""

    def __init__(self, target_port: int, drops: int, *, mid_request: bool = False) -> None:
        # mid_request: cut the connection halfway through sending the request instead
        self.target_port, self.drops, self.mid_request = target_port, drops, mid_request
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            drop = self.connections <= self.drops
            threading.Thread(target=self._serve, args=(client, drop), daemon=True).start()

    def _serve(self, client: socket.socket, drop: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        if drop:  # forward one request, wait for the server to answer, then cut both ends
            client.settimeout(10)
            request = _whole_request(client)
            if self.mid_request:  # the server gets half a request, then the line goes dead
                upstream.sendall(request[:len(request) // 2])
                time.sleep(0.1)
            else:
                upstream.sendall(request)
                upstream.settimeout(10)
                upstream.recv(65536)
            client.close()
            upstream.close()
            return

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        pipe(upstream, client)

    def close(self) -> None:
        self.sock.close()


def _whole_request(sock: socket.socket) -> bytes:
    """One HTTP request, headers and body: a client may send them in separate writes."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


class ScriptedServer:
    """A plain HTTP server that answers every request the same scripted way."""

    def __init__(self, status: int = 200, body: Any = None, delay: float = 0.0,
                 then: tuple[int, Any] | None = None) -> None:
        self.status, self.body, self.delay, self.hits = status, body, delay, 0
        self.then = then  # after the first answer, answer this way
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.hits += 1
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                time.sleep(outer.delay)
                data = outer.body if isinstance(outer.body, bytes) else json.dumps(
                    outer.body).encode()
                self.send_response(outer.status)
                if outer.then is not None:
                    outer.status, outer.body = outer.then
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    st.shutdown()
    for s in servers:
        s.close()


def _init(url: str, **kwargs: Any) -> None:
    st.init(api_key="staso_agent_test", base_url=url, agent_name="refund-agent", **kwargs)


@pytest.mark.parametrize("mid_request", [False, True], ids=["answer lost", "request cut"])
def test_a_dropped_answer_is_retried_without_a_second_escalation(server: Server,
                                                                 mid_request: bool) -> None:
    proxy = DroppingProxy(server.port, drops=2, mid_request=mid_request)
    try:
        st.init(api_key=server.keys["agent"], base_url=f"http://127.0.0.1:{proxy.port}",
                agent_name="refund-agent")
        result = st.guard("process_refund", {"customer": "c_drop",
                                             "amount": 6100 + mid_request})
    finally:
        st.shutdown()
        proxy.close()
    assert proxy.connections == 3  # two answers lost, the third got through
    assert result.action == "escalate"
    amount = 6100 + mid_request
    same = [e for e in server.request("GET", "/v1/escalations?tool=process_refund",
                                      role="approver").json()
            if e["tool_input"] == {"customer": "c_drop", "amount": amount}]
    assert [e["id"] for e in same] == [result.escalation_id]
    assert same[0]["decision_id"] == result.decision_id  # one decision id across the retries
    what = "the request is cut halfway" if mid_request else "the answer is lost"
    tally(f"network drops twice mid-request: {what} ({server.backend})",
          sent=proxy.connections, escalations=len(same), duplicates=len(same) - 1, lost=0)


def test_a_slow_server_fails_closed_within_the_timeout(scripted: list[ScriptedServer]) -> None:
    slow = ScriptedServer(body={"action": "allow"}, delay=3.0)
    scripted.append(slow)
    _init(slow.url)
    started = time.monotonic()
    result = st.guard("process_refund", {"amount": 1}, timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.action == "block" and "timed out after 0.5 s" in result.reason
    assert elapsed < 2.0
    opened = st.guard("process_refund", {"amount": 1}, timeout=0.3, fail_closed=False)
    assert opened.action == "allow"  # the caller chose fail-open for this call
    tally("slow server past the guard timeout", sent=2, failed_closed=1, allowed_by_failure=0,
          allowed_by_choice=1, lost=0)


@pytest.mark.parametrize("status,body,expected", [
    (500, {"detail": "boom"}, "server error 500"),
    (503, {"detail": "db down"}, "server error 503"),
    (200, b"<html>not json</html>", "malformed answer"),
    (200, {"action": "approve"}, "unknown action 'approve'"),
    (200, {"action": None}, "unknown action None"),
    (200, {"action": "escalate"}, "escalate without an escalation_id"),
    (200, {"action": "modify", "modified_input": "x"}, "modify without a modified_input"),
    (200, ["allow"], "not a JSON object"),
])
def test_bad_answers_never_allow(scripted: list[ScriptedServer], status: int, body: Any,
                                 expected: str) -> None:
    bad = ScriptedServer(status=status, body=body)
    scripted.append(bad)
    _init(bad.url, guard_timeout=0.5)
    result = st.guard("process_refund", {"amount": 1})
    assert result.action == "block", result
    assert expected in result.reason and "failing closed" in result.reason
    if status >= 500:
        assert bad.hits > 1  # retried with the same decision id before giving up
    tally("5xx, malformed and unknown-action answers", sent=bad.hits, failed_closed=1,
          allowed_by_failure=0, lost=0)


def test_fail_open_still_never_turns_an_escalation_into_allow(
        scripted: list[ScriptedServer]) -> None:
    flaky = ScriptedServer(status=200, body={
        "action": "escalate", "escalation_id": "esc_x", "escalation_status": "pending"},
        then=(500, {"detail": "down"}))  # the server breaks while the agent waits
    scripted.append(flaky)
    _init(flaky.url, fail_closed=False, guard_timeout=0.5)
    waited = st.guard("process_refund", {"amount": 9000}, wait_for_escalation=True,
                      escalation_timeout=1.0, escalation_poll_interval=0.2)
    assert waited.action == "block" and "cannot fall back to allow" in waited.reason
    tally("server breaks while a fail-open agent waits", sent=flaky.hits, escalations=1,
          failed_closed=1, allowed_by_failure=0, lost=0)


def test_unreachable_server_names_the_failure(scripted: list[ScriptedServer]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _init(f"http://127.0.0.1:{port}", guard_timeout=0.5)
    result = st.guard("process_refund", {"amount": 1})
    assert result.action == "block" and "server unreachable" in result.reason
