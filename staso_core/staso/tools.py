"""``@st.tool``: record every call of a function, and optionally guard it first."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .decision_log import truncate
from .errors import EscalationPending, GuardBlocked
from .models import GuardResult
from .outcome import decide_outcome

F = TypeVar("F", bound=Callable[..., Any])


def _bound_input(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[inspect.BoundArguments, dict[str, Any]]:
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    tool_input: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if name in ("self", "cls"):
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            tool_input.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            tool_input[name] = list(value)
        else:
            tool_input[name] = value
    return bound, tool_input


def _rebind(sig: inspect.Signature, bound: inspect.BoundArguments,
            new_input: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    arguments = dict(bound.arguments)
    extra = {}
    for name, value in new_input.items():
        param = sig.parameters.get(name)
        if param is None or param.kind is inspect.Parameter.VAR_KEYWORD:
            extra[name] = value
        else:
            arguments[name] = value
    var_kw = next((p.name for p in sig.parameters.values()
                   if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    if var_kw:
        arguments[var_kw] = extra
    rebound = inspect.BoundArguments(sig, arguments)
    return rebound.args, rebound.kwargs


def _fields(status: str, started: float, output: Any = None, error: BaseException | None = None
            ) -> dict[str, Any]:
    return {"execution_status": status, "execution_ms": (time.perf_counter() - started) * 1000,
            "execution_output": None if output is None else truncate(repr(output)),
            "execution_error": None if error is None else truncate(
                f"{type(error).__name__}: {error}")}


def tool(name: str | Callable[..., Any] | None = None, *, guard: bool = False,
         wait_for_escalation: bool = False, escalation_poll_interval: float = 3.0,
         escalation_timeout: float = 300.0, context: dict[str, Any] | None = None) -> Any:
    """Record every call of the function in the decision log; with ``guard=True`` guard its
    bound arguments first: allow runs, modify runs with the modified input, block raises
    ``GuardBlocked``, escalate raises ``EscalationPending`` (or waits)."""
    if callable(name):  # used bare: @st.tool
        return tool()(name)

    def decorate(func: F) -> F:
        from . import api

        tool_name = name or func.__name__
        sig = inspect.signature(func)
        options: dict[str, Any] = {
            "wait_for_escalation": wait_for_escalation, "context": context,
            "escalation_poll_interval": escalation_poll_interval,
            "escalation_timeout": escalation_timeout}

        def record(result: GuardResult | None, tool_input: dict[str, Any],
                   fields: dict[str, Any]) -> None:
            api.get_client().record_execution(
                decision_id=result.decision_id if result else None, tool_name=tool_name,
                tool_input=tool_input, fields=fields)

        def before(result: GuardResult | None, bound: inspect.BoundArguments,
                   tool_input: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            if result is None:
                return args, kwargs
            try:
                outcome = decide_outcome(result, tool_input, on_block="raise",
                                         on_escalate="raise")
            except (GuardBlocked, EscalationPending):
                record(result, tool_input, _fields("not_run", time.perf_counter()))
                raise
            if result.action == "modify" and outcome.tool_input is not None:
                return _rebind(sig, bound, outcome.tool_input)
            return args, kwargs

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                bound, tool_input = _bound_input(sig, args, kwargs)
                result = await api.aguard(tool_name, tool_input, **options) if guard else None
                call_args, call_kwargs = before(result, bound, tool_input, args, kwargs)
                started = time.perf_counter()
                try:
                    output = await func(*call_args, **call_kwargs)
                except BaseException as exc:
                    record(result, tool_input, _fields("error", started, error=exc))
                    raise
                record(result, tool_input, _fields("ok", started, output))
                return output

            wrapper: Any = async_wrapper
        else:
            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                bound, tool_input = _bound_input(sig, args, kwargs)
                result = api.guard(tool_name, tool_input, **options) if guard else None
                call_args, call_kwargs = before(result, bound, tool_input, args, kwargs)
                started = time.perf_counter()
                try:
                    output = func(*call_args, **call_kwargs)
                except BaseException as exc:
                    record(result, tool_input, _fields("error", started, error=exc))
                    raise
                record(result, tool_input, _fields("ok", started, output))
                return output

            wrapper = sync_wrapper
        wrapper.staso_tool_name = tool_name
        return wrapper

    return decorate
