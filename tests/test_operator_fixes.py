"""What a new operator meets first: installing, which mode staso runs in, the demo, `staso
serve`'s errors, the CLI against a server that is down or a wrong URL, escalation ids in the
CLI, the licence and the version. Real `staso serve` processes, a real SQLite file and the
real PostgreSQL; the CLI runs in-process (Typer's runner) where a subprocess adds nothing."""

from __future__ import annotations

import logging
import os
import pty
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomllib
from typer.testing import CliRunner

import staso as st
from conftest import start_server, stop_server
from example_runs import REFUND_STORY
from servers import Server, cli, drop_pg_database, free_port, new_pg_database, postgres_available
from staso import settings as settings_module
from staso.cli import app
from staso.errors import StasoError
from staso.settings import KNOWN_VARIABLES, Settings, database_url

ROOT = Path(__file__).parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("operator"), "sqlite")
    yield running
    stop_server(running)


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def a_closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


# -- 1. installing from this repository ----------------------------------------------------
def test_readme_says_how_to_install_from_the_clone_and_from_a_wheel() -> None:
    readme = (ROOT / "README.md").read_text()
    top = readme[:readme.index("## Quickstart")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "pip install -e '.[server]'" in top and "server" in project["optional-dependencies"]
    wheel = f"dist/{project['name']}-{project['version']}-py3-none-any.whl"
    assert f"pip install '{wheel}[server]'" in top  # the file `pip wheel .` really makes
    assert "pip wheel . --no-deps -w dist" in top
    assert "not on PyPI" in top and "unrelated project" in top
    assert "bash scripts/demo --yes" in top and "bash scripts/test" in top


# -- 2. unknown variables and the mode guard() uses ------------------------------------------
@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This process as if nothing had been said yet, with its own STASO_HOME."""
    monkeypatch.setattr(settings_module, "_said", set())
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_mistyped_variable_and_embedded_mode_are_said_once(
        fresh_process: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("STASO_BASEURL", "http://staso.internal:8787")
    caplog.set_level(logging.INFO, logger="staso")
    Settings.resolve()  # what guard() does without st.init
    Settings.resolve()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "staso"]
    assert said == [
        (logging.WARNING, "staso: STASO_BASEURL is not a staso setting and is ignored "
                          "(did you mean STASO_BASE_URL?)"),
        (logging.WARNING, f"staso: embedded mode, store sqlite:///{fresh_process}/staso.db, "
                          f"policy built-in default (no base_url or STASO_BASE_URL: "
                          f"escalations stay in this store, where no approver on a staso "
                          f"server sees them)")]


def test_remote_mode_is_said_quietly(fresh_process: Path, server: Server,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="staso")
    Settings.resolve(base_url=server.url, api_key=server.keys["agent"])
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "staso"]
    assert said == [(logging.INFO, f"staso: remote mode, server {server.url}")]


def test_a_user_sees_the_warnings_without_configuring_logging(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STASO_")}
    run = subprocess.run([sys.executable, "-c", "import staso as st; "
                          "print(st.guard('process_refund', {'amount': 5000}).action)"],
                         env={**env, "STASO_HOME": str(tmp_path), "STASO_BASEURL": "http://x"},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "escalate", run.stderr
    assert "STASO_BASEURL is not a staso setting and is ignored (did you mean STASO_BASE_URL?)" \
        in run.stderr
    assert f"staso: embedded mode, store sqlite:///{tmp_path}/staso.db" in run.stderr


def test_every_variable_staso_reads_is_known() -> None:
    """The one list in settings.py names every STASO_* variable the code, examples, deploy
    files and scripts read."""
    read: set[str] = set()
    for folder in ("staso_core", "integrations", "examples", "deploy", "scripts", "benchmarks"):
        for path in (p for p in (ROOT / folder).rglob("*") if p.is_file()
                     and p.suffix not in (".pyc", ".png", ".db")):
            text = path.read_text(errors="replace")  # (settings.py's docstring shows a typo)
            read |= set(re.findall(r"\bSTASO_[A-Z0-9_]*[A-Z0-9]\b", text)) - {"STASO_BASEURL"}
    assert read - KNOWN_VARIABLES == set()


# -- 3. the attended demo keeps its dashboard up ---------------------------------------------
def test_the_attended_demo_keeps_the_dashboard_up_until_sigterm(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()  # stdin is a terminal: a person is there
    proc = subprocess.Popen([sys.executable, "-u", "-m", "staso.cli", "demo", "--port", "0",
                             "--timeout", "60"], stdin=terminal, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    os.close(terminal)
    lines: list[str] = []

    def read_until(text: str) -> None:
        assert proc.stdout is not None
        while not any(text in line for line in lines):
            line = proc.stdout.readline()  # "" once the demo has ended
            assert line, f"no {text!r} in {lines}"
            lines.append(line)

    try:
        read_until("waiting for a person")
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", lines[0]).group(1)
        key = re.search(r"approver key: (\S+)", "".join(lines)).group(1)
        escalation = re.search(r"escalation (esc_\w+)", "".join(lines)).group(1)
        approved = httpx.post(f"{url}/v1/escalations/{escalation}/approve", json={},
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert approved.status_code == 200, approved.text
        read_until("dashboard still at")
        assert any("-> ALLOW (approved)" in line for line in lines)
        assert f"dashboard still at {url}/ — Ctrl-C to stop" in lines[-1]
        # the page the person has open keeps working, history included
        listed = httpx.get(f"{url}/v1/escalations", timeout=30,
                           headers={"Authorization": f"Bearer {key}"})
        assert [e["status"] for e in listed.json()] == ["approved"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)


# -- 4. staso serve: database URLs and a busy port -------------------------------------------
def test_postgres_urls_mean_psycopg_everywhere() -> None:
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql://u@h:5433/db") == "postgresql+psycopg://u@h:5433/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432 (.ci/run starts it)")
    url = new_pg_database()
    try:  # the real server on a postgres:// URL, as hosting providers write them
        bare = "postgres://" + url.split("://", 1)[1]
        key = invoke("keys", "create", "--role", "admin", "--name", "ops",
                     "--database-url", bare)
        assert key.exit_code == 0, key.output
        assert key.stdout.strip().startswith("staso_admin_")
    finally:
        drop_pg_database(url)


def test_a_postgres_url_without_its_driver_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as without the postgres extra
    result = invoke("serve", "--database-url", "postgresql://staso@db.internal/staso")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "the database postgresql+psycopg://staso@db.internal/staso needs the postgres extra: "
        "pip install -e '.[postgres]' in the staso repository (PyPI's 'staso' is another "
        "project) (import of psycopg halted; None in sys.modules)"]


@pytest.mark.parametrize("url", ["mysql+nosuchdriver://x/y", "not a url", "mysql://x/y",
                                 "postgresql://staso@127.0.0.1:1/nothing-listens"])
def test_any_other_bad_database_url_is_one_line(url: str, tmp_path: Path) -> None:
    result = invoke("serve", "--database-url", url)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output, \
        result.output


def test_a_sqlite_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    for url in (f"sqlite:///{tmp_path / 'a-file' / 'staso.db'}", "sqlite:////proc/nope/x.db"):
        result = invoke("serve", "--port", "0", "--database-url", url)
        assert result.exit_code == 1, result.output
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output, \
            result.output
        assert "cannot create the folder of the SQLite store" in result.stderr


def _serve_until_listening(args: list[str]) -> str:
    """Start ``staso serve``, return what it said up to "dashboard and API on", stop it."""
    proc = subprocess.Popen([sys.executable, "-m", "staso.cli", "serve", "--port",
                             str(free_port()), *args], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    said = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line)
            if "dashboard and API on" in line:
                break
    finally:
        proc.terminate()
        proc.wait(30)
    return "".join(said)


def test_a_new_store_and_a_replaced_push_are_said(tmp_path: Path) -> None:
    """A typo in a path starts an empty store; restarting with an older --policy undoes a
    colleague's push on every replica: both are said when staso serve starts."""
    from staso.store import open_store

    policy = tmp_path / "staso.yaml"
    policy.write_text("version: 1\nrules: []\n")
    db = tmp_path / "new" / "staso.db"
    said = _serve_until_listening(["--database-url", f"sqlite:///{db}", "--policy", str(policy)])
    assert f"{db} did not exist: this is a new, empty store" in said, said
    assert "warning" not in said, said
    store = open_store(f"sqlite:///{db}")
    try:  # what staso policy push (PUT /v1/policy) stores
        pushed = store.save_policy("version: 1\nrules:\n  - use: builtin/pii\n", by="pgadmin")
    finally:
        store.close()
    said = _serve_until_listening(["--database-url", f"sqlite:///{db}", "--policy", str(policy)])
    assert "did not exist" not in said, said
    assert (f"warning: policy version {pushed} (installed by pgadmin) is replaced by {policy}"
            in said), said
    said = _serve_until_listening(["--database-url", f"sqlite:///{db}", "--policy", str(policy)])
    assert "warning" not in said, said  # the file is in force already: nothing replaced


def test_a_busy_port_is_said_before_any_url(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "--port", str(port), "--database-url",
                        f"sqlite:///{tmp_path / 'staso.db'}")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"port {port} is in use (Address already in use); pick another with --port"]


# -- 5. the CLI and guard() against a server that is down, or a wrong URL --------------------
def test_the_cli_says_at_once_that_nothing_listens() -> None:
    url = f"http://127.0.0.1:{a_closed_port()}"
    result = invoke("escalations", "list", "--url", url, "--key", "ak_x")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"cannot reach the staso server at {url}: connection refused (is staso serve running?)"]


@pytest.mark.parametrize(("given", "said"), [
    ("127.0.0.1:8790", "--url must look like http://host:port (got 127.0.0.1:8790)"),
    ("http://127.0.0.1:8790/v1", "--url is the server's root URL: drop the /v1 "
                                 "(use http://127.0.0.1:8790, got http://127.0.0.1:8790/v1)"),
])
def test_a_url_that_cannot_be_right_is_a_configuration_error(given: str, said: str) -> None:
    result = invoke("escalations", "list", "--url", given, "--key", "ak_x")
    assert (result.exit_code, result.stderr.splitlines()) == (1, [said])
    with pytest.raises(StasoError, match="base_url must look like http://host:port"):
        Settings.resolve(base_url="127.0.0.1:8790", api_key="ak_x")


def test_a_url_without_the_api_is_named(server: Server) -> None:
    wrong = server.url + "/staso"
    result = invoke("escalations", "list", "--url", wrong, "--key", server.keys["approver"])
    assert (result.exit_code, result.stderr.splitlines()) == (
        1, [f"no staso API at {wrong} (is it the server's root URL?)"])


@pytest.mark.parametrize("fail_closed", [True, False])
def test_guard_against_a_down_server_decides_within_the_connect_retry(
        fail_closed: bool) -> None:
    url = f"http://127.0.0.1:{a_closed_port()}"
    client = st.Client(Settings.resolve(base_url=url, api_key="ak_x", guard_timeout=30.0,
                                        fail_closed=fail_closed))
    try:
        result = client.guard("lookup_order", {"order_id": "o_1"})
    finally:
        client.shutdown()
    assert result.action == ("block" if fail_closed else "allow")
    if fail_closed:
        assert f"cannot reach the staso server at {url}: connection refused" in result.reason
        # retried within the 2 s connect_retry (backoff from 50 ms, at most 250 ms apart),
        # not for the call's 30 s timeout: a bound on tries, whatever the machine's speed
        tries = int(re.search(r"\((\d+) attempt\(s\)\)", result.reason).group(1))
        assert 1 <= tries <= 12, result.reason


# -- 6. escalation ids in the CLI ------------------------------------------------------------
@pytest.fixture
def two_escalations(fresh_process: Path) -> tuple[list[str], dict[str, str]]:
    client = st.Client(Settings.resolve(home=fresh_process,
                                        agent_name="a-very-long-agent-name-for-the-table"))
    try:
        ids = [client.guard("process_refund_with_a_long_tool_name",
                            {"amount": 5000 + i}).escalation_id for i in range(2)]
    finally:
        client.shutdown()
    return ids, {"STASO_HOME": str(fresh_process)}


def test_list_shows_whole_ids_and_refuses_an_unknown_status(
        two_escalations: tuple[list[str], dict[str, str]]) -> None:
    ids, env = two_escalations
    listed = invoke("escalations", "list", env=env)
    assert listed.exit_code == 0, listed.output
    assert all(i in listed.stdout for i in ids), listed.stdout
    narrow = cli("escalations", "list", env={**env, "COLUMNS": "80"})  # a real terminal's
    lines = narrow.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), narrow.stdout
    for name in (*ids, "process_refund_with_a_long_tool_name",
                 "a-very-long-agent-name-for-the-table"):  # whole, on one line
        assert any(name in line for line in lines), (name, narrow.stdout)
    bogus = invoke("escalations", "list", "--status", "bogus", env=env)
    assert (bogus.exit_code, bogus.stderr.splitlines()) == (2, [
        "--status must be one of pending, approved, denied, timeout (got 'bogus')"])


def test_show_approve_and_deny_take_an_unambiguous_start_of_an_id(
        two_escalations: tuple[list[str], dict[str, str]]) -> None:
    ids, env = two_escalations
    first, second = ids
    n = next(n for n in range(5, 28) if first[:n] != second[:n])
    shown = invoke("escalations", "show", first[:n], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"id: {first}" in shown.stdout
    created = re.search(r"created_at: (.*)", shown.stdout).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d \(\d+[smhd] ago\)",
                        created), created
    assert re.search(r"expires_at: \d{4}-\d\d-\d\d .* \(in \d+[smhd]\)", shown.stdout)
    both = invoke("escalations", "approve", first[:n - 1], "--by", "ops", env=env)
    assert both.exit_code == 1 and first in both.stderr and second in both.stderr
    assert "give more of it" in both.stderr
    approved = invoke("escalations", "approve", first[:n], "--by", "ops", env=env)
    assert approved.stdout.strip() == f"{first} approved by ops", approved.output
    denied = invoke("escalations", "deny", second[:n], "--by", "ops", env=env)
    assert denied.stdout.strip() == f"{second} denied by ops", denied.output
    unknown = invoke("escalations", "show", "esc_nope", env=env)
    assert unknown.exit_code == 1 and "esc_nope" in unknown.stderr


def test_a_start_of_an_id_works_against_a_server(server: Server) -> None:
    agent = server.agent_client("prefix-agent")
    try:
        escalation_id = agent.guard("process_refund", {"amount": 9100}).escalation_id
    finally:
        agent.shutdown()
    answered = invoke("escalations", "approve", escalation_id[:-6], "--by", "alice",
                      "--url", server.url, "--key", server.keys["approver"])
    assert answered.stdout.strip() == f"{escalation_id} approved by alice", answered.output


# -- 7. licence, version, the examples against a server -------------------------------------
def test_the_license_pyproject_names_is_there() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == \
        "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    from importlib.metadata import version

    result = invoke(flag)
    assert (result.exit_code, result.stdout) == (0, f"staso {version('staso')}\n")


def test_the_example_approves_with_an_approver_key_against_a_server(server: Server,
                                                                      tmp_path: Path) -> None:
    pytest.importorskip("langchain")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "STASO_POLICY")}
    env.update(STASO_HOME=str(tmp_path), STASO_BASE_URL=server.url,
               STASO_API_KEY=server.keys["agent"], STASO_APPROVER_KEY=server.keys["approver"])
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "langchain_agent.py")],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for line in REFUND_STORY:
        assert line in run.stdout, (line, run.stdout)
    listed = server.request("GET", "/v1/escalations?agent=refund-agent", role="approver")
    assert [e["status"] for e in listed.json()] == ["approved"]
