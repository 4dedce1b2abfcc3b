"""A local stand-in for the part of Slack's Web API staso uses, for ``staso demo
--slack-stand-in`` and the tests: it records each request exactly as ``slack_sdk`` sends
it and answers in the shapes Slack documents (``{"ok": true, "channel": …, "ts": …}``,
``{"ok": false, "error": "channel_not_found"}``, HTTP 429 with ``Retry-After``).

It also plays Slack's other half: ``signed_request`` builds an interaction the way Slack
posts one (form-encoded ``payload``, signed with the app's signing secret), and
``click``/``submit`` build the documented ``block_actions`` and ``view_submission``
payloads for a message it recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

TEAM = {"id": "T0STASO01", "domain": "staso-demo"}


@dataclass
class Call:
    method: str  # chat.postMessage, chat.update, views.open, chat.postEphemeral
    body: dict[str, Any]
    content_type: str
    authorization: str


@dataclass
class SlackStandIn:
    """``with SlackStandIn(token="xoxb-…") as slack:`` … ``slack.api_url``; ``slack.calls``."""

    token: str = "xoxb-staso-stand-in"
    channels: dict[str, str] = field(default_factory=lambda: {"#approvals": "C0APPROVAL",
                                                              "#payments": "C0PAYMENTS"})
    calls: list[Call] = field(default_factory=list)
    down: bool = False  # answer 503 to everything
    rate_limited: int = 0  # answer this many requests with 429 first
    delay: float = 0.0  # seconds to wait before each answer (a slow Slack)
    refuse_blocks: bool = False  # answer invalid_blocks to any message with blocks
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- running ----------------------------------------------------------------------------
    def start(self) -> SlackStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, answer, headers = stand_in._answer(
                    self.path.rstrip("/").rsplit("/", 1)[-1], raw,
                    self.headers.get("Content-Type", ""), self.headers.get("Authorization", ""))
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json; charset=utf-8",
                                    "Content-Length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Quiet(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="slack-stand-in").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # -- what was sent ------------------------------------------------------------------------
    def sent(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.body for c in self.calls if c.method == method]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message as it now stands (posted, then updated)."""
        with self._lock:
            return self._messages.get((channel, ts))

    def messages(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            return [(c, ts, m) for (c, ts), m in self._messages.items()]

    # -- Slack's answers ----------------------------------------------------------------------
    def _answer(self, method: str, raw: bytes, content_type: str, authorization: str
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append(Call(method, body, content_type, authorization))
            if self.down:
                return 503, {"ok": False, "error": "service_unavailable"}, {}
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            if authorization != f"Bearer {self.token}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            if self.refuse_blocks and body.get("blocks"):
                return 200, {"ok": False, "error": "invalid_blocks"}, {}
            return 200, self._method(method, body), {}

    def _method(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            channel = self._channel_id(str(body.get("channel", "")))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            message = {"type": "message", "ts": ts, "text": body.get("text", ""),
                       "blocks": body.get("blocks", []), "bot_id": "B0STASO01"}
            self._messages[(channel, ts)] = message
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            key = (str(body.get("channel")), str(body.get("ts")))
            if key not in self._messages:
                return {"ok": False, "error": "message_not_found"}
            self._messages[key] = {**self._messages[key], "text": body.get("text", ""),
                                   "blocks": body.get("blocks", [])}
            return {"ok": True, "channel": key[0], "ts": key[1], "text": body.get("text", "")}
        if method == "views.open":
            if not body.get("trigger_id") or not isinstance(body.get("view"), dict):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True, "view": {**body["view"], "id": f"V{next(self._ts):08d}"}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}
        return {"ok": False, "error": "unknown_method"}

    def _channel_id(self, channel: str) -> str | None:
        if channel.startswith("#"):
            return self.channels.get(channel)
        return channel if channel[:1] in "CGDUW" else None


class _Quiet(ThreadingHTTPServer):
    """A client that gave up waiting (staso's short timeouts while the stand-in plays a
    slow Slack) is no error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# -- Slack's side of an interaction ---------------------------------------------------------
def signed_request(secret: str, payload: dict[str, Any], *, timestamp: int | None = None
                   ) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack sends for an interaction: the JSON payload in a form
    field, signed ``v0=`` + HMAC-SHA256(secret, ``v0:{timestamp}:{body}``)."""
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(),
                                 hashlib.sha256).hexdigest()
    return body.encode(), {"Content-Type": "application/x-www-form-urlencoded",
                           "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def _user(user_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
            "team_id": TEAM["id"]}


def click(user_id: str, channel: str, ts: str, message: dict[str, Any],
          action_id: str) -> dict[str, Any]:
    """The ``block_actions`` payload for ``user_id`` clicking a button of a message (in
    an actions block, or a section's accessory)."""
    block, button = next((b, e) for b in message["blocks"]
                         for e in (b.get("elements", ()) if b.get("type") == "actions"
                                   else [b.get("accessory") or {}])
                         if e.get("action_id") == action_id)
    return {"type": "block_actions", "user": _user(user_id), "api_app_id": "A0STASO01",
            "token": "deprecated", "team": TEAM,
            "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                          "is_ephemeral": False},
            "channel": {"id": channel, "name": "approvals"}, "message": message,
            "trigger_id": f"{int(time.time())}.{next(_TRIGGERS)}.stand-in",
            "response_url": "https://hooks.slack.com/actions/T0STASO01/1/stand-in",
            "actions": [{"action_id": action_id,
                         "block_id": block.get("block_id") or "staso_answer", "type": "button",
                         **{k: button[k] for k in ("value", "url") if k in button},
                         "text": button["text"], "action_ts": f"{time.time():.6f}"}]}


def submit(user_id: str, view: dict[str, Any],
           values: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The ``view_submission`` payload for a modal that was opened, with typed ``values``
    ({block_id: {action_id: text}}); for a select menu the text is the chosen option's
    value, sent as Slack sends a choice (``selected_option``)."""
    elements = {b.get("block_id"): b.get("element") for b in view.get("blocks", ())
                if isinstance(b, dict) and isinstance(b.get("element"), dict)}
    state = {block: {action: _state(elements.get(block) or {}, text)
                     for action, text in fields.items()} for block, fields in values.items()}
    return {"type": "view_submission", "team": TEAM, "user": _user(user_id),
            "api_app_id": "A0STASO01", "token": "deprecated",
            "trigger_id": f"{int(time.time())}.{next(_TRIGGERS)}.stand-in",
            "view": {**view, "id": "V0STASO01", "state": {"values": state},
                     "hash": f"{int(time.time())}.stand-in", "root_view_id": "V0STASO01"},
            "response_urls": []}


def _state(element: dict[str, Any], text: str) -> dict[str, Any]:
    """One input's state in a ``view_submission``, by the element's type."""
    if element.get("type") == "static_select":
        option = next((o for o in element.get("options", ()) if o.get("value") == text),
                      {"text": {"type": "plain_text", "text": text}, "value": text})
        return {"type": "static_select", "selected_option": option}
    return {"type": "plain_text_input", "value": text}


_TRIGGERS = itertools.count(1)
