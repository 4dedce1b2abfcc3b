"""Key brute force is slowed per client address, on a real ``staso serve``: after 20 wrong
keys in a minute an address gets 429 for every further wrong key, while every valid key —
used before or not, cached or not — keeps working from that same address."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import start_server, stop_server
from servers import Server, cli
from staso.server.guesses import GuessLimiter, KeyCache, TooManyGuesses
from staso.store import Store
from staso.store.keys import create_key
from tally import tally


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """Its own server: the guesses below must not spill into other tests' servers."""
    server = start_server(tmp_path, "sqlite")
    yield server
    stop_server(server)


def wrong(server: Server, n: int) -> list[int]:
    return [httpx.get(f"{server.url}/v1/escalations",
                      headers={"Authorization": f"Bearer staso_approver_guess{i:04d}"}
                      ).status_code for i in range(n)]


def test_wrong_keys_are_refused_after_the_limit(fresh_server: Server) -> None:
    assert fresh_server.request("GET", "/v1/escalations", role="approver").status_code == 200
    codes = wrong(fresh_server, 25)
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 5
    refused = httpx.get(f"{fresh_server.url}/v1/escalations",
                        headers={"Authorization": "Bearer staso_approver_guess9999"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "too many wrong API keys" in refused.json()["detail"]
    # valid keys keep working from this address: the one it used, and one it never sent
    assert fresh_server.request("GET", "/v1/escalations", role="approver").status_code == 200
    assert fresh_server.request("GET", "/v1/escalations", role="admin").status_code == 200
    assert wrong(fresh_server, 1) == [429]  # and the guesser is still refused
    metrics = fresh_server.request("GET", "/metrics", role=None).text
    found = re.search(r'staso_http_errors_total\{code="429"\} (\d+)', metrics)
    assert found and int(found.group(1)) >= 7
    tally("API key brute force (25 guesses from one address)", sent=28, refused=28,
          rate_limited=7, lost=0)


def test_the_dashboard_login_counts_too(fresh_server: Server) -> None:
    client = httpx.Client(base_url=fresh_server.url)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    locations = []
    for i in range(22):
        answer = client.post("/login", data={"csrf_token": token,
                                             "api_key": f"staso_approver_guess{i}"})
        locations.append(answer.headers.get("location"))
    assert locations[:20] == ["/login?error=unknown"] * 20
    assert locations[20:] == ["/login?error=slow"] * 2
    assert "Too many wrong keys" in client.get("/login?error=slow").text
    client.close()


class Clock:
    """A clock the test moves by hand: no verdict depends on the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_passes_and_addresses_are_separate() -> None:
    clock = Clock()
    limiter = GuessLimiter(limit=3, window=60, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1")
    with pytest.raises(TooManyGuesses) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after == 60
    limiter.check("10.0.0.2")  # another address is not affected
    clock.now += 59.9
    with pytest.raises(TooManyGuesses):
        limiter.check("10.0.0.1")
    clock.now += 0.1
    limiter.check("10.0.0.1")  # the window passed


class CountingStore(Store):
    """A real SQLite store that counts the connections the key cache opens."""

    reads = 0

    def count(self) -> None:
        engine_connect = self.engine.connect

        def connect():  # type: ignore[no-untyped-def]
            self.reads += 1
            return engine_connect()

        self.engine.connect = connect  # type: ignore[method-assign]


def test_a_valid_key_works_from_an_address_out_of_guesses_also_after_the_ttl(
        tmp_path: Path) -> None:
    import asyncio

    store = CountingStore(f"sqlite:///{tmp_path / 'keys.db'}")
    _, used = create_key(store, role="agent", name="agent-1")
    _, never_sent = create_key(store, role="approver", name="alice")
    clock = Clock()
    keys = KeyCache(store, ttl=1.0, guesses=GuessLimiter(limit=3, window=60, clock=clock),
                    clock=clock)
    store.count()

    async def scenario() -> None:
        assert (await keys.lookup(used, "nat"))[0].name == "agent-1"
        for i in range(3):
            assert await keys.lookup(f"staso_agent_guess{i}", "nat") is None
        reads = store.reads
        for i in range(50):  # over the limit: refused before any database read
            with pytest.raises(TooManyGuesses):
                await keys.lookup(f"staso_agent_more{i}", "nat")
        assert store.reads == reads
        for _ in range(3):  # within the TTL, after it passed, after the cache was dropped
            assert (await keys.lookup(used, "nat"))[0].name == "agent-1"
            assert (await keys.lookup(never_sent, "nat"))[0].name == "alice"
            clock.now += 1.5
        keys.expire()
        assert (await keys.lookup(never_sent, "nat"))[0].role == "approver"
        # a key created after the table was loaded works at once, from a fresh address
        _, new = create_key(store, role="agent", name="agent-2")
        assert (await keys.lookup(new, "office"))[0].name == "agent-2"

    asyncio.run(scenario())


def test_a_revoked_key_stops_at_the_next_reload(tmp_path: Path) -> None:
    import asyncio

    store = Store(f"sqlite:///{tmp_path / 'keys.db'}")
    record, key = create_key(store, role="agent", name="agent-1")
    clock = Clock()
    keys = KeyCache(store, ttl=1.0, guesses=GuessLimiter(clock=clock), clock=clock)

    async def scenario() -> None:
        assert await keys.lookup(key, "a") is not None
        assert store.revoke_key(record.id)
        clock.now += 0.5
        assert await keys.lookup(key, "a") is not None  # the table is not yet 1 s old
        clock.now += 0.5
        assert await keys.lookup(key, "a") is None

    asyncio.run(scenario())


def test_memory_stays_bounded() -> None:
    limiter = GuessLimiter(limit=2, window=60, max_clients=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._failures) == 100


def test_a_revoked_key_stops_working_within_a_second(fresh_server: Server) -> None:
    assert fresh_server.request("GET", "/v1/escalations", role="approver").status_code == 200
    listed = cli("keys", "list", env=fresh_server.env).stdout
    (row,) = [line for line in listed.splitlines() if "alice" in line]
    key_id = next(part for part in row.replace("│", " ").split() if part.startswith("key_"))
    assert "approver" in row and "live" in row
    assert fresh_server.keys["approver"] not in listed  # keys are never shown again
    cli("keys", "revoke", key_id, env=fresh_server.env)
    time.sleep(1.2)  # the server's key cache holds a key for at most a second
    refused = fresh_server.request("GET", "/v1/escalations", role="approver")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert "revoked" in cli("keys", "list", env=fresh_server.env).stdout
    again = cli("keys", "revoke", key_id, env=fresh_server.env, check=False)
    assert again.returncode == 1 and "no live key" in again.stderr
    assert fresh_server.request("GET", "/v1/escalations", role="admin").status_code == 200


def test_behind_a_local_reverse_proxy_each_client_is_counted_apart(fresh_server: Server
                                                                    ) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 (FORWARDED_ALLOW_IPS widens that): one
    guesser behind the proxy does not slow the proxy's other clients."""
    def guess(client: str, i: int) -> int:
        return httpx.get(f"{fresh_server.url}/v1/escalations", headers={
            "Authorization": f"Bearer staso_approver_proxied{i:04d}",
            "X-Forwarded-For": client}).status_code

    assert [guess("10.0.0.1", i) for i in range(22)][-2:] == [429, 429]
    assert guess("10.0.0.2", 99) == 401  # another client behind the same proxy
