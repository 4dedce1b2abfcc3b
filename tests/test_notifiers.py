"""Built-in notifiers: a Slack-compatible webhook POST for every escalation event."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import staso as st


def test_webhook_posts_created_and_resolved(tmp_path, monkeypatch):
    received: queue.Queue[dict] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            received.put(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STASO_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    st.init(home=tmp_path, agent_name="refund-agent")
    try:
        r = st.guard("wire_transfer", {"amount": 50000})
        created = received.get(timeout=10)
        assert created["event"] == "escalation.created"
        assert r.escalation_id in created["text"] and "wire_transfer" in created["text"]
        assert created["escalation"]["tool_input"] == {"amount": 50000}
        st.deny(r.escalation_id, by="alice", comment="no")
        resolved = received.get(timeout=10)
        assert resolved["event"] == "escalation.resolved"
        assert f"{r.escalation_id} denied by alice" in resolved["text"]
    finally:
        st.shutdown()
        server.shutdown()


def test_unreachable_webhook_never_slows_or_breaks_a_guard(tmp_path, monkeypatch):
    monkeypatch.setenv("STASO_WEBHOOK_URL", "http://127.0.0.1:9/nothing-listens-here")
    st.init(home=tmp_path)
    try:
        r = st.guard("wire_transfer", {"amount": 50000})
        assert r.action == "escalate" and r.escalation_id
    finally:
        st.shutdown()
