"""Plugin hooks (pluggy project ``staso``). Built-in features use these same hooks.

A plugin is any module or object with ``@staso.hookimpl`` functions, registered through the
``staso`` entry-point group or ``st.init(plugins=[...])``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import APIRouter

    from .channels.base import Channel
    from .models import Escalation, GuardRequest, GuardResult, RuleResult
    from .policy.model import RulePack

hookspec = pluggy.HookspecMarker("staso")
hookimpl = pluggy.HookimplMarker("staso")


@hookspec
def staso_rule_packs() -> list[RulePack]:
    """Rule packs a policy can ``use:`` by name (e.g. ``builtin/pii``)."""


@hookspec
def staso_cel_functions() -> dict[str, Callable[..., Any]]:
    """Functions callable from CEL conditions, by name."""


@hookspec(firstresult=True)
def staso_evaluate(request: GuardRequest) -> RuleResult | None:
    """Decide on a call beside the policy; the first non-None answer counts.

    The answer joins the policy's rule results and the strictest action still wins, so a
    plugin can tighten a decision but never loosen one.
    """


@hookspec
def staso_before_guard(request: GuardRequest) -> None:
    """Called before a call is evaluated. Keep it fast: it runs on the guard's path."""


@hookspec
def staso_after_guard(request: GuardRequest, result: GuardResult) -> None:
    """Called with every decision, once it is made."""


@hookspec
def staso_escalation_created(escalation: Escalation) -> None:
    """A new escalation awaits a person (notifiers hook in here)."""


@hookspec
def staso_escalation_approval(escalation: Escalation) -> None:
    """An approval was counted toward an escalation that needs several; it is still
    pending (``escalation.approvals`` lists those so far). Channels update their posts."""


@hookspec
def staso_escalation_resolved(escalation: Escalation) -> None:
    """An escalation was approved, denied or timed out."""


@hookspec
def staso_channels() -> list[type[Channel]]:
    """Approval channels (``Channel`` subclasses), named by scheme in a rule's ``notify:``
    (``slack:#payments``). ``staso serve`` makes each one its configuration enables and
    delivers what it posts from a queue in the database; its answers come back through a
    route of its own (``staso_http_routes``)."""


@hookspec
def staso_http_routes() -> list[APIRouter]:
    """Routers ``staso serve`` mounts at startup, e.g. a Slack interactivity endpoint.

    Called only by the server, so a plugin imports FastAPI inside the function and stays
    importable without the server extra. A route that clashes with one already mounted
    (the same method and path) stops the server from starting. Routes answer without any
    staso key: each checks its callers itself (a Slack signature, a signed link).
    """


@hookspec
def staso_dashboard_links() -> list[tuple[str, str]]:
    """(label, href) pairs the dashboard's header shows; href is a path on this server
    (``/...``) or an ``http(s)://`` address."""
