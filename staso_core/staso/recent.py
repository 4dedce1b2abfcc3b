"""The answers given lately, by decision id: a retried call (the same decision id, after a
timeout or a lost response) gets the answer it was given, and is not decided twice.

Bounded in entries and in the characters of the modified inputs the answers hold: a result
that redacted a megabyte holds a megabyte, and ten thousand of them were once kept (memory
without bound, and a garbage collector walking every one of them)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from .jsonutil import string_chars
from .models import GuardResult

RECENT_LIMIT = 10_000
RECENT_CHARS = 16 * 1024 * 1024  # characters of modified inputs held, in all


# whose call a decision id answered: (agent name, tool name, a digest of the request; ""
# where the caller makes every decision id itself, as an embedded client does)
Owner = tuple[str, str, str]


class RecentResults:
    """An answer is given again only to the same call: a decision id sent by another agent
    (guessed, or reused), or with another input, never gets, nor sets, another's answer."""

    def __init__(self, limit: int = RECENT_LIMIT, chars: int = RECENT_CHARS) -> None:
        self._limit, self._chars = limit, chars
        self._items: OrderedDict[str, tuple[GuardResult, int, Owner]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, decision_id: str, owner: Owner | None = None) -> GuardResult | None:
        """The answer for ``decision_id``; with ``owner``, only if it was that call's."""
        with self._lock:
            item = self._items.get(decision_id)
        if item is None or (owner is not None and item[2] != owner):
            return None
        return item[0]

    def put(self, decision_id: str, result: GuardResult, owner: Owner = ("", "", "")
            ) -> None:
        weight = 0 if result.modified_input is None else string_chars(result.modified_input)
        with self._lock:
            old = self._items.pop(decision_id, None)
            if old is not None:
                self._held -= old[1]
            self._items[decision_id] = (result, weight, owner)
            self._held += weight
            while len(self._items) > self._limit or \
                    (self._held > self._chars and len(self._items) > 1):
                _, (_, dropped, _) = self._items.popitem(last=False)
                self._held -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._held = 0
