"""Key lookups, and key guessing slowed per client address.

A valid key always works, whatever wrong keys came from its address: agents behind the
same NAT as a guesser must not be locked out. So a key is looked up first, by its hash,
in an in-memory copy of every live key; only a key that is not there counts against its
address (``GuessLimiter``), and an address over the limit is refused (429) before any
database read. Keys are 256-bit random, so guessing one is hopeless anyway; the limit
keeps a guesser from turning the server into a stream of database reads and makes noisy
clients visible (the 429s count in ``staso_http_errors_total``).

Why the lookup is no oracle and no amplifier: the in-memory table is keyed by SHA-256
digests, so the time a lookup takes says nothing about how close a guess was; the answer
to a wrong key is 401 or 429, never anything about other keys. The whole table is read
at most once per ``ttl`` (however many requests or guessers there are), and a key missing
from it costs one indexed read only while its address is under the limit — that read is
what lets a key created since the last reload work at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import StoreUnavailable
from ..store import StoreBackend
from ..store.keys import ApiKey, hash_key


class TooManyGuesses(Exception):
    """This address sent too many wrong keys; ``retry_after`` seconds until it may again."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many wrong API keys from this address; retry in "
                         f"{retry_after:.0f} s")


class GuessLimiter:
    """At most ``limit`` wrong keys per address in any ``window`` seconds; remembers at
    most ``max_clients`` addresses (the oldest is forgotten first)."""

    def __init__(self, limit: int = 20, window: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def check(self, client: str) -> None:
        """Raise ``TooManyGuesses`` if ``client`` may not try an unknown key now."""
        now = self.clock()
        failures = self._recent(client, now)
        if failures is not None and len(failures) >= self.limit:
            raise TooManyGuesses(self.window - (now - failures[0]))

    def failed(self, client: str) -> None:
        """Count one wrong key from ``client``."""
        now = self.clock()
        failures = self._recent(client, now)
        if failures is None:
            if len(self._failures) >= self.max_clients:  # bounded: forget the oldest address
                self._failures.pop(next(iter(self._failures)))
            failures = self._failures[client] = deque(maxlen=self.limit)
        failures.append(now)


class KeyCache:
    """Every live key by its hash, reloaded from the database once it is ``ttl`` seconds
    old, so a revoked key stops working within ``ttl`` (plus one reload) on every replica.

    Memory is one entry per live key, never per request or per guess; ``clock`` is
    injectable so tests can pass the ``ttl`` without sleeping.
    """

    def __init__(self, store: StoreBackend, ttl: float, guesses: GuessLimiter,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.ttl, self.guesses, self.clock = store, ttl, guesses, clock
        self._live: dict[str, tuple[ApiKey, str]] = {}
        self._loaded_at = -math.inf
        self._reloading: asyncio.Lock | None = None

    def expire(self) -> None:
        """Forget the loaded table: the next lookup reads it again."""
        self._loaded_at = -math.inf

    async def _fresh(self) -> dict[str, tuple[ApiKey, str]]:
        if self.clock() - self._loaded_at < self.ttl:
            return self._live
        if self._reloading is None:
            self._reloading = asyncio.Lock()
        async with self._reloading:  # one reload at a time; the others use its result
            if self.clock() - self._loaded_at >= self.ttl:
                started = self.clock()  # the table is at least as new as this moment
                self._live = await self._read(self.store.live_keys)
                self._loaded_at = started
        return self._live

    async def _read(self, read: Callable[..., Any], *args: Any) -> Any:
        """A read of the key table, off the event loop; the database away is a 503
        (StoreUnavailable), not a bare 500."""
        try:
            return await asyncio.to_thread(read, *args)
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"cannot read the API keys: {exc}") from exc

    async def lookup(self, key: str, client: str = "") -> tuple[ApiKey, str] | None:
        """The live key and its hash, or None (a wrong key, counted against ``client``).

        Raises ``TooManyGuesses`` only for a key that is not live, from an address that
        has used up its guesses.
        """
        digest = hash_key(key)
        found = (await self._fresh()).get(digest)
        if found is not None:
            return found
        self.guesses.check(client)
        found = await self._read(self.store.key_by_hash, digest)  # created since
        if found is None:
            self.guesses.failed(client)
            return None
        self._live[digest] = found
        return found
