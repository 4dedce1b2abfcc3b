"""The plugin manager: built-ins first, then the ``staso`` entry-point group, then
plugins passed to ``st.init``."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import StasoError

if TYPE_CHECKING:
    from fastapi import APIRouter

BUILTIN_PLUGINS = (
    "staso.builtins.rule_packs",
    "staso.builtins.cel_functions",
    "staso.builtins.notifiers",
    "staso.builtins.server",
    "staso.builtins.channels",
)
_LINK_SCHEMES = ("/", "http://", "https://")


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
            pm.register(plugin, name=_readable_name(pm, plugin))
    return pm


def _readable_name(pm: pluggy.PluginManager, plugin: Any) -> str | None:
    """A plugin object's name in messages ("the plugin 'SlowPlugin' did not answer"): its
    class, where pluggy would use a number (its id)."""
    if hasattr(plugin, "__name__"):  # a module or a class: pluggy names it so already
        return None
    name = type(plugin).__qualname__
    return name if pm.get_plugin(name) is None else f"{name}-{id(plugin)}"


def runs_foreign_code(pm: pluggy.PluginManager) -> bool:
    """Whether evaluation calls code staso does not ship (a plugin's CEL functions,
    ``staso_before_guard`` or ``staso_evaluate``). Its cost is unknown, so such a call is
    never evaluated on a thread that must stay responsive."""
    hooks = pm.hook
    return any(impl.plugin_name not in BUILTIN_PLUGINS
               for hook in (hooks.staso_cel_functions, hooks.staso_before_guard,
                            hooks.staso_evaluate)
               for impl in hook.get_hookimpls())


def http_routes(pm: pluggy.PluginManager) -> list[APIRouter]:
    """The routers to mount, the server's own first (``tryfirst``), then plugins'."""
    from fastapi import APIRouter

    routers = [router for routers in pm.hook.staso_http_routes() for router in routers or ()]
    for router in routers:
        if not isinstance(router, APIRouter):
            raise StasoError(f"staso_http_routes must return FastAPI APIRouters, not "
                             f"{type(router).__name__}")
    return routers


def dashboard_links(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(label, href) pairs for the dashboard's header, checked once at startup: a link
    that could run script (``javascript:``) or is not a pair stops the server."""
    links = [link for found in pm.hook.staso_dashboard_links() for link in found or ()]
    for link in links:
        if not (isinstance(link, (tuple, list)) and len(link) == 2
                and all(isinstance(part, str) and part for part in link)
                and link[1].startswith(_LINK_SCHEMES)):
            raise StasoError(f"a dashboard link must be a (label, href) pair of text with an "
                             f"href starting with /, http:// or https://, not {link!r}")
    return [(label, href) for label, href in links]
