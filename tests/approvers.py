"""A person answering escalations from another thread, as the tests' stand-in approver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import staso as st


def answer_later(action: Callable[..., Any], delay: float = 0.2, **kwargs: Any
                 ) -> threading.Thread:
    """After ``delay``, call ``action(escalation_id, **kwargs)`` on the first pending
    escalation (waiting up to 5 s for one to appear)."""
    def run() -> None:
        deadline = time.time() + 5
        while time.time() < deadline:
            pending = st.get_client().list_escalations(status="pending")
            if pending:
                action(pending[0].id, **kwargs)
                return
            time.sleep(0.02)
    t = threading.Thread(target=lambda: (time.sleep(delay), run()))
    t.start()
    return t
