"""Two engines on one policy, the second with a shortcut of its plan turned off: a test
compares their decisions to show the shortcut changes none (the packs' gates, conditions
decided without CEL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from staso.plugins import make_plugin_manager
from staso.policy import Engine
from staso.policy.discovery import collect_functions, load_any_policy


def with_and_without(policy_text: str, tool: str,
                     without: Callable[[Any], Any]) -> tuple[Engine, Engine, Any]:
    """The engine, the one whose plan for ``tool`` is ``without(plan)``, and the plan."""
    pm = make_plugin_manager(())
    policy = load_any_policy(policy_text, pm)
    engine, other = Engine(policy, collect_functions(pm)), Engine(policy, collect_functions(pm))
    plan = engine._plan_for(tool)
    other._by_tool[tool] = without(plan)
    return engine, other, plan
