"""The server's own routes (the API and the dashboard), mounted through
``staso_http_routes`` like any plugin's. ``tryfirst``: they are mounted before any
plugin's, so a plugin route can never take one of their paths."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter


@hookimpl(tryfirst=True)
def staso_http_routes() -> list[APIRouter]:
    from ..server import api, dashboard, operator_api  # only a server calls this hook

    return [api.router, operator_api.router, dashboard.router, operator_api.dashboard_router]
