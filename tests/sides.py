"""staso embedded or remote, on SQLite or on PostgreSQL, behind one face: the sides that the
approver and grant tests run each test on. A test file subclasses ``Side`` with what its tests
ask of it and gets its fixtures from ``side_fixtures(its Side, its POLICY)``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conftest import make_policy, start_server, stop_server
from servers import Server, drop_pg_database, new_database, wait_for
from staso.client import Client
from staso.settings import Settings
from staso.store import StoreBackend, open_store
from staso.store.keys import create_key

SIDES = ["embedded-sqlite", "embedded-postgres", "remote-sqlite", "remote-postgres"]
REMOTE_SIDES = ["remote-sqlite", "remote-postgres"]
# what a ``staso`` command reaches: the embedded store in STASO_HOME (a SQLite file) or a server
CLI_SIDES = ["embedded-sqlite", "remote-sqlite", "remote-postgres"]


def fresh_tag() -> str:
    """A suffix that keeps one test's people and agents apart from another's on a shared
    server."""
    return f"{time.time_ns() % 10**9:09d}"


def on_database(client: Client, database_url: str, policy: Path, home: Path) -> Client:
    """An embedded ``client`` with its store on ``database_url``: the SQLite file in ``home``
    is its own; on PostgreSQL its decision service is built on that database instead (the
    settings have nothing for it)."""
    if database_url.startswith("postgresql"):
        from staso.plugins import make_plugin_manager
        from staso.policy.discovery import load_any_policy
        from staso.service import DecisionService
        from staso.transports.embedded import EmbeddedTransport

        pm = make_plugin_manager(())
        service = DecisionService(open_store(database_url), load_any_policy(policy, pm), pm,
                                  dead_letter_file=home / "dead-letters.jsonl")
        previous, client.transport = client.transport, EmbeddedTransport(service)
        previous.close()
    return client


@dataclass
class Side:
    """staso embedded or remote, on one database: the test's agent (and others), approvers,
    and what is stored."""

    mode: str  # embedded, remote
    database_url: str
    home: Path  # the test's own folder: STASO_HOME and the policy, embedded
    agent_name: str  # the test's own agent
    server: Server | None = None
    store: StoreBackend = field(init=False)  # the database the escalations, keys, grants are in
    clients: dict[str, Client] = field(default_factory=dict, init=False)  # agent name -> client
    approvers: list[Client] = field(default_factory=list, init=False)  # on approver keys

    def __post_init__(self) -> None:
        if self.server is not None:
            self.store = open_store(self.database_url)
        else:  # the store the test's agent decides on
            self.store = self.client().transport.service.store  # type: ignore[attr-defined]

    def client(self, agent_name: str | None = None) -> Client:
        """A client of this agent (default: the test's own), on the same database."""
        name = agent_name or self.agent_name
        if name not in self.clients:
            self.clients[name] = (self.server.agent_client(name) if self.server is not None
                                  else self.embedded_client(name))
        return self.clients[name]

    def embedded_client(self, agent_name: str) -> Client:
        """An embedded client of ``agent_name`` on the policy in ``home``."""
        policy = self.home / "staso.yaml"
        return on_database(Client(Settings.resolve(agent_name=agent_name, home=self.home,
                                                   policy=policy)),
                           self.database_url, policy, self.home)

    def answerer(self, name: str, groups: tuple[str, ...] = (), **links: Any
                 ) -> tuple[Client, str | None]:
        """A new approver key named ``name``, and (the client that answers as them, the
        key): embedded, the agent's own client (an answer names who gives it); remote, a
        client of their own on their key."""
        _, key = create_key(self.store, role="approver", name=name, groups=groups, **links)
        if self.server is None:
            return self.client(), None
        client = Client(Settings.resolve(api_key=key, base_url=self.server.url))
        self.approvers.append(client)
        return client, key

    def decision(self, decision_id: str,
                 until: Callable[[dict[str, Any]], bool] = lambda row: True) -> dict[str, Any]:
        """The call's decision row, once ``until(row)`` holds (the log writes behind)."""
        def row() -> dict[str, Any] | None:
            for client in self.clients.values():
                client.flush()
            found = self.store.get_decision(decision_id)
            return found if found is not None and until(found) else None
        found: dict[str, Any] = wait_for(row, f"decision {decision_id} recorded")
        return found

    def cli_env(self, key: str | None) -> dict[str, str]:
        """What a ``staso`` command answering with ``key`` runs with, to reach this side."""
        if self.server is None:
            return {"STASO_HOME": str(self.home)}
        return {"STASO_BASE_URL": self.server.url, "STASO_API_KEY": key or ""}

    def close(self) -> None:
        for client in [*self.approvers, *self.clients.values()]:
            client.shutdown()
        if self.server is not None:
            self.store.close()
        elif self.database_url.startswith("postgresql"):
            drop_pg_database(self.database_url)


S = TypeVar("S", bound=Side)


def side_fixtures(kind: type[S], policy: str, agent_name: str = "refund-agent"
                  ) -> tuple[Any, Any, Any, Any, Any]:
    """A test file's fixtures, for sides of ``kind`` on ``policy``: ``side`` (each of
    SIDES), ``remote_side`` and ``cli_side``, and the two ``staso serve`` on ``policy`` that
    its remote sides share, ``sqlite_policy_server`` and ``postgres_policy_server``
    (module-scoped: each test file has its own). Each test's agent is ``agent_name``, with a
    fresh suffix for ``{tag}`` in it. The test file assigns them to those names::

        side, remote_side, cli_side, sqlite_policy_server, postgres_policy_server = \\
            side_fixtures(Side, POLICY)
    """

    def sides(name: str, params: list[str]) -> Any:
        @pytest.fixture(name=name, params=params)
        def fixture(request: pytest.FixtureRequest, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[S]:
            mode, backend = request.param.split("-")
            agent = agent_name.format(tag=fresh_tag())
            if mode == "remote":
                server: Server = request.getfixturevalue(f"{backend}_policy_server")
                side = kind(mode, server.database_url, tmp_path, agent, server)
            else:
                monkeypatch.setenv("STASO_HOME", str(tmp_path))
                monkeypatch.chdir(tmp_path)
                make_policy(tmp_path, policy)
                side = kind(mode, new_database(tmp_path, backend), tmp_path, agent)
                # (the embedded store really is on this backend)
                assert side.store.engine.url.get_backend_name() == (  # type: ignore[attr-defined]
                    "postgresql" if backend == "postgres" else "sqlite")
            try:
                yield side
            finally:
                side.close()
        return fixture

    def server(backend: str) -> Any:
        @pytest.fixture(name=f"{backend}_policy_server", scope="module")
        def fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Server]:
            tmp = tmp_path_factory.mktemp(f"{request.module.__name__}-{backend}")
            running = start_server(tmp, backend, make_policy(tmp, policy))
            yield running
            stop_server(running)
        return fixture

    return (sides("side", SIDES), sides("remote_side", REMOTE_SIDES),
            sides("cli_side", CLI_SIDES), server("sqlite"), server("postgres"))
