"""``guard_tools(tools)``: guarded copies of crewai tools. crewai runs a tool through its
``_run`` (``to_structured_tool`` binds it), so the copy's ``_run`` asks staso first and then
runs the tool's own ``_run`` with the decided input, or returns the refusal as the tool's
result, which is what the agent reads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from crewai.tools import BaseTool

from staso import GuardResult
from staso.adapters import GuardKwargs, Outcome, ToolGuard, guarded_copy, validated_input

from .calls import crewai_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

    pass


def _named(tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name (crewai passes keywords; positionals are named too)."""
    names = list(getattr(tool.args_schema, "model_fields", None) or {})
    return {**dict(zip(names, args, strict=False)), **kwargs}


def call_identity(tool: Any, name: str) -> tuple[str, dict[str, Any]]:
    """The tool name rules see for a call of ``tool`` (which crewai calls ``name``), and what
    the call adds to the context.

    crewai names the tools of an agent's own MCP servers (``Agent(mcps=[...])``:
    ``MCPNativeTool``, ``MCPToolWrapper`` for a URL) f"{server}_{tool}", sanitized and, past
    64 characters, cut short with a hash, e.g. ``work_venv_bin_python_tmp_server_p_e3b75b00``.
    Rules see the MCP tool's own name instead; the context keeps crewai's name for the server
    (``mcp_server``: its command and arguments joined by "_", or its URL's host and path) and
    the name the agent called (``crewai_tool``). Any other tool keeps ``name``: a tool from
    ``crewai_tools.MCPServerAdapter`` is named by crewai_tools itself, with the MCP name
    sanitized (``read_file`` stays, ``readFile`` becomes ``read_file``) and no trace of the
    server."""
    owner = getattr(tool, "_original_tool", None) or tool
    original = getattr(owner, "original_tool_name", None)
    server = getattr(owner, "server_name", None)
    if isinstance(original, str) and original and isinstance(server, str):
        return original, {"mcp_server": server, "crewai_tool": _sanitized(str(owner.name))}
    return name, {}


def _sanitized(name: str) -> str:
    """The name crewai gives the model for a tool named ``name``."""
    try:
        from crewai.utilities.string_utils import sanitize_tool_name
    except ImportError:  # a crewai that does not sanitize names
        return name
    return sanitize_tool_name(name)


def _run_with(outcome: Outcome, arguments: dict[str, Any]) -> dict[str, Any]:
    if outcome.result.action == "modify" and outcome.tool_input is not None:
        return dict(outcome.tool_input)
    return arguments


class _DecidedCalls:
    """Decisions the crew hooks made, for the guarded tool to use instead of deciding again.
    Keyed by the tool copy and the exact input it will run with (what crewai passes on)."""

    def __init__(self, limit: int = 1024) -> None:
        self._items: dict[tuple[int, str], GuardResult] = {}
        self._lock = threading.Lock()
        self._limit = limit

    @staticmethod
    def _key(tool: Any, tool_input: dict[str, Any]) -> tuple[int, str]:
        owner = getattr(tool, "_original_tool", None) or tool
        return id(owner), json.dumps(tool_input, sort_keys=True, default=str)

    def put(self, tool: Any, tool_input: dict[str, Any], result: GuardResult) -> None:
        with self._lock:
            if len(self._items) >= self._limit:  # calls that never reached their tool
                self._items.clear()
            self._items[self._key(tool, tool_input)] = result

    def pop(self, tool: Any, tool_input: dict[str, Any]) -> GuardResult | None:
        with self._lock:
            return self._items.pop(self._key(tool, tool_input), None)


decided_calls = _DecidedCalls()


def guard_of(tool: Any) -> ToolGuard | None:
    """The guard of a copy ``guard_tools`` made (or of the structured tool crewai built from
    one); None for any other tool."""
    owner = getattr(tool, "_original_tool", None) or tool
    return owner.staso_guard if isinstance(owner, _Guarded) else None


_inside: ContextVar[Any] = ContextVar("staso_crewai_inside", default=None)


class _Guarded:
    """Mixed in before the tool's own class. crewai runs a tool through ``_run`` (or
    ``_arun``); ``run``/``arun`` are what code calls directly, and crewai's ``Tool.run`` skips
    ``_run``. Each asks staso once: an inner call made while one is running goes straight
    through."""

    staso_guard: ToolGuard

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any], GuardResult | None]:
        tool: Any = self
        arguments = _named(tool, args, kwargs)
        tool_input = validated_input(tool.args_schema, arguments)
        return arguments, tool_input, decided_calls.pop(self, tool_input)

    def _identity(self) -> tuple[str, dict[str, Any]]:
        name, context = call_identity(self, getattr(self, "name", ""))
        return name, {**crewai_context(), **context}

    def _guarded(self, call: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        if _inside.get() is self:
            return call(*args, **kwargs)
        arguments, tool_input, prior = self._prepare(args, kwargs)
        guard, (name, context) = self.staso_guard, self._identity()
        outcome = guard.outcome(prior, tool_input) if prior else \
            guard.check(name, tool_input, context)
        if not outcome.run:
            return outcome.message
        token = _inside.set(self)
        try:
            with guard.execution(outcome.result) as run:
                run.output = call(**_run_with(outcome, arguments))
        finally:
            _inside.reset(token)
        return run.output

    async def _aguarded(self, call: Callable[..., Any], args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        if _inside.get() is self:
            return await call(*args, **kwargs)
        arguments, tool_input, prior = self._prepare(args, kwargs)
        guard, (name, context) = self.staso_guard, self._identity()
        outcome = guard.outcome(prior, tool_input) if prior else \
            await guard.acheck(name, tool_input, context)
        if not outcome.run:
            return outcome.message
        token = _inside.set(self)
        try:
            with guard.execution(outcome.result) as run:
                run.output = await call(**_run_with(outcome, arguments))
        finally:
            _inside.reset(token)
        return run.output

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().run, args, kwargs)  # type: ignore[misc]

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super()._run, args, kwargs)  # type: ignore[misc]

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        return await self._aguarded(super().arun, args, kwargs)  # type: ignore[misc]

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        return await self._aguarded(super()._arun, args, kwargs)  # type: ignore[misc]


def guard_tools(tools: Iterable[BaseTool], **options: Unpack[GuardKwargs]) -> list[BaseTool]:
    """Guarded copies of ``tools`` (the originals are untouched), of the same classes, with
    the same names and schemas. ``options``: the guard options (``staso.GuardOptions``) and
    ``on_block``, ``on_escalate``, ``context``, ``client``."""
    guard = ToolGuard.of(**options)
    guarded = []
    for tool in tools:
        if not isinstance(tool, BaseTool):
            raise TypeError(f"guard_tools takes crewai tools (BaseTool, @tool), not "
                            f"{type(tool).__name__}")
        guarded.append(guarded_copy(tool, _Guarded, guard))
    return guarded
