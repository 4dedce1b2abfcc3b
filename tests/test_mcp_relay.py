"""The stdio proxy spoken to in raw JSON-RPC, as a hostile or broken client would: what is
not a single well-formed message gets an error and reaches no tool; a call cancelled while
it waits for a person is never passed on, even once approved."""

from __future__ import annotations

import json
import subprocess
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
