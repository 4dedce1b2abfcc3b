"""The dead-letter file: decision-log records the database refused for good, kept on disk.

A record lands here when the database rejects that one row (the batch it came in was split
until it stood alone) or could not be reached for longer than the log retries. Each line is
one JSON object, ASCII only, so any text survives exactly (``\\u0000``, lone surrogates)::

    {"at": 1765000000.1, "reason": "...", "kind": "insert", "decision_id": "dec_...",
     "record": {...the row or the update's fields...}}

Lines are appended and synced to disk at once: this file is the record's last home.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("staso")
DEAD_LETTER_FILE = "dead-letter.jsonl"  # in staso's home (~/.staso) unless configured


class DeadLetters:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0  # records written here by this process
        self.lost = 0  # records not even this file could keep (logged with their content)
        self._lock = threading.Lock()

    def keep(self, entries: list[tuple[str, str, Any]], reason: str) -> None:
        """Append ``(kind, decision_id, record)`` entries with why they are here; never
        raises (a record this file cannot take either is logged in full instead)."""
        now = time.time()
        lines = "".join(json.dumps({"at": now, "reason": reason, "kind": kind,
                                    "decision_id": decision_id, "record": record},
                                   default=repr) + "\n"
                        for kind, decision_id, record in entries)
        with self._lock:
            try:
                if self.path is None:
                    raise OSError("no dead-letter file is configured")
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="ascii") as out:
                    out.write(lines)
                    out.flush()
                    os.fsync(out.fileno())
                self.count += len(entries)
                log.error("staso: %d decision-log record(s) could not be written to the "
                          "database and went to %s: %s", len(entries), self.path, reason)
            except OSError as exc:
                self.lost += len(entries)
                log.error("staso: %d decision-log record(s) could be written neither to the "
                          "database (%s) nor to the dead-letter file (%s): %s",
                          len(entries), reason, exc, lines)


def read_dead_letters(path: Path) -> list[dict[str, Any]]:
    """The entries of a dead-letter file, oldest first."""
    if not path.exists():
        return []
    with open(path, encoding="ascii") as source:
        return [json.loads(line) for line in source if line.strip()]
