"""Where a policy's vocabulary comes from: rule packs and CEL functions contributed by
plugins (built-ins included), and the built-in default policy.

Kept beside the policy rather than in the decision service because the CLI, policy tests
and each server worker process load policies without a service.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

from ..errors import PolicyError
from .loader import load_policy, load_policy_text
from .model import Policy, RulePack

DEFAULT_POLICY = Path(__file__).parent / "default.yaml"


def collect_packs(pm: pluggy.PluginManager) -> dict[str, RulePack]:
    """Every rule pack the plugins offer, by the name a policy ``use:``s."""
    return {pack.name: pack for packs in pm.hook.staso_rule_packs() for pack in packs or ()}


def collect_functions(pm: pluggy.PluginManager,
                      wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]] | None = None
                      ) -> dict[str, Callable[..., Any]]:
    """Every CEL function the plugins offer, by name (where two offer one name, the one
    pluggy calls last wins). ``wrap(plugin_name, function)`` may stand in for each."""
    functions: dict[str, Callable[..., Any]] = {}
    for impl in reversed(pm.hook.staso_cel_functions.get_hookimpls()):  # pluggy's order
        offered: dict[str, Callable[..., Any]] = impl.function() or {}  # type: ignore[assignment]
        for name, function in offered.items():
            functions[name] = function if wrap is None else wrap(impl.plugin_name, function)
    return functions


def collect_channels(pm: pluggy.PluginManager) -> dict[str, Callable[[str], str]]:
    """Each approval channel's address check, by the scheme a rule's ``notify:`` names."""
    return {channel.scheme: channel.check_address
            for channels in pm.hook.staso_channels() for channel in channels or ()}


def load_policy_source(source: str, path: str, pm: pluggy.PluginManager) -> Policy:
    """YAML text (``path`` names it in errors) with the plugins' packs, functions and
    channels."""
    return load_policy_text(source, path, packs=collect_packs(pm),
                            functions=collect_functions(pm), channels=collect_channels(pm))


def load_any_policy(policy: Any, pm: pluggy.PluginManager, **kwargs: Any) -> Policy:
    """A Policy, a path to YAML, YAML text, or None (the built-in default)."""
    if isinstance(policy, Policy):
        return policy
    packs, functions = collect_packs(pm), collect_functions(pm)
    kwargs.setdefault("channels", collect_channels(pm))
    if policy is None:
        return load_policy(DEFAULT_POLICY, packs=packs, functions=functions, **kwargs)
    if isinstance(policy, Path) or (isinstance(policy, str) and "\n" not in policy
                                    and policy.strip().endswith((".yaml", ".yml"))):
        return load_policy(policy, packs=packs, functions=functions, **kwargs)
    if isinstance(policy, str):
        return load_policy_text(policy, packs=packs, functions=functions, **kwargs)
    raise PolicyError(f"policy must be a path, YAML text or a Policy, not {type(policy).__name__}")
