"""The stdio proxy spoken to in raw JSON-RPC, as a hostile or broken client would: what is
not a single well-formed message gets an error and reaches no tool; a call cancelled while
it waits for a person is never passed on, even once approved."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mcp_peers import NOTES_POLICY, escalations, notes_upstream, proxy_params, received
from servers import cli


class RawClient:
    """The proxy's stdin and stdout, one JSON-RPC line at a time."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def send(self, message: Any) -> None:
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the proxy closed stdout"
        message: dict[str, Any] = json.loads(line)
        return message

    def answer(self, request_id: Any) -> dict[str, Any]:
        """The next message answering ``request_id`` (notifications before it skipped)."""
        while True:
            message = self.read()
            if "method" not in message and message.get("id") == request_id:
                return message


@contextmanager
def raw_proxy(tmp_path: Path, *proxy_args: str) -> Iterator[RawClient]:
    params = proxy_params(tmp_path, list(proxy_args), notes_upstream(tmp_path), NOTES_POLICY)
    process = subprocess.Popen([params.command, *params.args], env=params.env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    client = RawClient(process)
    try:
        client.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}})
        assert client.answer(0)["result"]["serverInfo"]["name"] == "notes-server"
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield client
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("the proxy did not end when its client closed stdin") from None


def call(request_id: Any, name: str, arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


def test_what_is_not_one_message_gets_an_error_and_runs_nothing(tmp_path: Path) -> None:
    secret = {"name": "secret.txt", "content": "x"}
    with raw_proxy(tmp_path, "--upstream-timeout", "8") as client:
        client.send(b"this is not json")
        assert client.read()["error"]["code"] == -32700
        client.send(b"[" * 100_000 + b"]" * 100_000)  # nested past any parser's depth
        assert client.read()["error"]["code"] == -32700
        client.send([call(1, "write_note", secret), call(2, "echo", {"text": "a"})])
        batch = client.read()
        assert batch["id"] is None and batch["error"]["code"] == -32600
        for disguised in ("Tools/Call", "tools.call", " tools/call", "tools/call\u0000"):
            client.send({**call(3, "write_note", secret), "method": disguised})
            assert client.answer(3)["error"]["code"] == -32601, disguised
        client.send(call(4, "write_note", ["secret.txt", "x"]))
        assert client.answer(4)["error"]["code"] == -32602
        client.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": "echo"})
        assert client.answer(5)["error"]["code"] == -32602
        # a call sent as a notification (no id) is dropped: nothing runs
        client.send({"jsonrpc": "2.0", "method": "tools/call",
                     "params": {"name": "write_note", "arguments": secret}})
        client.send(call(6, "echo", {"text": "still serving"}))
        assert client.answer(6)["result"]["content"][0]["text"] == "still serving"
        client.send(call(7, "write_note", secret))  # the real thing: blocked by its rule
        refused = client.answer(7)["result"]
        assert refused["isError"] and "no_secret_notes" in refused["content"][0]["text"]
        deep: Any = "x"  # staso reads it; the server's parser gives up and never answers
        for _ in range(400):
            deep = {"d": deep}
        client.send(call(8, "echo", {"text": "deep", "extra": deep}))
        assert client.answer(8)["error"]["message"].startswith("Timed out after 8 s")
    assert received(tmp_path / "notes") == [("echo", {"text": "still serving"})]
    assert not (tmp_path / "notes" / "secret.txt").exists()


@pytest.mark.parametrize("request_id", [11, "eleven"])
def test_a_call_cancelled_while_it_waits_never_runs(tmp_path: Path, request_id: Any) -> None:
    """--wait: the client cancels the call while it waits for a person; the approval that
    comes later finds no call to let through (the next identical call uses it, once)."""
    big = {"name": "long.txt", "content": "y" * 500}
    with raw_proxy(tmp_path, "--wait", "--escalation-timeout", "120") as client:
        client.send(call(request_id, "write_note", big))
        for _ in range(600):
            if escalations(tmp_path):
                break
            time.sleep(0.1)
        [pending] = escalations(tmp_path)
        client.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": request_id, "reason": "the user pressed stop"}})
        client.send(call(12, "echo", {"text": "after the cancel"}))
        assert client.answer(12)["result"]["content"][0]["text"] == "after the cancel"
        cli("escalations", "approve", pending["id"], "--by", "alice",
            env={"STASO_HOME": str(tmp_path)})
        client.send(call(13, "echo", {"text": "after the approval"}))
        answered = client.answer(13)  # nothing answered the cancelled call meanwhile
        assert answered["result"]["content"][0]["text"] == "after the approval"
        assert not (tmp_path / "notes" / "long.txt").exists()
        client.send(call(14, "write_note", big))  # the identical call: runs, once
        assert "wrote 500" in client.answer(14)["result"]["content"][0]["text"]
    assert [c[0] for c in received(tmp_path / "notes")] == ["echo", "echo", "write_note"]


def test_the_server_reads_exactly_the_call_that_was_decided(tmp_path: Path) -> None:
    """A call whose JSON could be read two ways (duplicate keys, escapes in names) reaches
    the server written anew from what the guard read: a lenient parser that keeps the first
    of two keys cannot run the blocked arguments."""
    line = (b'{"jsonrpc": "2.0", "id": 21, "method": "tools\\u002fcall", "params": '
            b'{"name": "write_note", "arguments": {"name": "secret.txt", "content": "x"}, '
            b'"arguments": {"name": "plain.txt", "content": "x"}}}')
    with raw_proxy(tmp_path) as client:
        client.send(line)
        assert "wrote 1 characters to plain.txt" in \
            client.answer(21)["result"]["content"][0]["text"]
    assert received(tmp_path / "notes") == [("write_note", {"name": "plain.txt",
                                                            "content": "x"})]
    assert not (tmp_path / "notes" / "secret.txt").exists()


RAW_SERVER = r'''
"""A hand-written stdio MCP server that logs every line it reads (to argv[1]) and then,
by argv[2]: "serve" answers; "deaf" stops reading after initialize; "die" exits on a
tools/call it has read."""
import json, sys, time
log, mode = open(sys.argv[1], "a"), sys.argv[2]
for line in sys.stdin:
    log.write(line); log.flush()
    try:
        message = json.loads(line)
    except ValueError:  # as the SDK's reader: skip it, read on
        continue
    method, mid = message.get("method"), message.get("id")
    if method == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "raw", "version": "1"}}
    elif method == "tools/call" and mode == "die":
        sys.exit(7)
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "ran"}]}
    elif mid is None:
        continue
    else:
        result = {}
    if mid is not None:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}) + "\n")
        sys.stdout.flush()
    if method == "initialize" and mode == "deaf":
        time.sleep(3600)
'''
RAW_POLICY = """version: 1
rules:
  - name: never
    tools: [danger]
    action: block
  - name: ask_first
    tools: [esc]
    action: escalate
"""


@contextmanager
def raw_server_proxy(tmp_path: Path, mode: str, *proxy_args: str) -> Iterator[RawClient]:
    (tmp_path / "raw_server.py").write_text(RAW_SERVER)
    upstream = [sys.executable, str(tmp_path / "raw_server.py"), str(tmp_path / "lines.log"),
                mode]
    params = proxy_params(tmp_path, list(proxy_args), upstream, RAW_POLICY)
    process = subprocess.Popen([params.command, *params.args], env=params.env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    client = RawClient(process)
    try:
        client.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "raw", "version": "1"}}})
        assert client.answer(0)["result"]["serverInfo"]["name"] == "raw"
        yield client
    finally:
        process.kill()
        process.wait(15)


def server_read(tmp_path: Path) -> list[Any]:
    """Every line the server read, parsed (a fragment that is not JSON, as its text)."""
    read: list[Any] = []
    for line in (tmp_path / "lines.log").read_text().splitlines():
        try:
            read.append(json.loads(line))
        except ValueError:
            read.append(line)
    return read


def test_what_the_server_reads_is_what_the_relay_read(tmp_path: Path) -> None:
    """A bare CR ends a line for some servers' readers (the Python SDK's among them): a
    message hiding a tools/call between CRs reaches the server as the one message the relay
    read; bytes that are not UTF-8 (UTF-16 here) are a parse error."""
    hidden = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                         "params": {"name": "danger", "arguments": {}}}).encode()
    smuggler = b'{"jsonrpc": "2.0", "id": 3, "method": "ping", "params": \r' + hidden + b"\r}"
    with raw_server_proxy(tmp_path, "serve") as client:
        client.send(smuggler)
        client.answer(3)
        client.send('{"jsonrpc": "2.0", "id": 4, "method": "ping"}'.encode("utf-16"))
        assert client.read()["error"]["code"] == -32700
        client.send(call(5, "safe", {}))
        assert client.answer(5)["result"]["content"][0]["text"] == "ran"
    read = server_read(tmp_path)
    assert all(isinstance(m, dict) for m in read), read
    assert [m.get("method") for m in read] == ["initialize", "ping", "tools/call"]
    assert b"\r" not in (tmp_path / "lines.log").read_bytes()
    assert read[2]["params"]["name"] == "safe"


def test_a_cancellation_right_behind_its_call_is_kept(tmp_path: Path) -> None:
    """The call and its cancellation in one write: the call is never passed on, even once
    approved; a second call reusing an id under way is refused."""
    with raw_server_proxy(tmp_path, "serve", "--wait", "--escalation-timeout", "60") as client:
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                  "params": {"requestId": 31, "reason": "changed my mind"}}
        client.send(json.dumps(call(31, "esc", {"n": 1})).encode() + b"\n"
                    + json.dumps(cancel).encode())
        client.send(call(32, "esc", {"n": 2}))
        client.send(call(32, "safe", {}))  # id 32 is still waiting for a person
        assert client.answer(32)["error"]["code"] == -32600
        for _ in range(600):
            if len(escalations(tmp_path)) == 2:
                break
            time.sleep(0.1)
        for escalation in escalations(tmp_path):
            cli("escalations", "approve", escalation["id"], "--by", "alice",
                env={"STASO_HOME": str(tmp_path)})
        assert client.answer(32)["result"]["content"][0]["text"] == "ran"
    calls = [m for m in server_read(tmp_path) if m.get("method") == "tools/call"]
    assert [c["params"]["arguments"] for c in calls] == [{"n": 2}]


def test_a_server_that_stops_reading_holds_up_nothing(tmp_path: Path) -> None:
    """A server that stops reading its input: what the relay answers itself is still
    answered, and what waits for the server ends in the upstream timeout's error."""
    with raw_server_proxy(tmp_path, "deaf", "--upstream-timeout", "8") as client:
        client.send({"jsonrpc": "2.0", "id": 41, "method": "tools/list",
                     "params": {"_meta": {"padding": "x" * 300_000}}})
        client.send({"jsonrpc": "2.0", "id": 42, "method": "tools/list"})
        client.send(call(43, "danger", {}))
        assert client.answer(43)["result"]["isError"]  # refused at once
        assert "Timed out" in client.answer(41)["error"]["message"]
        assert "Timed out" in client.answer(42)["error"]["message"]


def test_a_server_that_exits_mid_call_is_not_said_to_have_done_nothing(tmp_path: Path
                                                                         ) -> None:
    with raw_server_proxy(tmp_path, "die") as client:
        client.send(call(51, "safe", {"x": "side effect"}))
        said = client.answer(51)["error"]["message"]
    assert "may or may not have been carried out" in said
    assert [m.get("method") for m in server_read(tmp_path)][-1] == "tools/call"
