"""What the adapter tests' real tools share: a record of every time a tool body ran."""

from __future__ import annotations

import threading
from typing import Any


class BodyLedger:
    """``ran`` lists (tool name, arguments) for every tool body that actually executed."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def note(self, name: str, **args: Any) -> None:
        with self._lock:
            self.ran.append((name, args))
