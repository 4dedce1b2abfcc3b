"""The plugin manager: built-ins first, then the ``staso`` entry-point group, then
plugins passed to ``st.init``."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs
from .errors import StasoError

BUILTIN_PLUGINS = (
    "staso.builtins.rule_packs",
    "staso.builtins.cel_functions",
    "staso.builtins.notifiers",
)


def make_plugin_manager(extra: Iterable[Any] = (), *, entry_points: bool = True
                        ) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("staso")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints("staso")
        except Exception as exc:
            # refuse to start rather than guard without a plugin the deployment relies on
            raise StasoError(f"could not load a plugin from the 'staso' entry-point group "
                             f"({type(exc).__name__}: {exc}); fix or uninstall it") from exc
    for plugin in extra:
        if isinstance(plugin, str):
            plugin = importlib.import_module(plugin)
        if not pm.is_registered(plugin):
            pm.register(plugin)
    return pm


def runs_foreign_code(pm: pluggy.PluginManager) -> bool:
    """Whether evaluation calls code staso does not ship (a plugin's CEL functions,
    ``staso_before_guard`` or ``staso_evaluate``). Its cost is unknown, so such a call is
    never evaluated on a thread that must stay responsive."""
    hooks = pm.hook
    return any(impl.plugin_name not in BUILTIN_PLUGINS
               for hook in (hooks.staso_cel_functions, hooks.staso_before_guard,
                            hooks.staso_evaluate)
               for impl in hook.get_hookimpls())
