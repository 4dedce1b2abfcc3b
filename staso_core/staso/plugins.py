"""The plugin manager: built-ins first, then the ``staso`` entry-point group, then
plugins passed to ``st.init``."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs

log = logging.getLogger("staso")

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
        except Exception as exc:  # a broken third-party plugin must not take the guard down
            log.error("staso: could not load a plugin from the 'staso' entry points: %s", exc)
            raise
    for plugin in extra:
        if isinstance(plugin, str):
            plugin = importlib.import_module(plugin)
        if not pm.is_registered(plugin):
            pm.register(plugin)
    return pm
