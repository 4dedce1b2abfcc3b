"""Settings from ``st.init`` arguments, falling back to STASO_* variables."""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import StasoError, install_extra

log = logging.getLogger("staso")

# Every STASO_* variable staso reads (and the ones its test suite and benchmarks read), in
# one place: a variable not named here is a typo, and silently ignoring it would run staso
# in another mode than meant (a mistyped STASO_BASE_URL leaves the client embedded).
KNOWN_VARIABLES: frozenset[str] = frozenset({
    # the client
    "STASO_API_KEY", "STASO_BASE_URL", "STASO_AGENT_NAME", "STASO_ENVIRONMENT",
    "STASO_POLICY", "STASO_HOME", "STASO_GUARD_FAIL_CLOSED", "STASO_GUARD_TIMEOUT",
    "STASO_GUARD_ENABLED", "STASO_EVAL_WORKERS",
    # the server
    "STASO_DATABASE_URL", "STASO_PUBLIC_URL", "STASO_LARGE_EVAL_PROCESSES",
    "STASO_LARGE_EVAL_WORKERS", "STASO_INLINE_EVAL_BYTES",
    # approval channels and notifiers
    "STASO_SLACK_BOT_TOKEN", "STASO_SLACK_SIGNING_SECRET", "STASO_SLACK_CHANNEL",
    "STASO_SLACK_API_URL", "STASO_SMTP_URL", "STASO_EMAIL_FROM", "STASO_EMAIL_TO",
    "STASO_WEBHOOK_URL",
    # the MCP proxy
    "STASO_MCP_APPROVER_KEY",
    # the examples (examples/*.py)
    "STASO_APPROVER_KEY", "STASO_EXAMPLE_MODEL",
    # the test suite and benchmarks
    "STASO_TALLY", "STASO_SAVE_SCREENSHOTS", "STASO_TEST_PG",
})

_once_lock = threading.Lock()
_said: set[str] = set()  # what this process has already been told (each said once)


def _once(what: str) -> bool:
    """True the first time ``what`` is asked about in this process."""
    with _once_lock:
        if what in _said:
            return False
        _said.add(what)
        return True


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line for each STASO_* variable staso does not read, with the likely intended
    name: ``STASO_BASEURL is not a staso setting ... (did you mean STASO_BASE_URL?)``."""
    env = os.environ if environ is None else environ
    lines = []
    for name in sorted(n for n in env if n.startswith("STASO_") and n not in KNOWN_VARIABLES):
        close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{name} is not a staso setting and is ignored{hint}")
    return lines


def warn_unknown_variables() -> None:
    """Log unknown STASO_* variables, once per process, to the ``staso`` logger."""
    if _once("variables"):
        for line in unknown_variables():
            log.warning("staso: %s", line)


def check_base_url(url: str, option: str = "base_url") -> str:
    """``url`` without a trailing slash, or a StasoError saying how to write it: a URL
    without a scheme, or with the API's /v1 path, is a configuration error, not something
    to retry."""
    example = f"{option} must look like http://host:port"
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise StasoError(f"{example} (got {url})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StasoError(f"{example} (got {url})")
    path = parts.path.rstrip("/")
    if path == "/v1" or path.endswith("/v1") or "/v1/" in path:
        root = f"{parts.scheme}://{parts.netloc}{path[:path.rfind('/v1')]}"
        raise StasoError(f"{option} is the server's root URL: drop the /v1 "
                         f"(use {root}, got {url})")
    if parts.query or parts.fragment:
        raise StasoError(f"{example} (got {url})")
    return url.strip().rstrip("/")


def database_url(url: str) -> str:
    """A database URL as SQLAlchemy takes it: ``postgres://`` and ``postgresql://`` (what
    hosting providers hand out) mean PostgreSQL through psycopg 3, the driver the postgres
    extra installs. A missing driver or a URL that is none is a one-line StasoError."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    text = url.strip()
    for scheme in ("postgres://", "postgresql://"):
        if text.startswith(scheme):
            text = "postgresql+psycopg://" + text[len(scheme):]
    try:
        parsed = sa.engine.make_url(text)
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise StasoError(f"unsupported database URL scheme {text.split(':', 1)[0]!r}: use "
                         f"sqlite:///PATH or postgresql://user@host/db") from None
    except (ArgumentError, ValueError) as exc:
        raise StasoError(f"not a database URL ({exc}): use sqlite:///PATH or "
                         f"postgresql://user@host/db") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        extra = f" needs the postgres extra: {install_extra('postgres')}" \
            if parsed.get_backend_name() == "postgresql" else " needs its database driver"
        raise StasoError(f"the database {parsed.render_as_string()}{extra} ({exc})") from None
    return text


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise StasoError(f"{name}={value!r} is not a number of seconds") from None


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """A whole number (at least ``minimum``) from the environment, or ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise StasoError(f"{name}={value!r} is not a whole number") from None
    if number < minimum:
        raise StasoError(f"{name}={value!r} must be at least {minimum}")
    return number


def default_home() -> Path:
    """Where the embedded store lives: ``STASO_HOME``, else ``~/.staso``."""
    return Path(os.environ.get("STASO_HOME") or "~/.staso").expanduser()


def store_file(home: str | Path) -> Path:
    """The embedded store's SQLite file in ``home``."""
    return Path(home).expanduser() / "staso.db"


@dataclass
class Settings:
    api_key: str | None = None
    agent_name: str = "agent"
    base_url: str | None = None
    environment: str = ""
    policy: Any = None  # a path, YAML text, or a Policy
    home: Path = field(default_factory=lambda: Path("~/.staso").expanduser())
    fail_closed: bool = True
    guard_timeout: float = 10.0
    enabled: bool = True
    plugins: tuple[Any, ...] = ()
    max_input_bytes: int = 1024 * 1024
    eval_workers: int = 4  # embedded: threads that evaluate large inputs under a timeout
    # remote: seconds a call keeps retrying a server that refuses connections (one that is
    # restarting); waiting for an escalation's answer retries until its own deadline
    connect_retry: float = 2.0

    @property
    def remote(self) -> bool:
        return bool(self.base_url)

    @classmethod
    def resolve(cls, *, api_key: str | None = None, agent_name: str | None = None,
                base_url: str | None = None, environment: str | None = None,
                policy: Any = None, home: str | Path | None = None,
                fail_closed: bool | None = None, guard_timeout: float | None = None,
                plugins: Iterable[Any] = (), announce: bool = True) -> Settings:
        """``announce``: log (once per process) which mode and store guard() uses; the
        CLI, which says so itself, passes False."""
        env = os.environ
        warn_unknown_variables()
        chosen = bool(base_url or home)  # the caller picked the server or the store itself
        base_url = base_url or env.get("STASO_BASE_URL") or None
        api_key = api_key or env.get("STASO_API_KEY") or None
        if base_url:
            base_url = check_base_url(base_url, "base_url" if chosen else "STASO_BASE_URL")
        if base_url and not api_key:
            raise StasoError("remote mode (base_url / STASO_BASE_URL) needs an api key: pass "
                             "api_key= or set STASO_API_KEY")
        if policy is None:
            policy = env.get("STASO_POLICY") or (
                Path("staso.yaml") if Path("staso.yaml").is_file() else None)
        settings = cls(
            api_key=api_key,
            agent_name=agent_name or env.get("STASO_AGENT_NAME") or "agent",
            base_url=base_url.rstrip("/") if base_url else None,
            environment=environment or env.get("STASO_ENVIRONMENT") or "",
            policy=policy,
            home=Path(home).expanduser() if home else default_home(),
            fail_closed=fail_closed if fail_closed is not None
            else _env_bool("STASO_GUARD_FAIL_CLOSED", True),
            guard_timeout=guard_timeout if guard_timeout is not None
            else _env_float("STASO_GUARD_TIMEOUT", 10.0),
            enabled=env.get("STASO_GUARD_ENABLED", "").strip().lower() != "false",
            plugins=tuple(plugins),
            eval_workers=env_int("STASO_EVAL_WORKERS", 4),
        )
        if announce:
            announce_mode(settings, chosen)
        return settings


def announce_mode(settings: Settings, chosen: bool) -> None:
    """Say once per process where guard() sends its calls. Embedded without a store the
    caller chose (no ``base_url``/``home``: a forgotten ``st.init`` or a mistyped
    STASO_BASE_URL) is a WARNING, seen by default: its escalations land where no approver
    on a server sees them. Otherwise INFO."""
    if not _once("mode"):
        return
    if settings.remote:
        log.info("staso: remote mode, server %s", settings.base_url)
        return
    policy = settings.policy
    if policy is None:
        described = "built-in default"
    elif isinstance(policy, Path) or (isinstance(policy, str) and "\n" not in policy):
        described = str(policy)
    else:
        described = "given in code"
    level = logging.INFO if chosen else logging.WARNING
    log.log(level, "staso: embedded mode, store sqlite:///%s, policy %s%s",
            store_file(settings.home), described,
            "" if chosen else " (no base_url or STASO_BASE_URL: escalations stay in this "
            "store, where no approver on a staso server sees them)")
