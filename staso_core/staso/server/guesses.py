"""Key guessing is slowed down per client address (SPEC §10, issue 7: brute force).

Keys are 256-bit random, so guessing one is hopeless anyway; this keeps a guesser from
turning the server into a stream of database reads, and makes noisy clients visible (the
429s count in ``staso_http_errors_total``). An address over the limit gets 429 for every key the
server would have to look up; keys it already knows (recently used, still valid) keep
working, so agents behind the same NAT as a guesser are not locked out.
"""

from __future__ import annotations

import time
from collections import deque


class TooManyGuesses(Exception):
    """This address sent too many wrong keys; ``retry_after`` seconds until it may again."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many wrong API keys from this address; retry in "
                         f"{retry_after:.0f} s")


class GuessLimiter:
    """At most ``limit`` wrong keys per address in any ``window`` seconds."""

    def __init__(self, limit: int = 20, window: float = 60.0, max_clients: int = 10_000
                 ) -> None:
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def check(self, client: str) -> None:
        """Raise ``TooManyGuesses`` if ``client`` may not try a key now."""
        now = time.monotonic()
        failures = self._recent(client, now)
        if failures is not None and len(failures) >= self.limit:
            raise TooManyGuesses(self.window - (now - failures[0]))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        failures = self._recent(client, now)
        if failures is None:
            if len(self._failures) >= self.max_clients:  # bounded: forget the oldest address
                self._failures.pop(next(iter(self._failures)))
            failures = self._failures[client] = deque(maxlen=self.limit)
        failures.append(now)
