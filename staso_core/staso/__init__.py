"""staso — a guard layer for AI agents' tool calls: allow, block, modify or escalate.

``import staso as st`` stays cheap: submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "init": "api", "guard": "api", "aguard": "api", "get_escalation": "api",
    "approve": "api", "deny": "api", "shutdown": "api", "get_client": "api",
    "tool": "tools", "conversation": "conversations",
    "Client": "client", "Settings": "settings",
    "GuardResult": "models", "RuleResult": "models", "Escalation": "models",
    "GuardRequest": "models",
    "StasoError": "errors", "GuardBlocked": "errors", "EscalationPending": "errors",
    "InvalidToolInput": "errors", "PolicyError": "errors", "EscalationNotFound": "errors",
    "EscalationConflict": "errors",
    "EscalationUnavailable": "errors", "StoreUnavailable": "errors", "GuardFailure": "errors",
    "AccessDenied": "errors", "NotAnApprover": "approvers", "AnswerRefused": "approvers",
    "GrantNotFound": "grants", "GrantRevoked": "grants",
    "hookimpl": "hookspecs", "hookspec": "hookspecs",
    "Outcome": "outcome", "decide_outcome": "outcome", "GuardOptions": "options",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .api import aguard, approve, deny, get_client, get_escalation, guard, init, shutdown
    from .approvers import AnswerRefused, NotAnApprover
    from .client import Client
    from .conversations import conversation
    from .errors import (
        AccessDenied,
        EscalationConflict,
        EscalationNotFound,
        EscalationPending,
        GuardBlocked,
        GuardFailure,
        InvalidToolInput,
        PolicyError,
        StasoError,
        StoreUnavailable,
    )
    from .grants import GrantNotFound, GrantRevoked
    from .hookspecs import hookimpl, hookspec
    from .models import Escalation, GuardRequest, GuardResult, RuleResult
    from .options import GuardOptions
    from .outcome import Outcome, decide_outcome
    from .settings import Settings
    from .tools import tool


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'staso' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
