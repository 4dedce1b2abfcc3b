"""``staso demo``: the server and dashboard on a temporary SQLite store, and a scripted refund
agent guarded through them (what ``bash scripts/demo`` runs). ``--yes`` approves through the
API by itself. ``--slack-stand-in`` adds the Slack channel, against a local stand-in for
Slack's Web API: the demo prints the message staso posts, and ``--yes`` then clicks its
Approve button (a request signed as Slack signs them)."""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .errors import install_extra
from .settings import store_file

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("process_refund", {"customer_id": "c_17", "amount": 50}),
    ("run_sql", {"query": "DROP TABLE customers"}),
    ("send_email", {"to": "c_17@example.com", "body": "Your SSN 123-45-6789 is on file."}),
]
BIG_REFUND = {"customer_id": "c_42", "amount": 5000}


def _port(preferred: int) -> int:
    """``preferred`` if free, else a free port, said aloud. SO_REUSEADDR as uvicorn binds:
    a port a demo just left (its sockets in TIME_WAIT) is free for the next one."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError as exc:
            s.bind(("127.0.0.1", 0))
            print(f"staso demo: port {preferred} is in use ({exc.strerror}); using "
                  f"{s.getsockname()[1]} instead (--port picks another)")
        return int(s.getsockname()[1])


class _Server(threading.Thread):
    """``staso serve`` in a background thread of this process."""

    def __init__(self, home: Path, port: int) -> None:
        super().__init__(name="staso-demo-server", daemon=True)
        import uvicorn

        from .server import ServerConfig, create_app
        from .store import sqlite_url

        app = create_app(ServerConfig(database_url=sqlite_url(home)))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", access_log=False))

    def run(self) -> None:
        self.server.run()

    def wait_started(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.is_alive():
                raise RuntimeError("the demo server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(timeout=5)


class _DemoSlack:
    """Slack for the demo: the stand-in, the server's settings for it, and the clicks."""

    SECRET = "staso-demo-signing-secret"
    USER = "U0DEMO0001"

    def __init__(self) -> None:
        from .channels.slack_standin import SlackStandIn

        self.stand_in = SlackStandIn().start()
        self.env = {"STASO_SLACK_BOT_TOKEN": self.stand_in.token,
                    "STASO_SLACK_SIGNING_SECRET": self.SECRET,
                    "STASO_SLACK_API_URL": self.stand_in.api_url,
                    "STASO_SLACK_CHANNEL": "#approvals"}

    def show_post(self, escalation_id: str, home: Path, timeout: float = 15.0) -> None:
        """Print the message as Slack would show it; the request itself goes to a file."""
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.stand_in.sent("chat.postMessage"):
                if escalation_id in json.dumps(body):
                    saved = home / "slack-post.json"
                    saved.write_text(json.dumps(body, indent=2, ensure_ascii=False))
                    print(f"    posted to Slack {body['channel']} (the chat.postMessage request "
                          f"as slack_sdk sent it: {saved}):")
                    for line in _render(body["blocks"]):
                        print("      | " + line)
                    return
            time.sleep(0.05)
        print("    (the Slack post did not arrive)")

    def click_approve(self, url: str, escalation_id: str) -> None:
        import json

        import httpx

        from .channels.slack_standin import click, signed_request

        for channel, ts, message in self.stand_in.messages():
            if escalation_id in json.dumps(message):
                body, headers = signed_request(self.SECRET, click(
                    self.USER, channel, ts, message, "staso_approve"))
                httpx.post(f"{url}/v1/channels/slack/interactions", content=body,
                           headers=headers, timeout=10)

    def show_update(self, escalation_id: str, timeout: float = 10.0) -> None:
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.stand_in.sent("chat.update"):
                if escalation_id in json.dumps(body):
                    answer = body["blocks"][-1]["text"]["text"]
                    print(f"    Slack message updated in place: {answer}")
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self.stand_in.stop()


def _render(blocks: list[dict[str, Any]]) -> list[str]:
    """Block Kit blocks as lines of text, roughly as Slack lays them out."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(block["text"]["text"].upper())
        elif kind == "section":
            lines += [f["text"] for f in block.get("fields", [])]
            if "text" in block:
                lines += block["text"]["text"].splitlines()
        elif kind == "rich_text":
            for element in block["elements"]:
                lines += "".join(e.get("text", "") for e in element["elements"]).splitlines()
        elif kind == "context":
            lines += [e["text"] for e in block["elements"]]
        elif kind == "actions":
            lines.append("  ".join(f"[ {e['text']['text']} ]" for e in block["elements"]))
    return lines


def _stay_up(url: str) -> None:
    """Keep the server and dashboard up after the scripted run, for the person who has the
    dashboard open (stopping at once would leave their page at "Failed to fetch"), until
    Ctrl-C or SIGTERM. Only when attended: ``--yes`` and runs without a terminal end."""
    import signal

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"\nstaso demo: dashboard still at {url}/ — Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _remove_store(home: Path) -> None:
    """The demo's store was only for this run; what it pointed the user at (the Slack
    stand-in's recorded request) stays, in the same folder."""
    for path in home.glob("staso.db*"):  # the database and its WAL files
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        home.rmdir()  # only if nothing else is left


def run_demo(auto_approve: bool = False, timeout: float = 120.0, port: int = 8787,
             slack_stand_in: bool = False) -> int:
    import os

    import httpx

    import staso as st

    from .store import open_store, sqlite_url
    from .store.keys import create_key

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print(f"staso demo needs the server extra: {install_extra('server')}")
        return 1
    home = Path(tempfile.mkdtemp(prefix="staso-demo-"))
    store = open_store(sqlite_url(home))
    _, agent_key = create_key(store, role="agent", name="refund-agent")
    slack = _DemoSlack() if slack_stand_in else None
    _, approver_key = create_key(store, role="approver", name="demo-manager",
                                 slack_user=_DemoSlack.USER if slack else None)
    store.close()
    port = _port(port)
    if slack is not None:  # the server reads its channels from the environment
        os.environ.update(slack.env, STASO_PUBLIC_URL=f"http://127.0.0.1:{port}")
    server = _Server(home, port)
    server.start()
    server.wait_started()
    url = f"http://127.0.0.1:{server.server.config.port}"
    print(f"staso demo: server and dashboard at {url}/  (store {store_file(home)}, "
          "removed when the demo ends)")
    print(f"    log in with the approver key: {approver_key}\n")
    st.init(api_key=agent_key, base_url=url, agent_name="refund-agent")
    try:
        for name, args in CALLS:
            r = st.guard(name, args)
            print(f"{name}({args}) -> {r.action.upper()}"
                  + (f" [{r.rule_name}] {r.reason}" if r.rule_name else ""))
            if r.action == "modify":
                print(f"    runs with {r.modified_input}")
        first = st.guard("process_refund", BIG_REFUND)
        print(f"process_refund({BIG_REFUND}) -> {first.action.upper()} [{first.rule_name}] "
              f"escalation {first.escalation_id}")
        escalation_id = first.escalation_id or ""
        if slack is not None:
            slack.show_post(escalation_id, home)
        if auto_approve and slack is not None:
            def click() -> None:
                time.sleep(1.0)
                slack.click_approve(url, escalation_id)
            threading.Thread(target=click, daemon=True).start()
            print("    --yes: clicking Approve in Slack (as demo-manager) in 1 s")
        elif auto_approve:
            def approve() -> None:
                time.sleep(1.0)
                httpx.post(f"{url}/v1/escalations/{first.escalation_id}/approve",
                           headers={"Authorization": f"Bearer {approver_key}"},
                           json={"comment": "ok for a loyal customer"}, timeout=10)
            threading.Thread(target=approve, daemon=True).start()
            print("    --yes: approving through the API in 1 s")
        else:
            print(f"    waiting for a person: open {url}/ and approve or deny it\n"
                  f"    (or: staso escalations approve {first.escalation_id} --by you "
                  f"--url {url} --key {approver_key});\n"
                  f"    no answer in {timeout:.0f} s -> the agent stops waiting and treats "
                  f"it as denied")
        result = st.guard("process_refund", BIG_REFUND, wait_for_escalation=True,
                          escalation_poll_interval=3.0, escalation_timeout=timeout)
        if result.escalation_status == "timeout":  # the wait ended; the escalation did not
            print(f"    -> DENIED (timed out): nobody answered in {timeout:.0f} s, so the agent "
                  f"gave up ({result.reason}); the escalation stays open in the dashboard "
                  f"until it expires")
        else:
            print(f"    -> {result.action.upper()} ({result.escalation_status}) "
                  f"{result.reason}".rstrip())
        if slack is not None:
            slack.show_update(escalation_id)
        st.shutdown()
        if not auto_approve and sys.stdin is not None and sys.stdin.isatty():
            _stay_up(url)  # a person may still be looking at the dashboard and its history
    finally:
        st.shutdown()
        server.stop()
        if slack is not None:
            slack.stop()
        _remove_store(home)
    return 0
