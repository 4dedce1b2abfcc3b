"""Integrations use core only through the public API (``staso``) and the adapter kit
(``staso.adapters``): core can change behind those two without breaking an adapter."""

from __future__ import annotations

import ast
from pathlib import Path

INTEGRATIONS = Path(__file__).resolve().parents[1] / "integrations"


def core_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "staso" or m.startswith("staso.")}


def test_integrations_import_only_the_public_api_and_the_adapter_kit() -> None:
    files = sorted(INTEGRATIONS.glob("staso_*/*.py"))
    assert len(files) >= 12  # three adapters, each a package of several modules
    used = {str(f.relative_to(INTEGRATIONS)): core_imports(f) for f in files}
    assert {f: m - {"staso", "staso.adapters"} for f, m in used.items()
            if m - {"staso", "staso.adapters"}} == {}


def test_every_adapter_entry_point_takes_the_shared_options() -> None:
    import inspect

    import staso_crewai
    import staso_langchain
    import staso_openai_agents

    entry_points = [staso_langchain.guard_tools, staso_langchain.StasoMiddleware,
                    staso_langchain.StasoCallbackHandler, staso_openai_agents.guard_tools,
                    staso_openai_agents.guard_agent, staso_openai_agents.staso_tool_guardrail,
                    staso_crewai.guard_tools, staso_crewai.guard_crew]
    for entry in entry_points:
        kinds = [p.kind for p in inspect.signature(entry).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD in kinds, entry  # **options: the one set


def test_the_options_are_checked_once_in_one_place(home: Path) -> None:
    import pytest

    import staso as st
    from staso.adapters import ToolGuard
    from staso.options import DEFAULT_OPTIONS

    assert ToolGuard.of().options is DEFAULT_OPTIONS  # no options: nothing built
    guard = ToolGuard.of(timeout=2.0, on_block="raise", context={"run": "r1"})
    assert (guard.options.timeout, guard.on_block, guard.context) == (2.0, "raise", {"run": "r1"})
    for bad in ({"timeout": 0}, {"escalation_timeout": -1}, {"escalation_poll_interval": 0}):
        with pytest.raises(ValueError, match="must be > 0"):
            ToolGuard.of(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="must be > 0"):
            st.guard("lookup", {"q": 1}, **bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown guard option 'bogus'; the options are"):
        st.guard("lookup", {"q": 1}, bogus=True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="on_block must be 'output' or 'raise'"):
        ToolGuard.of(on_block="ignore")  # type: ignore[typeddict-item]
