"""The module-level API (``import staso as st``): one process-wide client."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import Client
from .models import Escalation, GuardResult
from .options import GuardOptionKwargs, guard_options
from .settings import Settings

if TYPE_CHECKING:
    from typing_extensions import Unpack

_client: Client | None = None
_lock = threading.Lock()


def init(api_key: str | None = None, agent_name: str | None = None, *,
         base_url: str | None = None, environment: str | None = None, policy: Any = None,
         home: str | Path | None = None, fail_closed: bool | None = None,
         guard_timeout: float | None = None, plugins: Iterable[Any] = ()) -> Client:
    """Configure staso. Without ``base_url`` it runs embedded: no server needed."""
    global _client
    settings = Settings.resolve(api_key=api_key, agent_name=agent_name, base_url=base_url,
                                environment=environment, policy=policy, home=home,
                                fail_closed=fail_closed, guard_timeout=guard_timeout,
                                plugins=plugins)
    client = Client(settings)
    with _lock:
        previous, _client = _client, client
    if previous is not None:
        previous.shutdown()
    return client


def get_client() -> Client:
    """The current client, initialised from the environment on first use."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = Client(Settings.resolve())
    return _client


def guard(tool_name: str, tool_input: dict[str, Any], *, context: dict[str, Any] | None = None,
          **options: Unpack[GuardOptionKwargs]) -> GuardResult:
    """Decide on a tool call before it runs: allow, block, modify or escalate. The options
    (``wait_for_escalation``, ``escalation_poll_interval``, ``escalation_timeout``,
    ``timeout``, ``fail_closed``) are ``GuardOptions``' fields, with its defaults."""
    return get_client().guard_with(tool_name, tool_input, guard_options(options), context)


async def aguard(tool_name: str, tool_input: dict[str, Any], *,
                 context: dict[str, Any] | None = None,
                 **options: Unpack[GuardOptionKwargs]) -> GuardResult:
    """``guard`` for asyncio code; never blocks the event loop."""
    return await get_client().aguard_with(tool_name, tool_input, guard_options(options),
                                          context)


def get_escalation(escalation_id: str) -> Escalation:
    return get_client().get_escalation(escalation_id)


def approve(escalation_id: str, *, by: str, comment: str | None = None,
            modified_input: dict[str, Any] | None = None,
            grant: dict[str, Any] | None = None) -> Escalation:
    """Approve an escalation (optionally with an edited input, or with a standing approval
    for calls like it: ``grant={"ttl": "1h", "max_uses": 20}``). Refused once expired; where
    the rule needs several approvers, one approval is counted and it stays pending."""
    return get_client().approve(escalation_id, by=by, comment=comment,
                                modified_input=modified_input, grant=grant)


def deny(escalation_id: str, *, by: str, comment: str | None = None) -> Escalation:
    return get_client().deny(escalation_id, by=by, comment=comment)


def shutdown() -> None:
    """Flush the decision log and close. Idempotent; also runs at exit."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.shutdown()
