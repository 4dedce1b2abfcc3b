"""The adapter kit: what every framework adapter shares, and the only part of core (besides
the public API) that integrations import.

An adapter turns a framework's tool call into ``(tool_name, tool_input, context)``, asks a
``ToolGuard`` (built from the shared keywords: ``ToolGuard.of(**options)``) for the outcome
(the one decision → outcome mapping, in ``outcome.py``), then runs the tool with
``outcome.tool_input`` or hands ``outcome.message`` to the model, and records how the tool
ran (``execution``). ``guarded_copy`` makes a guarded copy of a pydantic tool; ``require``
and ``lazy_exports`` make a missing framework a clear error on first use; ``requested_by_in``
reads who asked for a run where a framework lets the caller say it (a config, a run context,
a request's metadata). Keeping that here means LangChain, the OpenAI Agents SDK, CrewAI and
``@st.tool`` cannot drift apart.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .client import watch_pending
from .conversations import current_context
from .decision_log import truncate
from .errors import InvalidToolInput, StasoError, install_extra
from .models import Escalation, GuardResult
from .options import DEFAULT_OPTIONS, CallKwargs, GuardKwargs, GuardOptions, guard_options
from .outcome import OnBlock, Outcome, decide_outcome
from .resolution import result_from_escalation

__all__ = ["CallKwargs", "Execution", "GuardKwargs", "GuardOptions", "IntegrationMissing",
           "OnBlock", "Outcome", "ToolGuard", "current_context", "execution_fields",
           "guarded_class", "guarded_copy", "lazy_exports", "requested_by_in", "require",
           "validated_input", "watch_pending"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .client import Client

log = logging.getLogger("staso")


class IntegrationMissing(StasoError, ImportError):
    """A framework adapter was used without its framework installed."""


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import a framework module, or say which extra to install (sentry-style soft failure)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise IntegrationMissing(
            f"{feature} needs the '{module.split('.')[0]}' package, which is not installed: "
            f"{install_extra(extra)} ({exc})") from exc


@functools.cache
def _api() -> Any:
    """``staso.api``, imported once on first use (it imports this module)."""
    from . import api

    return api


def execution_fields(status: str, started: float, output: Any = None,
                     error: BaseException | None = None) -> dict[str, Any]:
    """The decision log's record of whether and how a guarded tool ran."""
    return {"execution_status": status, "execution_ms": (time.perf_counter() - started) * 1000,
            "execution_output": None if output is None else truncate(
                output if isinstance(output, str) else repr(output)),
            "execution_error": None if error is None else truncate(
                f"{type(error).__name__}: {error}")}


_ADAPTER_KEYWORDS = ("on_block", "on_escalate", "context", "client")


@dataclass(frozen=True)
class ToolGuard:
    """How an adapter guards calls: the guard options, and what the model gets for a block
    or a pending escalation (``on_block`` / ``on_escalate``: "output", a message it reads;
    "raise", the exception), context added to every call, and the client to use."""

    options: GuardOptions = DEFAULT_OPTIONS
    on_block: OnBlock = "output"
    on_escalate: OnBlock = "output"
    context: Mapping[str, Any] | None = None
    client: Client | None = field(default=None, repr=False)

    @classmethod
    def of(cls, **kwargs: Unpack[GuardKwargs]) -> ToolGuard:
        """The guard an adapter's keywords describe (every adapter takes the same ones)."""
        options: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _ADAPTER_KEYWORDS}
        own: dict[str, Any] = {k: v for k, v in kwargs.items() if k in _ADAPTER_KEYWORDS}
        return cls(guard_options(options), **own)

    def __post_init__(self) -> None:
        for name in ("on_block", "on_escalate"):
            if getattr(self, name) not in ("output", "raise"):
                raise ValueError(f"{name} must be 'output' or 'raise', not "
                                 f"{getattr(self, name)!r}")
        if self.context is not None and not isinstance(self.context, Mapping):
            raise TypeError(f"context must be a dict, not {type(self.context).__name__}")

    def client_for_call(self) -> Client:
        """The client this guard uses: its own, else the process-wide one at call time."""
        if self.client is not None:
            return self.client
        return _api().get_client()

    def _context(self, context: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**(context or {}), **(self.context or {})}  # the user's own keys win

    def check(self, tool_name: str, tool_input: dict[str, Any],
              context: Mapping[str, Any] | None = None) -> Outcome:
        """Guard one call and map the decision; blocks while waiting for a person."""
        try:
            result = self.client_for_call().guard_with(tool_name, tool_input, self.options,
                                                       self._context(context))
        except InvalidToolInput as exc:
            result = self._unguardable(tool_name, exc)
        return self.outcome(result, tool_input)

    async def acheck(self, tool_name: str, tool_input: dict[str, Any],
                     context: Mapping[str, Any] | None = None) -> Outcome:
        """``check`` for asyncio: a wait awaits and the event loop stays free."""
        try:
            result = await self.client_for_call().aguard_with(
                tool_name, tool_input, self.options, self._context(context))
        except InvalidToolInput as exc:
            result = self._unguardable(tool_name, exc)
        return self.outcome(result, tool_input)

    def _unguardable(self, tool_name: str, exc: InvalidToolInput) -> GuardResult:
        """Input no rule can read (NaN, a non-JSON object from a model or a caller) never
        runs. Raised as is with ``on_block="raise"``; else the model is told, so a bad
        argument cannot crash the agent's run."""
        if self.on_block == "raise":
            raise exc
        log.warning("staso: %r not run, its input cannot be guarded: %s", tool_name, exc)
        return GuardResult(action="block", rule_name="staso/invalid_input", severity="high",
                           reason=f"its input cannot be guarded ({exc})", tool_name=tool_name)

    def refused(self, pending: GuardResult, escalation: Escalation,
                tool_input: dict[str, Any]) -> Outcome:
        """The outcome of a pending call whose escalation a person denied (or that timed
        out), for an adapter that learned the answer itself: a block carrying the comment.
        An approval has no such shortcut: the identical call made again uses it, once."""
        if escalation.status not in ("denied", "timeout"):
            raise ValueError(f"escalation {escalation.id} is {escalation.status}, not refused")
        return self.outcome(result_from_escalation(escalation, pending), tool_input)

    def outcome(self, result: GuardResult, tool_input: dict[str, Any]) -> Outcome:
        """Map a decision already made (e.g. by an approval hook of the framework)."""
        try:
            outcome = decide_outcome(result, tool_input, on_block=self.on_block,
                                     on_escalate=self.on_escalate)
        except StasoError:
            self.record(result, "not_run", time.perf_counter())
            raise
        if not outcome.run:
            self.record(result, "not_run", time.perf_counter())
        return outcome

    def execution(self, result: GuardResult | None, *, tool_name: str = "",
                  tool_input: dict[str, Any] | None = None) -> Execution:
        """``with guard.execution(result) as run: run.output = tool(...)`` records how the
        tool ran (ok with its output, or the error it raised) on its decision."""
        return Execution(self, result, tool_name, tool_input)

    def record(self, result: GuardResult | None, status: str, started: float, *,
               output: Any = None, error: BaseException | None = None,
               tool_name: str = "", tool_input: dict[str, Any] | None = None) -> None:
        """Note on the decision whether the tool ran, how long it took and what it returned."""
        self.client_for_call().record_execution(
            decision_id=result.decision_id if result else None, tool_name=tool_name,
            tool_input=tool_input or {}, fields=execution_fields(status, started, output, error))


class Execution:
    """One run of a guarded tool, recorded on its decision when the ``with`` block ends."""

    def __init__(self, guard: ToolGuard, result: GuardResult | None, tool_name: str,
                 tool_input: dict[str, Any] | None) -> None:
        self.guard, self.result = guard, result
        self.tool_name, self.tool_input = tool_name, tool_input
        self.output: Any = None
        self.error: BaseException | None = None  # an error the tool answered with, not raised
        self.started = 0.0

    def __enter__(self) -> Execution:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        error = error if error is not None else self.error
        self.guard.record(self.result, "error" if error is not None else "ok", self.started,
                          output=self.output, error=error, tool_name=self.tool_name,
                          tool_input=self.tool_input)


def lazy_exports(package: str, exports: Mapping[str, str], *, needs: Mapping[str, str],
                 default_need: str, extra: str) -> Any:
    """A module ``__getattr__`` for an integration package: each name loads on first use,
    after checking that its framework is installed (``require``), so ``import staso_x``
    never fails and never imports the framework."""
    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        require(needs.get(module, default_need), extra=extra, feature=f"{package}.{name}")
        package_module = importlib.import_module(package)
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(package_module, name, value)
        return value
    return __getattr__


def validated_input(schema: Any, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` as a tool with this pydantic ``schema`` will read them: validated, defaults
    filled in, as JSON. A rule on ``amount`` must see the default the tool will use, and
    "5000" as the 5000 the tool gets. Input the schema rejects is guarded as sent: the tool
    rejects it too. (Duck-typed on ``model_validate``: staso itself needs no pydantic.)"""
    fields = getattr(schema, "model_fields", None)
    visible = {k: v for k, v in args.items() if not fields or k in fields}
    if not hasattr(schema, "model_validate"):
        return visible
    try:
        validated = schema.model_validate(visible)
    except Exception:  # pydantic.ValidationError, without importing pydantic
        return visible
    dumped: dict[str, Any] = validated.model_dump(mode="json", by_alias=True)
    return dumped


def requested_by_in(*sources: Any) -> dict[str, str]:
    """``{"requested_by": name}`` from the first of ``sources`` (mappings, or objects such as
    a dataclass run context) that has a ``requested_by`` string, else ``{}``: the context a
    call adds when the caller named who asked through the framework itself. Anything else
    (absent, blank, not a string) adds nothing, so a ``st.conversation(requested_by=...)``
    around the run still counts."""
    for source in sources:
        value = source.get("requested_by") if isinstance(source, Mapping) else \
            getattr(source, "requested_by", None)
        if isinstance(value, str) and value.strip():
            return {"requested_by": value.strip()}
    return {}


_GUARDED_CLASSES: dict[tuple[type, type], type] = {}


def guarded_class(mixin: type, cls: type) -> type:
    """``mixin`` + ``cls`` (the original class, if ``cls`` is already such a class), named
    ``Guarded<cls>``: one class per pair for the process (making a class costs ~2 ms)."""
    base = getattr(cls, "staso_base", cls)
    made = _GUARDED_CLASSES.get((mixin, base))
    if made is None:
        made = _GUARDED_CLASSES.setdefault((mixin, base), type(
            f"Guarded{base.__name__}", (mixin, base), {
                "__module__": base.__module__, "__qualname__": f"Guarded{base.__qualname__}",
                "staso_base": base, "__annotations__": {"staso_base": "ClassVar[Any]"}}))
    return made


def guarded_copy(tool: Any, mixin: type, guard: ToolGuard) -> Any:
    """A copy of a pydantic tool whose class is ``mixin`` + the tool's own class, carrying
    ``guard`` as ``staso_guard``: the copy keeps everything the framework inspects (class,
    name, schema, fields) while the mixin's methods run first. Guarding a guarded copy again
    replaces its guard."""
    copy = tool.model_copy()
    object.__setattr__(copy, "__class__", guarded_class(mixin, type(tool)))
    object.__setattr__(copy, "staso_guard", guard)  # in __dict__, not a pydantic field
    return copy
