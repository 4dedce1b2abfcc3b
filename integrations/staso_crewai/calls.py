"""What crewai tells us about one tool call: the crew, agent and task it belongs to."""

from __future__ import annotations

from typing import Any


def crewai_context(agent: Any = None, task: Any = None, crew: Any = None) -> dict[str, Any]:
    """Crew name, agent role and task of a call, for rules and the dashboard."""
    context: dict[str, Any] = {"framework": "crewai"}
    if crew is not None and getattr(crew, "name", None):
        context["crew"] = str(crew.name)
    if agent is not None and getattr(agent, "role", None):
        context["agent_role"] = str(agent.role)
    if task is not None:
        name = getattr(task, "name", None) or getattr(task, "description", None)
        if name:
            context["task"] = str(name)[:200]
    return context
