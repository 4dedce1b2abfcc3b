"""Settings from ``st.init`` arguments, falling back to STASO_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StasoError


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

    @property
    def remote(self) -> bool:
        return bool(self.base_url)

    @classmethod
    def resolve(cls, *, api_key: str | None = None, agent_name: str | None = None,
                base_url: str | None = None, environment: str | None = None,
                policy: Any = None, home: str | Path | None = None,
                fail_closed: bool | None = None, guard_timeout: float | None = None,
                plugins: Iterable[Any] = ()) -> Settings:
        env = os.environ
        base_url = base_url or env.get("STASO_BASE_URL") or None
        api_key = api_key or env.get("STASO_API_KEY") or None
        if base_url and not api_key:
            raise StasoError("remote mode (base_url / STASO_BASE_URL) needs an api key: pass "
                             "api_key= or set STASO_API_KEY")
        if policy is None:
            policy = env.get("STASO_POLICY") or (
                Path("staso.yaml") if Path("staso.yaml").is_file() else None)
        return cls(
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
