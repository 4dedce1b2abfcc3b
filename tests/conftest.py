from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import staso as st

os.environ.pop("STASO_BASE_URL", None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded staso on a fresh SQLite file, with the default policy."""
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    st.init(agent_name="refund-agent", home=tmp_path)
    yield tmp_path
    st.shutdown()


def make_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "staso.yaml"
    path.write_text(text)
    return path


# -- real staso serve processes ---------------------------------------------------------------
from servers import (  # noqa: E402
    Server,
    drop_pg_database,
    new_database,
    new_pg_database,
    postgres_available,
)

BACKENDS = ["sqlite", "postgres"]


def start_server(tmp: Path, backend: str, policy: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> Server:
    server = Server(home=tmp, database_url=new_database(tmp, backend), policy=policy,
                    extra_env=extra_env or {})
    server.create_keys()
    return server.start()


def stop_server(server: Server) -> None:
    server.stop()
    if server.database_url.startswith("postgresql"):
        drop_pg_database(server.database_url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for one test, once a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'staso.db'}"
        return
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432 (.ci/run starts it)")
    url = new_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    """A running staso serve, once on SQLite and once on PostgreSQL."""
    running = start_server(tmp_path_factory.mktemp(f"serve-{request.param}"), request.param)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running staso serve on SQLite, shared by one test module."""
    running = start_server(tmp_path_factory.mktemp("serve-sqlite"), "sqlite")
    yield running
    stop_server(running)


@pytest.fixture
def remote(server: Server) -> Iterator[Server]:
    """st.init in remote mode against ``server`` with an agent key."""
    st.init(api_key=server.keys["agent"], base_url=server.url, agent_name="refund-agent")
    yield server
    st.shutdown()


def logged(tool: str | None = None, limit: int = 100) -> list[dict]:
    """The embedded decision log's rows (newest first), after flushing what is queued."""
    client = st.get_client()
    client.flush()
    return client.transport.service.store.list_decisions(tool=tool, limit=limit)


def use_policy(tmp_path: Path, text: str) -> None:
    """Re-init the embedded staso of the ``home`` fixture with this policy."""
    st.init(agent_name="refund-agent", home=tmp_path, policy=make_policy(tmp_path, text))


# one rule most embedded tests need: refunds over 1,000 go to a person
REFUND_POLICY = """version: 1
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
"""


# -- a real browser: Debian's chromium driven by Playwright --------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per test module (``playwright install`` cannot download here)."""
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()
