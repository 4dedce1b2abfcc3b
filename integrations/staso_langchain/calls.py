"""What LangChain's three entry points share about one tool call: its framework context, the
input the guard sees, and the mark that keeps a call from being guarded twice."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from staso.adapters import Execution, Outcome, requested_by_in, validated_input

try:  # LangGraph knows the run id given to the graph invocation
    from langgraph.runtime import get_runtime
except ImportError:  # pragma: no cover - langchain-core without langgraph
    get_runtime = None  # type: ignore[assignment]

_guarded: ContextVar[tuple[str, str | None] | None] = ContextVar("staso_lc_guarded",
                                                                  default=None)


@contextmanager
def guarding(tool_name: str, tool_call_id: str | None) -> Iterator[None]:
    """Mark the call as guarded while it runs, so an inner staso layer lets it through."""
    token = _guarded.set((tool_name, tool_call_id))
    try:
        yield
    finally:
        _guarded.reset(token)


def already_guarded(tool_name: str, tool_call_id: str | None) -> bool:
    return _guarded.get() == (tool_name, tool_call_id)


def _runtime() -> Any:
    """The runtime of the LangGraph invocation we are inside, if any."""
    if get_runtime is None:
        return None
    try:
        return get_runtime()
    except Exception:  # not inside a graph run
        return None


def _invocation_run_id(runtime: Any) -> Any:
    """The ``run_id`` given to the LangGraph invocation we are inside, if any."""
    return getattr(getattr(runtime, "execution_info", None), "run_id", None)


def _parent_run_id(config: Mapping[str, Any]) -> Any:
    return getattr(config.get("callbacks"), "parent_run_id", None)


def langchain_context(config: Mapping[str, Any] | None, *, tool_call_id: str | None = None,
                      parent_run_id: Any = None) -> dict[str, Any]:
    """Agent name, thread id, run id and tool call id of a call, for rules and the dashboard,
    and who asked for the run when its config says (``requested_by``).

    ``run_id`` is the one given to the graph invocation (``config={"run_id": ...}``) when
    there is one, else the LangChain run that called the tool. ``requested_by`` is read from
    the invocation's runtime context (``invoke(..., context={...})``, a dict or an object
    of the agent's ``context_schema``), else ``configurable``, else ``metadata``.
    """
    context: dict[str, Any] = {"framework": "langchain"}
    config = config or {}
    metadata = config.get("metadata") or {}
    configurable = config.get("configurable") or {}
    if agent := metadata.get("lc_agent_name"):
        context["agent_name"] = str(agent)
    if thread := configurable.get("thread_id") or metadata.get("thread_id"):
        context["thread_id"] = str(thread)
    runtime = _runtime()
    run = _invocation_run_id(runtime) or parent_run_id or _parent_run_id(config)
    if run is not None:
        context["run_id"] = str(run)
    if tool_call_id:
        context["tool_call_id"] = str(tool_call_id)
    context.update(requested_by_in(getattr(runtime, "context", None), configurable, metadata))
    return context


def guard_input(tool: BaseTool | None, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the tool will read them (``validated_input``), without the injected
    ones (state, runtime, store), which ToolNode adds and the tool's call schema leaves out.

    A JSON-schema tool (``args_schema`` a dict, as langchain-mcp-adapters makes for each MCP
    tool) validates nothing and passes on every argument it gets, so the guard sees them all
    (as ``staso mcp proxy`` does), declared or not, except the injected ones."""
    schema = tool.tool_call_schema if tool is not None else None
    if isinstance(schema, dict):
        injected = getattr(tool, "_injected_args_keys", None)  # langchain-core's own finding
        if isinstance(injected, (set, frozenset)):
            return {k: v for k, v in args.items() if k not in injected}
        declared = schema.get("properties")  # an older langchain-core: the declared ones
        return {k: v for k, v in args.items() if not isinstance(declared, dict) or k in declared}
    return validated_input(schema, args)


def tool_args(original: Mapping[str, Any], outcome: Outcome,
              visible: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments to run the tool with: the original ones unless the guard rewrote them,
    keeping the injected ones the guard never saw."""
    if outcome.result.action != "modify" or outcome.tool_input is None:
        return dict(original)
    hidden = {k: v for k, v in original.items() if k not in visible}
    return {**hidden, **outcome.tool_input}


class ToolError(Exception):
    """A tool's error that the tool itself answered the model with (its ``handle_tool_error``
    made it a ToolMessage with status "error", as an MCP tool does with the server's isError
    result): the run is recorded as an error."""


def record_output(run: Execution, output: Any) -> None:
    """Note what the tool answered on ``run``: its text, and for a ToolMessage with status
    "error" that it failed."""
    run.output = output_text(output)
    if isinstance(output, ToolMessage) and output.status == "error":
        run.error = ToolError(run.output)


def output_text(output: Any) -> Any:
    """What a tool answered, for the decision log: the content of its ToolMessage, and the
    text of content blocks (MCP tools answer with a list of them)."""
    content = output.content if isinstance(output, ToolMessage) else output
    if not isinstance(content, list):
        return content
    texts = [str(b.get("text", "")) for b in content
             if isinstance(b, dict) and b.get("type") == "text"]
    return "\n".join(texts) if content and len(texts) == len(content) else content


def tool_message(outcome: Outcome, tool_name: str, tool_call_id: str) -> ToolMessage:
    """What the model reads instead of the tool's output when the tool did not run."""
    result = outcome.result
    return ToolMessage(
        content=outcome.message or "", tool_call_id=tool_call_id, name=tool_name,
        status="error",
        artifact={"staso": {"action": result.action, "rule_name": result.rule_name,
                            "reason": result.reason, "decision_id": result.decision_id,
                            "escalation_id": result.escalation_id,
                            "escalation_status": result.escalation_status}})
