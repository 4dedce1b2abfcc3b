"""The dashboard in a real browser: Debian chromium driven by Playwright against a real
`staso serve`. Set STASO_SAVE_SCREENSHOTS=1 to refresh docs/images/."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import staso as st
from servers import Server

sync_api = pytest.importorskip("playwright.sync_api")
IMAGES = Path(__file__).parent.parent / "docs" / "images"
@pytest.fixture(scope="module")
def dash_server(sqlite_server: Server) -> Server:
    return sqlite_server


@pytest.fixture
def page(browser: Any, dash_server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def login(page: Any, server: Server, role: str = "approver") -> None:
    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    page.fill("#api-key", server.keys[role])
    page.click("button[type=submit]")
    page.wait_for_load_state()


def escalate(server: Server, tool_input: dict[str, Any], tool: str = "process_refund",
             wait: bool = False) -> dict[str, Any]:
    r = server.request("POST", "/v1/guard", json={
        "tool_name": tool, "tool_input": tool_input, "wait": wait,
        "context": {"thread_id": "t-1"}})
    assert r.status_code == 200 and r.json()["action"] == "escalate", r.text
    body: dict[str, Any] = r.json()
    return body


def card(page: Any, escalation_id: str) -> Any:
    return page.locator(f'.card[data-id="{escalation_id}"]')


def test_login_needs_an_approver_key(page: Any, dash_server: Server) -> None:
    login(page, dash_server, role="agent")
    assert page.url.endswith("/login?error=agent")
    assert "cannot answer escalations" in page.text_content("#login-error")
    page.goto(dash_server.url + "/login?error=Send+your+key+to+evil.example")
    assert page.text_content("#login-error").strip() == ""  # links cannot write on the page
    page.fill("#api-key", "staso_approver_made_up")
    page.click("button[type=submit]")
    assert "Unknown or revoked key" in page.text_content("#login-error")
    login(page, dash_server)
    assert page.url == dash_server.url + "/"
    cookie = next(c for c in page.context.cookies() if c["name"] == "staso_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_pending_escalation_appears_without_reload_and_approve_with_edit(
        page: Any, dash_server: Server) -> None:
    login(page, dash_server)
    page.evaluate("window.__same_page = 1")
    st.init(api_key=dash_server.keys["agent"], base_url=dash_server.url,
            agent_name="refund-agent")
    try:
        first = st.guard("process_refund", {"customer": "c_77", "amount": 8000})
        box = card(page, first.escalation_id)
        box.wait_for()  # arrives through the page's own refresh, no reload
        assert page.evaluate("window.__same_page") == 1
        assert "process_refund" in box.text_content()
        assert "high_value_payment" in box.text_content() and "refund-agent" in box.text_content()
        results: list[Any] = []
        waiter = threading.Thread(target=lambda: results.append(st.guard(
            "process_refund", {"customer": "c_77", "amount": 8000}, wait_for_escalation=True,
            escalation_timeout=30)))
        waiter.start()
        time.sleep(0.3)
        box.locator("details.edit summary").click()  # the edit box is collapsed
        box.locator("textarea[name=modified_input]").fill('{"customer": "c_77", "amount": 900}')
        box.locator("button.approve-edit").click()
        box.wait_for(state="detached")
        waiter.join(10)
    finally:
        st.shutdown()
    assert results and results[0].action == "modify"
    assert results[0].modified_input == {"customer": "c_77", "amount": 900}
    row = page.locator(f'#history tr[data-id="{first.escalation_id}"]')
    row.wait_for()
    assert "approved (edited)" in row.text_content() and "alice" in row.text_content()
    assert row.locator("td.ttr").text_content().endswith(" s")


def test_deny_with_a_comment_and_history(page: Any, dash_server: Server) -> None:
    esc = escalate(dash_server, {"customer": "c_78", "amount": 9100})
    login(page, dash_server)
    box = card(page, esc["escalation_id"])
    box.locator("input[name=comment]").fill("customer already refunded")
    box.locator("button.deny").click()
    box.wait_for(state="detached")
    stored = dash_server.request("GET", f"/v1/escalations/{esc['escalation_id']}").json()
    assert stored["status"] == "denied" and stored["comment"] == "customer already refunded"
    assert stored["resolved_by"] == "alice" and stored["time_to_resolution"] > 0
    row = page.locator(f'#history tr[data-id="{esc["escalation_id"]}"]')
    row.wait_for()
    assert "customer already refunded" in row.text_content()
    page.select_option("#filter-status", "denied")
    page.wait_for_function("() => [...document.querySelectorAll('#history td:nth-child(5)')]"
                           ".every(td => td.textContent === 'denied')")


def test_attacker_text_renders_as_text(page: Any, dash_server: Server) -> None:
    evil = {"note": "<script>window.__xss = 1</script>",
            "to": '"><img src=x onerror="window.__xss = 2">',
            "amount": 9200}
    esc = escalate(dash_server, evil, tool="process_refund")
    login(page, dash_server)
    box = card(page, esc["escalation_id"])
    box.wait_for()
    text = box.locator("pre.input").text_content()
    assert "<script>window.__xss = 1</script>" in text
    assert 'onerror=\\"window.__xss = 2\\"' in text
    assert box.locator("img").count() == 0 and box.locator("script").count() == 0
    time.sleep(0.5)
    assert page.evaluate("typeof window.__xss") == "undefined"
    csp = page.request.get(dash_server.url + "/").headers["content-security-policy"]
    assert "script-src 'self'" in csp


def test_form_posts_without_the_csrf_token_are_refused(page: Any, dash_server: Server) -> None:
    esc = escalate(dash_server, {"customer": "c_79", "amount": 9300})
    login(page, dash_server)  # the browser holds a valid session cookie
    url = f"{dash_server.url}/dashboard/escalations/{esc['escalation_id']}/approve"
    no_token = page.request.post(url, form={"comment": "sneaky"})
    wrong = page.request.post(url, form={"csrf_token": "0" * 40})
    assert no_token.status == 403 and wrong.status == 403
    assert "CSRF" in no_token.json()["detail"]
    no_login_token = page.request.post(dash_server.url + "/login",
                                       form={"api_key": dash_server.keys["approver"]})
    assert no_login_token.status == 403
    assert dash_server.request("GET", f"/v1/escalations/{esc['escalation_id']}"
                               ).json()["status"] == "pending"
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    ok = page.request.post(url, form={"csrf_token": token},
                           headers={"Accept": "application/json"})
    assert ok.status == 200 and ok.json()["escalation"]["status"] == "approved"


def test_screenshots_of_pending_and_history(page: Any, dash_server: Server,
                                            tmp_path: Path) -> None:
    out = IMAGES if os.environ.get("STASO_SAVE_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for amount, verb, body in ((2500, "approve", {"modified_input": {"amount": 2000}}),
                               (7300, "deny", {"comment": "duplicate request"})):
        done = escalate(dash_server, {"customer": "c_81", "amount": amount})
        dash_server.request("POST", f"/v1/escalations/{done['escalation_id']}/{verb}",
                            role="approver", json=body)
    wire = escalate(dash_server, {"amount": 50000, "destination": "external-bank"},
                    tool="wire_transfer")
    escalate(dash_server, {"customer": "c_80", "amount": 5000})
    login(page, dash_server)
    card(page, wire["escalation_id"]).wait_for()
    page.screenshot(path=str(out / "dashboard-pending.png"), full_page=False)
    page.locator("#history").scroll_into_view_if_needed()
    page.locator("#history tbody tr").first.wait_for()
    page.locator("#history").screenshot(path=str(out / "dashboard-history.png"))
    page.goto(dash_server.url + "/overview")
    page.locator("#resolution svg rect").first.wait_for()
    page.screenshot(path=str(out / "dashboard-overview.png"), full_page=True)
    page.goto(dash_server.url + "/decisions")
    first = page.locator("details.decision").first
    first.locator("summary").click()  # one decision opened: its rules, input and escalation
    first.locator(".detail pre").first.wait_for()
    page.screenshot(path=str(out / "dashboard-decisions.png"))
    phone = page.context.browser.new_context(viewport={"width": 390, "height": 844})
    try:
        small = phone.new_page()
        login(small, dash_server)
        card(small, wire["escalation_id"]).wait_for()
        small.screenshot(path=str(out / "dashboard-phone.png"))
        small.goto(dash_server.url + "/overview")
        small.locator("#resolution svg rect").first.wait_for()
        small.screenshot(path=str(out / "dashboard-overview-phone.png"))
    finally:
        phone.close()
    for name in ("pending", "history", "overview", "decisions", "phone", "overview-phone"):
        assert (out / f"dashboard-{name}.png").stat().st_size > 10_000, name


def test_every_attacker_controlled_field_renders_as_text(page: Any, dash_server: Server
                                                         ) -> None:
    payload = '<img src=x onerror="window.__xss=1"><svg onload="window.__xss=2">'
    r = dash_server.request("POST", "/v1/guard", json={
        "tool_name": "process_refund", "agent_name": "bot" + payload,
        "tool_input": {"amount": 9400, payload: "javascript:window.__xss=3"},
        "context": {"thread_id": payload}})
    assert r.status_code == 200 and r.json()["action"] == "escalate", r.text
    login(page, dash_server)
    box = card(page, r.json()["escalation_id"])
    box.wait_for()
    assert payload in box.text_content()  # shown, as text
    time.sleep(0.5)
    assert page.locator("img[src=x], svg[onload]").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_a_cross_origin_page_cannot_approve(page: Any, dash_server: Server, tmp_path: Path
                                            ) -> None:
    """The approver is logged in and visits an attacker's page on the same host (so
    SameSite does not help): its auto-submitted form and its fetch carry the session cookie
    but not the CSRF token, and it cannot read the token from the dashboard."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    esc = escalate(dash_server, {"customer": "c_csrf", "amount": 9500})
    target = f"{dash_server.url}/dashboard/escalations/{esc['escalation_id']}/approve"
    (tmp_path / "evil.html").write_text(f"""<!doctype html><html><body>
<form id=f method=post action="{target}" target=sink>
  <input name=comment value=pwned><input name=csrf_token value=guess></form>
<iframe name=sink></iframe>
<script>
  window.results = [];
  fetch("{target}", {{method: "POST", credentials: "include", mode: "no-cors",
        body: new URLSearchParams({{comment: "pwned"}})}}).then(() => results.push("sent"));
  fetch("{dash_server.url}/dashboard/data", {{credentials: "include"}})
    .then(r => r.text()).then(t => results.push("read:" + t.length),
                              e => results.push("blocked"));
  fetch("{dash_server.url}/", {{credentials: "include"}})
    .then(r => r.text()).then(t => results.push("read-token"), e => results.push("blocked"));
  document.getElementById("f").submit();
</script></body></html>""")
    handler = lambda *a: SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    evil = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        login(page, dash_server)
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/evil.html")
        page.wait_for_function("window.results.length >= 3")
        time.sleep(0.5)
        assert sorted(page.evaluate("window.results")) == ["blocked", "blocked", "sent"]
    finally:
        evil.shutdown()
    assert dash_server.request("GET", f"/v1/escalations/{esc['escalation_id']}"
                               ).json()["status"] == "pending"


def test_secrets_in_a_tool_input_are_masked_on_the_dashboard(page: Any, dash_server: Server
                                                              ) -> None:
    secret = "hunter2-dash-77"
    esc = escalate(dash_server, {"customer": "c_mask", "amount": 9600, "password": secret,
                                 "auth": {"api_key": secret}})
    login(page, dash_server)
    box = card(page, esc["escalation_id"])
    box.wait_for()
    shown = box.locator("pre.input").text_content()
    assert "[MASKED]" in shown and "c_mask" in shown
    assert secret not in page.content()


def test_text_a_page_cannot_show_appears_escaped(page: Any, dash_server: Server) -> None:
    """NUL and a file name that was not UTF-8 (a lone surrogate) are stored exactly and
    shown as their \\u escapes, never dropped and never breaking the page."""
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    body = json.dumps({"tool_name": "process_refund", "agent_name": "bot\x00two",
                       "tool_input": {"amount": 9400, "file": name, "note": "a\x00b"}})
    r = dash_server.request("POST", "/v1/guard", content=body,
                            headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["action"] == "escalate", r.text
    login(page, dash_server)
    box = card(page, r.json()["escalation_id"])
    box.wait_for()
    assert "agent: bot\\u0000two" in box.text_content()
    shown = box.locator("pre.input").text_content()
    assert '"file": "caf\\udce9.txt"' in shown and '"note": "a\\u0000b"' in shown


def test_a_link_from_slack_or_e_mail_opens_on_its_escalation_after_login(
        page: Any, dash_server: Server) -> None:
    """The dashboard link a channel posts (/?escalation=…) survives the login and
    points at the escalation; anything but an escalation id is dropped on the way."""
    first = escalate(dash_server, {"amount": 4100, "order": "link-1"})
    wanted = escalate(dash_server, {"amount": 4200, "order": "link-2"})
    page.goto(f"{dash_server.url}/?escalation={wanted['escalation_id']}")
    assert "/login?escalation=" in page.url
    page.fill("#api-key", dash_server.keys["approver"])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith(f"/?escalation={wanted['escalation_id']}")
    page.wait_for_selector(".card.focused")
    assert page.get_attribute(".card.focused", "data-id") == wanted["escalation_id"]
    assert page.locator(f'.card[data-id="{first["escalation_id"]}"].focused').count() == 0
    for bad in ("https://evil.example", "esc_1%22%3E%3Cscript%3E", "/../admin"):
        page.context.clear_cookies()
        page.goto(f"{dash_server.url}/?escalation={bad}")
        assert page.url.endswith("/login")
