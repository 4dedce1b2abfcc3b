"""The guard options: how one guard call behaves, declared and checked in this one place.

``st.guard``/``aguard``, ``Client.guard``/``aguard``, ``@st.tool`` and every framework
adapter take the same keywords (``GuardKwargs`` types them for ``**options``) and build one
``GuardOptions`` from them, so a default or a check cannot differ between entry points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from .outcome import OnBlock

if TYPE_CHECKING:
    from .client import Client


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """How a guard call behaves.

    ``wait_for_escalation``: hold the call until a person answers (or ``escalation_timeout``
    seconds pass), checking at least every ``escalation_poll_interval`` seconds; otherwise an
    escalation answers at once with a pending decision. ``timeout``: seconds the decision
    itself may take (None: the client's ``guard_timeout``). ``fail_closed``: when staso
    cannot decide, block (True) or allow (False); None: the client's setting.
    """

    wait_for_escalation: bool = False
    escalation_poll_interval: float = 3.0
    escalation_timeout: float = 300.0
    timeout: float | None = None
    fail_closed: bool | None = None

    def __post_init__(self) -> None:
        if self.escalation_poll_interval <= 0 or self.escalation_timeout <= 0:
            raise ValueError("escalation_poll_interval and escalation_timeout must be > 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")


DEFAULT_OPTIONS = GuardOptions()
_FIELDS = frozenset(GuardOptions.__dataclass_fields__)


def guard_options(options: Mapping[str, Any]) -> GuardOptions:
    """The options for a call's keywords; the shared default when none are given (a call
    with no options builds nothing)."""
    if not options:
        return DEFAULT_OPTIONS
    unknown = options.keys() - _FIELDS
    if unknown:
        raise TypeError(f"unknown guard option {', '.join(map(repr, sorted(unknown)))}; the "
                        f"options are {', '.join(sorted(_FIELDS))}")
    return GuardOptions(**options)


class GuardOptionKwargs(TypedDict, total=False):
    """The guard options as keywords (``**options: Unpack[GuardOptionKwargs]``)."""

    wait_for_escalation: bool
    escalation_poll_interval: float
    escalation_timeout: float
    timeout: float | None
    fail_closed: bool | None


class CallKwargs(GuardOptionKwargs, total=False):
    """The guard options, context added to every call, and the client to use (default: the
    process-wide one, looked up at call time)."""

    context: Mapping[str, Any] | None
    client: Client | None


class GuardKwargs(CallKwargs, total=False):
    """What a framework adapter takes: ``CallKwargs`` and what the model gets for a block
    or a pending escalation ("output": a message it reads; "raise": the exception)."""

    on_block: OnBlock
    on_escalate: OnBlock
