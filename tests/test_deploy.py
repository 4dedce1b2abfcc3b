"""docs/deploy.md, run for real: a PostgreSQL database, two replicas started with the
systemd unit's own command line and environment file, nginx with TLS in front (the config in
``deploy/``), an escalation answered across replicas while an agent waits through nginx, key
rotation, ``pg_dump``/``pg_restore`` and the unit checked by ``systemd-analyze verify``.

systemd is not PID 1 here, so the unit is verified, not started; its ExecStart line is what
the replicas run."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REFUND_POLICY
from servers import PG_ADMIN_URL, drop_pg_database, free_port, postgres_available, wait_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "deploy.md"
UNIT = DEPLOY / "staso@.service"
NGINX_SITE = DEPLOY / "nginx.conf"
ENV_EXAMPLE = DEPLOY / "staso.env.example"
STASO = [sys.executable, "-m", "staso.cli"]



# -- the deploy/ files, as a test machine runs them ------------------------------------------
def unit_command(port: int, etc: Path, home: Path) -> list[str]:
    """The unit's ExecStart for instance ``port``, with its paths moved under the test's
    folders and its binary this interpreter's staso."""
    line = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    line = (line.removeprefix("ExecStart=").replace("%i", str(port))
            .replace("/etc/staso/", f"{etc}/").replace("/var/lib/staso", str(home)))
    argv = shlex.split(line)
    assert argv[0] == "/opt/staso/bin/staso", argv
    return [*STASO, *argv[1:]]


def env_file(overrides: dict[str, str]) -> dict[str, str]:
    """deploy/staso.env.example's variables, with test values for those named (each must be
    in the example: a variable the test needs that the example lacks is a gap in the doc)."""
    found = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))
    missing = set(overrides) - set(found)
    assert not missing, f"deploy/staso.env.example does not set {sorted(missing)}"
    return {**found, **overrides}


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if found is None:
        pytest.fail("nginx is not installed: apt-get install -y nginx (.ci/run installs it)")
    return found


def pg_tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[-1:]), None)
    if found is None:
        pytest.fail(f"{name} is not installed (Debian's postgresql-client has it)")
    return found


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_database(prefix: str = "staso_deploy_") -> str:
    import psycopg

    name = prefix + secrets.token_hex(5)
    with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def site_config(upstreams: list[int], https_port: int, http_port: int, cert: Path,
                key: Path) -> str:
    """deploy/nginx.conf with the test's ports and certificate: each value replaced must
    occur exactly once, so the file cannot drift from what is tested."""
    text = NGINX_SITE.read_text()
    swaps = {"127.0.0.1:8787": f"127.0.0.1:{upstreams[0]}",
             "127.0.0.1:8788": f"127.0.0.1:{upstreams[1]}",
             "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
             "listen 80;": f"listen 127.0.0.1:{http_port};",
             "/etc/ssl/staso/fullchain.pem": str(cert), "/etc/ssl/staso/privkey.pem": str(key)}
    for old, new in swaps.items():
        assert text.count(old) == 1, f"deploy/nginx.conf should hold {old!r} once"
        text = text.replace(old, new)
    return text


def nginx_main_config(root: Path, site: Path) -> str:
    """What /etc/nginx/nginx.conf gives the site on a real host, kept in ``root``; the access
    log names the replica that answered each request."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"    {kind}_temp_path {root / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    log_format upstream '$request $status $upstream_addr';\n"
            f"    access_log {root / 'access.log'} upstream;\n{temp}"
            f"    include {site};\n}}\n")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# -- the running deployment -------------------------------------------------------------------
@dataclass
class Replica:
    """One ``staso serve``, started as the unit starts it."""

    port: int
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=out,
                                            env={**os.environ, **self.env})

        def up() -> bool:
            assert self.process is not None and self.process.poll() is None, \
                f"staso serve exited: {self.log.read_text()}"
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(up, f"the replica on port {self.port}", timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Deployment:
    root: Path
    database_url: str
    env: dict[str, str]
    etc: Path
    cert: Path
    https: str
    http: str
    access_log: Path
    replicas: list[Replica] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)  # keys revoked so far

    def keys_create(self, role: str, name: str) -> tuple[str, str]:
        """``staso keys create`` as the doc runs it: the key, and its id from the message."""
        done = run_cli("keys", "create", "--role", role, "--name", name, env=self.env)
        found = re.search(r"\b(key_\w+)", done.stderr)
        assert found, done.stderr
        return done.stdout.strip(), found.group(1)

    def replica(self, port: int, env: dict[str, str] | None = None) -> Replica:
        home = self.root / "home"
        return Replica(port, unit_command(port, self.etc, home), {**self.env, **(env or {})},
                       self.root / f"serve-{port}.log")

    def proxy(self, method: str, path: str, key: str | None = None,
              **kwargs: Any) -> httpx.Response:
        """A request through nginx, over TLS checked against the test's certificate."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.request(method, self.https + path, headers=headers, timeout=60,
                             verify=ssl.create_default_context(cafile=self.cert), **kwargs)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*STASO, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert done.returncode == 0, f"staso {' '.join(args)} failed: {done.stderr}"
    return done


def direct(replica: Replica, method: str, path: str, key: str, **kwargs: Any
           ) -> httpx.Response:
    return httpx.request(method, replica.url + path, timeout=60,
                         headers={"Authorization": f"Bearer {key}"}, **kwargs)


def refund(amount: int) -> dict[str, Any]:
    return {"tool_name": "process_refund", "tool_input": {"amount": amount},
            "agent_name": "refund-agent"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    nginx = nginx_binary()
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432 (.ci/run starts it)")
    root = tmp_path_factory.mktemp("deploy")
    etc, home, web = root / "etc", root / "home", root / "nginx"
    for folder in (etc, home, web):
        folder.mkdir()
    (etc / "staso.yaml").write_text(REFUND_POLICY)
    url = create_database()
    replicas: list[Replica] = []
    process: subprocess.Popen[bytes] | None = None
    try:
        cert, key = self_signed_certificate(web)
        ports, https_port, http_port = [free_port(), free_port()], free_port(), free_port()
        site = web / "staso.conf"
        site.write_text(site_config(ports, https_port, http_port, cert, key))
        main = web / "nginx.conf"
        main.write_text(nginx_main_config(web, site))
        env = env_file({"STASO_DATABASE_URL": url, "STASO_HOME": str(home),
                        "STASO_PUBLIC_URL": f"https://localhost:{https_port}"})
        found = Deployment(root, url, env, etc, cert, f"https://localhost:{https_port}",
                           f"http://127.0.0.1:{http_port}", web / "access.log")
        # first keys: the first staso command on the database also creates its tables
        for role, name in (("agent", "refund-agent"), ("approver", "alice")):
            found.keys[role], found.key_ids[role] = found.keys_create(role, name)
        replicas.extend(found.replica(port).start() for port in ports)
        found.replicas = replicas
        checked = subprocess.run([nginx, "-t", "-p", str(web), "-c", str(main)],
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen([nginx, "-p", str(web), "-c", str(main), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def serving() -> bool:
            assert process is not None and process.poll() is None, process.stderr
            try:
                return found.proxy("GET", "/healthz").status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(serving, "nginx in front of the replicas")
        yield found
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
        for replica in replicas:
            replica.stop()
        drop_pg_database(url)


# -- the files in deploy/ ---------------------------------------------------------------------
def test_the_doc_shows_each_deploy_file_as_it_is() -> None:
    doc = DOC.read_text()
    for path in (UNIT, NGINX_SITE, ENV_EXAMPLE):
        assert path.read_text().strip() in doc, f"docs/deploy.md does not show {path.name} " \
                                                "as it is in deploy/"
    assert not re.search(r"§\s*\d|SPEC", doc), "docs/deploy.md must stand alone"


def test_nginx_holds_a_long_poll_longer_than_the_server_does() -> None:
    from staso.server import ServerConfig

    longest = ServerConfig(database_url="").long_poll_limit
    site = NGINX_SITE.read_text()
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", site)
    assert timeout is not None and int(timeout.group(1)) > longest, \
        f"proxy_read_timeout must be above the server's longest long-poll, {longest:g} s"
    assert "proxy_buffering off;" in site
    assert "X-Forwarded-Proto $scheme" in site and "$proxy_add_x_forwarded_for" in site
    assert f"{longest:g} s" in DOC.read_text(), "the doc states the longest long-poll"


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(analyze).exists():
        pytest.fail("systemd-analyze is not installed (Debian's systemd package has it)")
    text = UNIT.read_text()
    for option in ("ProtectSystem=strict", "ReadWritePaths=/var/lib/staso",
                   "Restart=on-failure", "NoNewPrivileges=yes", "User=staso",
                   "EnvironmentFile=/etc/staso/staso.env"):
        assert option in text.splitlines(), option
    # the binary must exist for verify: this machine's staso stands in for /opt/staso's
    staso = Path(sys.executable).parent / "staso"
    instance = tmp_path / "staso@8787.service"
    instance.write_text(text.replace("/opt/staso/bin/staso", str(staso)))
    done = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True,
                          timeout=60)
    # verify exits 0 on warnings (an unknown option, a bad value): none may name the unit
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "staso@" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


# -- the deployment, over https through nginx -------------------------------------------------
def test_healthz_and_metrics_over_tls_from_both_replicas(deployment: Deployment) -> None:
    health = deployment.proxy("GET", "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "staso_long_polls" in deployment.proxy("GET", "/metrics").text
    plain = httpx.get(deployment.http + "/healthz", timeout=30)
    assert plain.status_code == 301
    assert plain.headers["location"].startswith("https://")
    ports = {str(r.port) for r in deployment.replicas}

    def both_answered() -> bool:
        deployment.proxy("GET", "/healthz")
        log = deployment.access_log.read_text()
        return all(f"127.0.0.1:{port}" in log for port in ports)
    wait_for(both_answered, "nginx to send requests to both replicas")


def test_cookies_are_secure_behind_the_proxy(deployment: Deployment) -> None:
    """nginx says the client came over https and the replica believes it (its proxy is
    on 127.0.0.1, which FORWARDED_ALLOW_IPS names): the dashboard's cookies are Secure."""
    through = deployment.proxy("GET", "/login").headers.get("set-cookie", "")
    assert "staso" in through.lower() and "secure" in through.lower(), through
    plain = httpx.get(deployment.replicas[0].url + "/login", timeout=30)
    assert "secure" not in plain.headers.get("set-cookie", "").lower()


def test_escalated_on_one_replica_answered_on_the_other_while_waiting_through_nginx(
        deployment: Deployment) -> None:
    first, second = deployment.replicas
    guarded = direct(first, "POST", "/v1/guard", deployment.keys["agent"], json=refund(5000))
    assert guarded.status_code == 200 and guarded.json()["action"] == "escalate"
    escalation = guarded.json()["escalation_id"]
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer.update(deployment.proxy("GET", f"/v1/escalations/{escalation}?wait=50",
                                       deployment.keys["agent"]).json())
    waiter = threading.Thread(target=long_poll)
    waiter.start()
    try:
        def held() -> bool:
            return any("staso_long_polls 1" in httpx.get(r.url + "/metrics", timeout=10).text
                       for r in deployment.replicas)
        wait_for(held, "the long-poll to be held by a replica")
        approved = direct(second, "POST", f"/v1/escalations/{escalation}/approve",
                          deployment.keys["approver"], json={"comment": "refund ok"})
        assert approved.status_code == 200, approved.text
    finally:
        waiter.join(timeout=60)
    assert answer.get("status") == "approved", answer


def test_an_agent_waits_through_nginx_and_resumes_when_approved(deployment: Deployment
                                                                ) -> None:
    """staso's own client, over https with the site's certificate (SSL_CERT_FILE)."""
    script = ("import json, staso as st\n"
              f"st.init(api_key={deployment.keys['agent']!r}, base_url={deployment.https!r},"
              " agent_name='refund-agent')\n"
              "r = st.guard(tool_name='process_refund', tool_input={'amount': 7000},"
              " wait_for_escalation=True, escalation_timeout=90)\n"
              "print(json.dumps({'action': r.action, 'id': r.escalation_id}))\n"
              "st.shutdown()\n")
    agent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "SSL_CERT_FILE": str(deployment.cert)})
    try:
        def pending() -> list[dict[str, Any]]:
            found = deployment.proxy("GET", "/v1/escalations?status=pending&tool=process_refund",
                                     deployment.keys["approver"]).json()
            return [e for e in found if e["tool_input"] == {"amount": 7000}]
        escalation = wait_for(pending, "the agent's escalation")[0]["id"]
        approved = deployment.proxy("POST", f"/v1/escalations/{escalation}/approve",
                                    deployment.keys["approver"], json={"comment": "ok"})
        assert approved.status_code == 200, approved.text
        out, err = agent.communicate(timeout=90)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"action": "allow", "id": escalation}


def test_rotating_the_agent_key(deployment: Deployment) -> None:
    old, old_id = deployment.keys["agent"], deployment.key_ids["agent"]
    new, new_id = deployment.keys_create("agent", "refund-agent")
    assert deployment.proxy("POST", "/v1/guard", new, json=refund(10)).json()["action"] == "allow"
    run_cli("keys", "revoke", old_id, env=deployment.env)
    deployment.keys["agent"], deployment.key_ids["agent"] = new, new_id
    for replica in deployment.replicas:  # every replica follows the revocation
        def refused(at: Replica = replica) -> bool:
            return direct(at, "POST", "/v1/guard", old, json=refund(10)).status_code == 401
        wait_for(refused, f"the replica on port {replica.port} to refuse the old key")
    assert deployment.proxy("POST", "/v1/guard", old, json=refund(10)).status_code == 401
    for replica in deployment.replicas:
        answer = direct(replica, "POST", "/v1/guard", new, json=refund(10))
        assert answer.status_code == 200 and answer.json()["action"] == "allow"
    deployment.revoked.append(old)


def test_backup_and_restore(deployment: Deployment) -> None:
    """A dump taken with an escalation pending restores it pending, with the keys as they
    were; a replica on the restored database serves and answers it."""
    agent_key = deployment.keys["agent"]
    guarded = deployment.proxy("POST", "/v1/guard", agent_key, json=refund(9000))
    escalation = guarded.json()["escalation_id"]
    dump = deployment.root / "staso.dump"
    subprocess.run([pg_tool("pg_dump"), "--format=custom", "--file", str(dump),
                    "--dbname", libpq(deployment.database_url)],
                   check=True, capture_output=True, timeout=120)
    restored = create_database("staso_restored_")
    replica = None
    try:
        subprocess.run([pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname",
                        libpq(restored), str(dump)], check=True, capture_output=True,
                       timeout=120)
        replica = deployment.replica(free_port(), {"STASO_DATABASE_URL": restored}).start()
        approver = deployment.keys["approver"]
        seen = direct(replica, "GET", f"/v1/escalations/{escalation}", approver).json()
        assert seen["status"] == "pending" and seen["tool_input"] == {"amount": 9000}
        for revoked in deployment.revoked:  # revoked before the dump: still revoked
            assert direct(replica, "POST", "/v1/guard", revoked, json=refund(10)
                          ).status_code == 401
        assert direct(replica, "POST", "/v1/guard", agent_key, json=refund(10)
                      ).json()["action"] == "allow"
        answered = direct(replica, "POST", f"/v1/escalations/{escalation}/approve", approver,
                          json={"comment": "after the restore"})
        assert answered.status_code == 200 and answered.json()["status"] == "approved"
        # the live database never heard of the restored one's answer
        live = deployment.proxy("GET", f"/v1/escalations/{escalation}", approver).json()
        assert live["status"] == "pending"
    finally:
        if replica is not None:
            replica.stop()
        drop_pg_database(restored)


def test_a_release_older_than_the_schema_refuses_to_start(deployment: Deployment) -> None:
    """Downgrading is restoring the dump taken before the upgrade: a release that does not
    know the database's schema revision stops at start instead of serving on it."""
    import psycopg

    url = create_database("staso_newer_")
    try:
        env = {**deployment.env, "STASO_DATABASE_URL": url}
        run_cli("keys", "list", env=env)  # the documented way to migrate before starting
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = '9999'")
        port = free_port()
        started = subprocess.run(unit_command(port, deployment.etc, deployment.root / "home"),
                                 capture_output=True, text=True, timeout=120,
                                 env={**os.environ, **env})
        assert started.returncode != 0 and "9999" in started.stderr, started.stderr[-2000:]
        # one line that says what to do, not a traceback
        assert "Traceback" not in started.stderr and "does not know" in started.stderr, (
            started.stderr[-2000:])
    finally:
        drop_pg_database(url)


def test_the_replicas_stopped_cleanly(deployment: Deployment) -> None:
    """Last: SIGTERM, as ``systemctl stop`` sends it, ends each replica by that signal
    (uvicorn re-raises it after its graceful shutdown), which systemd counts as a clean stop:
    Restart=on-failure leaves it stopped. Nothing is logged as failing on the way out."""
    for replica in deployment.replicas:
        replica.stop()
        assert replica.process is not None
        assert replica.process.returncode in (0, -signal.SIGTERM), replica.process.returncode
        assert "Traceback" not in replica.log.read_text(), replica.log.read_text()[-2000:]
