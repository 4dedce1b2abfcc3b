"""Built-in notifiers: a log line for every escalation event, and a webhook.

The webhook (``STASO_WEBHOOK_URL``) receives a JSON POST with a Slack-compatible ``text``
field. It is sent from a background thread so an unreachable receiver never slows a guard.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from ..hookspecs import hookimpl
from ..models import Escalation

log = logging.getLogger("staso")


def _summary(esc: Escalation) -> str:
    return (f"{esc.tool_name} by {esc.agent_name or 'agent'} (rule {esc.rule_name}, "
            f"{esc.severity}): {esc.reason}")


def _post(url: str, payload: dict[str, Any]) -> None:
    import httpx

    try:
        httpx.post(url, content=json.dumps(payload), timeout=5.0,
                   headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("staso: webhook %s failed: %s", url, exc)


def _webhook(event: str, esc: Escalation, text: str) -> None:
    url = os.environ.get("STASO_WEBHOOK_URL")
    if not url:
        return
    payload = {"text": text, "event": event, "escalation": esc.to_dict()}
    threading.Thread(target=_post, args=(url, payload), daemon=True,
                     name="staso-webhook").start()


@hookimpl
def staso_escalation_created(escalation: Escalation) -> None:
    text = f"Approval needed [{escalation.id}]: {_summary(escalation)}"
    log.info("staso: %s", text)
    _webhook("escalation.created", escalation, text)


@hookimpl
def staso_escalation_resolved(escalation: Escalation) -> None:
    who = f" by {escalation.resolved_by}" if escalation.resolved_by else ""
    text = f"Escalation {escalation.id} {escalation.status}{who}: {escalation.tool_name}"
    log.info("staso: %s", text)
    _webhook("escalation.resolved", escalation, text)
