"""``guard_tools(tools)``: guarded copies of any LangChain tools, for LangGraph's ``ToolNode``,
``create_agent`` without middleware, or a loop of your own. Same table as the middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool

from staso.adapters import GuardKwargs, Outcome, ToolGuard, guarded_copy

from .calls import (
    already_guarded,
    guard_input,
    guarding,
    langchain_context,
    record_output,
    tool_args,
    tool_message,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    pass


class _Call:
    """One call of a guarded tool: what the guard sees, and how to answer or run it."""

    def __init__(self, tool: BaseTool, tool_input: str | dict[str, Any],
                 kwargs: dict[str, Any]) -> None:
        self.tool, self.raw = tool, tool_input
        self.tool_call_id: str | None = kwargs.get("tool_call_id")
        self.config = kwargs.get("config") or {"callbacks": kwargs.get("callbacks"),
                                                "metadata": kwargs.get("metadata")}
        self.args = _as_args(tool, tool_input)
        self.visible = guard_input(tool, self.args)

    @property
    def skip(self) -> bool:
        return already_guarded(self.tool.name, self.tool_call_id)

    def context(self) -> dict[str, Any]:
        return langchain_context(self.config, tool_call_id=self.tool_call_id)

    def refusal(self, outcome: Outcome) -> ToolMessage | str:
        """Like the tool's own output: a ToolMessage when called with a tool call, else text."""
        if self.tool_call_id:
            return tool_message(outcome, self.tool.name, self.tool_call_id)
        return outcome.message or ""

    def tool_input(self, outcome: Outcome) -> str | dict[str, Any]:
        if outcome.result.action != "modify":
            return self.raw
        return tool_args(self.args, outcome, self.visible)


def _as_args(tool: BaseTool, tool_input: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(tool_input, dict):
        return tool_input
    fields = list(tool.tool_call_schema.model_fields) if hasattr(
        tool.tool_call_schema, "model_fields") else []
    return {fields[0] if len(fields) == 1 else "input": tool_input}


class _Guarded:
    """Mixed in before the tool's own class: ``run``/``arun`` (which ``invoke``/``ainvoke``
    call) ask staso first, then run the tool's own code with the decided input."""

    staso_guard: ToolGuard

    def run(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        tool: Any = self
        call = _Call(tool, tool_input, kwargs)
        if call.skip:
            return super().run(tool_input, *args, **kwargs)  # type: ignore[misc]
        outcome = self.staso_guard.check(tool.name, call.visible, call.context())
        if not outcome.run:
            return call.refusal(outcome)
        with guarding(tool.name, call.tool_call_id), \
                self.staso_guard.execution(outcome.result) as run:
            output = super().run(call.tool_input(outcome), *args,  # type: ignore[misc]
                                 **kwargs)
            record_output(run, output)
        return output

    async def arun(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        tool: Any = self
        call = _Call(tool, tool_input, kwargs)
        if call.skip:
            return await super().arun(tool_input, *args, **kwargs)  # type: ignore[misc]
        outcome = await self.staso_guard.acheck(tool.name, call.visible, call.context())
        if not outcome.run:
            return call.refusal(outcome)
        with guarding(tool.name, call.tool_call_id), \
                self.staso_guard.execution(outcome.result) as run:
            output = await super().arun(  # type: ignore[misc]
                call.tool_input(outcome), *args, **kwargs)
            record_output(run, output)
        return output


def guard_tools(tools: Iterable[BaseTool | Callable[..., Any]],
                **options: Unpack[GuardKwargs]) -> list[BaseTool]:
    """Guarded copies of ``tools`` (the originals are untouched), of the same classes, with
    the same names, schemas and injected arguments. A plain function becomes a tool first."""
    guard = ToolGuard.of(**options)
    guarded = []
    for item in tools:
        if isinstance(item, BaseTool):
            tool = item
        elif callable(item):
            tool = as_tool(item)
        else:
            raise TypeError(f"guard_tools takes LangChain tools or functions, not "
                            f"{type(item).__name__} (a provider's built-in tool runs on the "
                            "provider's side and cannot be guarded here)")
        guarded.append(guarded_copy(tool, _Guarded, guard))
    return guarded
