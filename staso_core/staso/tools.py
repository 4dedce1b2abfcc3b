"""``@st.tool``: record every call of a function, and optionally guard it first."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .adapters import CallKwargs, Execution, ToolGuard
from .outcome import Outcome

if TYPE_CHECKING:
    from typing_extensions import Unpack

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


def tool(name: str | Callable[..., Any] | None = None, *, guard: bool = False,
         **options: Unpack[CallKwargs]) -> Any:
    """Record every call of the function in the decision log; with ``guard=True`` guard its
    bound arguments first: allow runs, modify runs with the modified input, block raises
    ``GuardBlocked``, escalate raises ``EscalationPending`` (or waits). ``options``: the
    guard options (``GuardOptions``), ``context`` and ``client``."""
    if callable(name):  # used bare: @st.tool
        return tool()(name)

    def decorate(func: F) -> F:
        tool_name = name or func.__name__
        sig = inspect.signature(func)
        guarding = ToolGuard.of(**options, on_block="raise", on_escalate="raise")

        def arguments(outcome: Outcome | None, bound: inspect.BoundArguments,
                      args: tuple[Any, ...], kwargs: dict[str, Any]
                      ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            if outcome is not None and outcome.result.action == "modify" \
                    and outcome.tool_input is not None:
                return _rebind(sig, bound, outcome.tool_input)
            return args, kwargs

        def execution(outcome: Outcome | None, tool_input: dict[str, Any]) -> Execution:
            return guarding.execution(outcome.result if outcome else None,
                                      tool_name=tool_name, tool_input=tool_input)

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                bound, tool_input = _bound_input(sig, args, kwargs)
                outcome = await guarding.acheck(tool_name, tool_input) if guard else None
                call_args, call_kwargs = arguments(outcome, bound, args, kwargs)
                with execution(outcome, tool_input) as run:
                    run.output = await func(*call_args, **call_kwargs)
                return run.output

            wrapper: Any = async_wrapper
        else:
            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                bound, tool_input = _bound_input(sig, args, kwargs)
                outcome = guarding.check(tool_name, tool_input) if guard else None
                call_args, call_kwargs = arguments(outcome, bound, args, kwargs)
                with execution(outcome, tool_input) as run:
                    run.output = func(*call_args, **call_kwargs)
                return run.output

            wrapper = sync_wrapper
        wrapper.staso_tool_name = tool_name
        return wrapper

    return decorate
