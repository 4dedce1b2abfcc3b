"""Plugins add HTTP routes and dashboard links (``staso_http_routes``,
``staso_dashboard_links``): an installed plugin's endpoint answers on a real
``staso serve``, and its links show on the dashboard page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import staso as st
from conftest import stop_server
from servers import PluginServer, Server
from staso.server import ServerConfig, create_app

# an approval channel in miniature, as the Slack channel will be: a POST endpoint that
# answers an escalation for a person who is not holding a staso key
PLUGIN = '''
import staso
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/v1/channels/echo")


@router.post("/interactions")
async def interactions(request: Request):
    form = dict(await request.form())
    state = request.app.state.staso
    esc = await state.resolve(form["escalation_id"], status="approved",
                              by="echo:" + form["user"])
    return JSONResponse({"ok": True, "status": esc.status, "by": esc.resolved_by})


@router.get("/setup")
async def setup():
    return JSONResponse({"channel": "echo"})


@staso.hookimpl
def staso_http_routes():
    return [router]


@staso.hookimpl
def staso_dashboard_links():
    return [("Echo setup", "/v1/channels/echo/setup"),
            ("Runbook <b>&", "https://example.com/runbook?a=1&b=2")]
'''


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = PluginServer.started(tmp_path_factory.mktemp("serve-echo"), "staso_echo", "echo",
                                  PLUGIN)
    yield server
    stop_server(server)


def test_a_plugin_route_answers_on_a_real_server(echo_server: Server) -> None:
    assert echo_server.request("GET", "/v1/channels/echo/setup", role=None).json() == \
        {"channel": "echo"}
    r = echo_server.request("POST", "/v1/guard", json={
        "tool_name": "process_refund", "tool_input": {"amount": 5000},
        "agent_name": "refund-bot", "decision_id": "dec_echo_1"}).json()
    assert r["action"] == "escalate"
    answer = echo_server.request("POST", "/v1/channels/echo/interactions", role=None,
                                 data={"escalation_id": r["escalation_id"], "user": "U42"})
    assert answer.json() == {"ok": True, "status": "approved", "by": "echo:U42"}
    stored = echo_server.request("GET", f"/v1/escalations/{r['escalation_id']}").json()
    assert (stored["status"], stored["resolved_by"]) == ("approved", "echo:U42")
    # answered through the server's one answer path: counted like a dashboard approval
    metrics = echo_server.request("GET", "/metrics", role=None).text
    assert 'staso_escalations_resolved_total{status="approved"} 1' in metrics
    # the server's own routes are still its own
    assert echo_server.request("GET", "/healthz", role=None).status_code == 200
    paths = echo_server.request("GET", "/openapi.json", role=None).json()["paths"]
    assert {"/v1/guard", "/v1/channels/echo/interactions"} <= set(paths)


def test_plugin_links_show_on_the_dashboard(echo_server: Server) -> None:
    with httpx.Client(base_url=echo_server.url, timeout=10) as browser:
        login = browser.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert csrf is not None
        browser.post("/login", data={"csrf_token": csrf.group(1),
                                     "api_key": echo_server.keys["approver"]})
        page = browser.get("/")
    assert page.status_code == 200 and 'id="pending"' in page.text
    nav = re.search(r'<nav class="links">(.*?)</nav>', page.text)
    assert nav is not None
    assert nav.group(1) == (
        '<a href="/v1/channels/echo/setup">Echo setup</a>'
        '<a href="https://example.com/runbook?a=1&amp;b=2">Runbook &lt;b&gt;&amp;</a>')


def test_builtin_routes_come_through_the_same_hook(tmp_path: Path) -> None:
    app = create_app(ServerConfig(database_url=f"sqlite:///{tmp_path / 's.db'}"))
    pm = app.state.staso.pm
    impls = [i.plugin_name for i in pm.hook.staso_http_routes.get_hookimpls()]
    assert sorted(impls) == ["staso.builtins.channels", "staso.builtins.server"]
    from staso.channels import email_routes, slack_routes
    from staso.server import api, dashboard, operator_api

    assert pm.hook.staso_http_routes() == [[api.router, operator_api.router, dashboard.router,
                                            operator_api.dashboard_router],
                                           [slack_routes.router, email_routes.router]]
    assert {"/v1/guard", "/v1/escalations/{escalation_id}", "/healthz",
            "/v1/channels/slack/interactions"} <= set(app.openapi()["paths"])
    assert app.state.staso.dashboard_links == []


def _plugin(routes: list | None = None, links: list | None = None) -> object:
    class Plugin:
        @st.hookimpl
        def staso_http_routes(self) -> list:
            return routes or []

        @st.hookimpl
        def staso_dashboard_links(self) -> list:
            return links or []
    return Plugin()


def test_a_route_that_takes_a_servers_path_stops_the_server(tmp_path: Path) -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.post("/v1/guard")
    async def guard() -> dict:
        return {"action": "allow"}

    with pytest.raises(st.StasoError, match=r"adds the route POST /v1/guard, which "
                                            r"staso\.server\.api already has"):
        create_app(ServerConfig(database_url=f"sqlite:///{tmp_path / 's.db'}",
                                plugins=(_plugin(routes=[router]),)))
    health = APIRouter()
    health.get("/healthz")(guard)
    with pytest.raises(st.StasoError, match=r"GET /healthz, which staso already has"):
        create_app(ServerConfig(database_url=f"sqlite:///{tmp_path / 's.db'}",
                                plugins=(_plugin(routes=[health]),)))


@pytest.mark.parametrize("link", [("Run", "javascript:alert(1)"), ("", "/x"), ("only",),
                                  "/x"])
def test_a_link_that_is_not_a_safe_pair_stops_the_server(tmp_path: Path, link: object
                                                         ) -> None:
    with pytest.raises(st.StasoError, match="a dashboard link must be"):
        create_app(ServerConfig(database_url=f"sqlite:///{tmp_path / 's.db'}",
                                plugins=(_plugin(links=[link]),)))


def test_routes_must_be_routers(tmp_path: Path) -> None:
    with pytest.raises(st.StasoError, match="must return FastAPI APIRouters, not tuple"):
        create_app(ServerConfig(database_url=f"sqlite:///{tmp_path / 's.db'}",
                                plugins=(_plugin(routes=[("/x", lambda: None)]),)))
