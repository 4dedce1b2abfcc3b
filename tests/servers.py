"""Real ``staso serve`` processes for tests: each on its own port and database."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from staso.client import Client

PG_ADMIN_URL = os.environ.get("STASO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STASO = [sys.executable, "-m", "staso.cli"]


def wait_for(check: Callable[[], Any], what: str = "a condition", timeout: float = 30.0) -> Any:
    """``check()``'s first true value, asked every 50 ms; AssertionError naming ``what``
    after ``timeout`` seconds (generous: CI machines are busy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*STASO, *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"staso {' '.join(args)} failed: {result.stderr}")
    return result


def postgres_available() -> bool:
    try:
        import psycopg
        with psycopg.connect(_libpq(PG_ADMIN_URL), connect_timeout=3):
            return True
    except Exception:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def new_pg_database() -> str:
    """A fresh, empty PostgreSQL database; returns its SQLAlchemy URL."""
    import psycopg

    name = "staso_t_" + secrets.token_hex(6)
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def new_database(tmp: Path, backend: str) -> str:
    """A fresh database's URL: a SQLite file in ``tmp``, or a new PostgreSQL database."""
    if backend != "postgres":
        return f"sqlite:///{tmp / 'staso.db'}"
    if not postgres_available():
        raise AssertionError("PostgreSQL is not reachable at 127.0.0.1:5432 (.ci/run starts it)")
    return new_pg_database()


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.execute(f"DROP DATABASE IF EXISTS {name}")


@dataclass
class Server:
    """One running ``staso serve`` and keys for each role."""

    home: Path
    database_url: str
    port: int = field(default_factory=free_port)
    policy: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. an approval channel's

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql", for test names and tallies."""
        return self.database_url.split(":")[0].split("+")[0]

    @property
    def env(self) -> dict[str, str]:
        return {"STASO_HOME": str(self.home), "STASO_DATABASE_URL": self.database_url,
                **self.extra_env}

    def create_keys(self) -> None:
        for role in ("agent", "approver", "admin"):
            name = {"agent": "refund-bot", "approver": "alice", "admin": "root"}[role]
            # the tests' agent key acts for every agent name the tests use
            bound = ["--agent", "*"] if role == "agent" else []
            self.keys[role] = cli("keys", "create", "--role", role, "--name", name, *bound,
                                  env=self.env).stdout.strip()

    def start(self, timeout: float = 30.0) -> Server:
        args = ["serve", "--port", str(self.port)]
        if self.policy is not None:
            args += ["--policy", str(self.policy)]
        self.log_path = self.home / f"serve-{self.port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([*STASO, *args], stdout=log, stderr=log,
                                        env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"staso serve exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"staso serve did not start: {self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def agent_client(self, agent_name: str, **settings: Any) -> Client:
        """A remote ``staso.Client`` of its own with the agent key, as one agent has."""
        from staso.client import Client
        from staso.settings import Settings

        return Client(Settings.resolve(api_key=self.keys["agent"], base_url=self.url,
                                       agent_name=agent_name, **settings))

    def stored_ids(self, table: str) -> set[str]:
        """The ids in one of the server's tables, read from its database directly."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return {r[0] for r in conn.execute(sa.text(f"SELECT id FROM {table}"))}
        finally:
            engine.dispose()

    def request(self, method: str, path: str, role: str | None = "agent",
                **kwargs: Any) -> httpx.Response:
        headers = self.headers(role) if role else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


PG_BIN = Path("/usr/lib/postgresql")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, on its own port, so a test can restart it
    without touching the shared server. Runs as the ``postgres`` user when started as root."""

    def __init__(self) -> None:
        versions = sorted(PG_BIN.glob("*/bin/pg_ctl"))
        if not versions:
            raise AssertionError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = versions[-1].parent
        # its own directory under /tmp: the postgres user cannot enter pytest's 0700 tmp_path
        root = Path(tempfile.mkdtemp(prefix="staso-pg-"))
        self.root = root
        self.data = root / "pgdata"
        self.data.mkdir()
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            subprocess.run(["chown", "-R", "postgres", str(root)], check=True)
            root.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"{tool} failed: {result.stdout}{result.stderr}")

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
                  *args)

    def start(self) -> PrivatePostgres:
        self._ctl("start")
        return self

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def stop(self) -> None:
        self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def install_plugin(site: Path, module: str, entry: str, source: str) -> None:
    """A plugin package as pip would install it: ``module`` and an entry point ``entry``
    in the group ``staso``, in the directory ``site``."""
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[staso]\n{entry} = {module}\n")


class PluginServer(Server):
    """``staso serve`` with an extra site directory (installed plugins) on its path."""

    site: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(self.site), os.environ.get("PYTHONPATH", ""))
                               if p)
        return {**super().env, "PYTHONPATH": path}

    @classmethod
    def started(cls, home: Path, module: str, entry: str, source: str) -> PluginServer:
        """A started server on a SQLite file in ``home``, with one plugin installed."""
        install_plugin(home / "site", module, entry, source)
        server = cls(home=home, database_url=f"sqlite:///{home / 'staso.db'}")
        server.site = home / "site"
        server.create_keys()
        server.start()
        return server
