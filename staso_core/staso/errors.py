"""Exceptions raised by staso. Every one names what is wrong and what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import GuardResult


class StasoError(Exception):
    """Base class of every staso error."""


class InvalidToolInput(StasoError, TypeError):
    """The tool input cannot be guarded (not JSON-serialisable, or not a mapping)."""


class PolicyError(StasoError, ValueError):
    """A policy failed to load. The message starts with ``file:line:`` and names the rule."""

    def __init__(self, message: str, *, path: str = "<policy>", line: int | None = None,
                 rule: str | None = None) -> None:
        self.path, self.line, self.rule, self.detail = path, line, rule, message
        where = f"{path}:{line}" if line else path
        prefix = f"rule {rule!r}: " if rule else ""
        super().__init__(f"{where}: {prefix}{message}")


class EscalationNotFound(StasoError, LookupError):
    """No escalation has that id (HTTP 404)."""


class EscalationConflict(StasoError):
    """The escalation was already resolved, or has expired (HTTP 409)."""

    def __init__(self, message: str, *, status: str) -> None:
        self.status = status
        super().__init__(message)


class DecisionIdReused(StasoError, ValueError):
    """A decision id sent again for a different call (HTTP 409): ids name one call."""


class ReusedIdNoFallback(DecisionIdReused):
    """A decision id reused for a call the policy did not allow (HTTP 409): the caller
    must not fall back to allow (a planted id must not let a blocked call through)."""


class StoreUnavailable(StasoError):
    """The decision store could not be read or written."""


class DecisionNotRecorded(StoreUnavailable):
    """A decision could not be recorded, so it is not acknowledged (HTTP 503)."""


class NoFallback(StoreUnavailable):
    """A decision that was not an allow (an escalation, a block) could not be finished:
    the call must never fall back to allow, whatever ``fail_closed`` says (HTTP 503)."""


class EscalationUnavailable(NoFallback):
    """The policy said escalate but the escalation could not be stored: never allow."""


class GuardFailure(StasoError):
    """No decision could be had (server unreachable, timeout, 5xx, malformed answer)."""


class PluginTimeout(GuardFailure):
    """A plugin on the guard's path did not answer within the call's timeout: the call
    blocks, naming it, whatever ``fail_closed`` says."""

    def __init__(self, plugin: str, what: str) -> None:
        super().__init__(f"the plugin {plugin!r} {what}")
        self.plugin, self.what = plugin, what


class AccessDenied(StasoError, PermissionError):
    """The server refused the API key (HTTP 401) or its role (HTTP 403)."""


class _GuardOutcomeError(StasoError):
    """A guarded call did not run; carries the decision that stopped it."""

    def __init__(self, result: GuardResult) -> None:
        self.result = result
        self.reason = result.reason
        self.rule_name = result.rule_name
        self.escalation_id = result.escalation_id
        super().__init__(self._message())

    def _message(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class GuardBlocked(_GuardOutcomeError):
    """The guard blocked the call: the tool did not run."""

    def _message(self) -> str:
        rule = f" by rule {self.rule_name!r}" if self.rule_name else ""
        return f"Tool call {self.result.tool_name!r} blocked{rule}: {self.reason}"


class EscalationPending(_GuardOutcomeError):
    """A person must approve the call first: the tool did not run."""

    def _message(self) -> str:
        return (f"Tool call {self.result.tool_name!r} awaits approval "
                f"(escalation {self.escalation_id}): {self.reason}. Nothing was done.")


def install_extra(extra: str) -> str:
    """How to add one of staso's extras, said the same way everywhere. From the repository:
    the ``staso`` on PyPI is an unrelated project, so ``pip install 'staso[x]'`` would fetch it."""
    return (f"pip install -e '.[{extra}]' in the staso repository (PyPI's 'staso' is another "
            "project)")
