"""The operator's dashboard in a real browser (Debian chromium driven by Playwright) against
one real `staso serve` on SQLite: every page at 390 px wide without horizontal scrolling,
filters in the URL, the approver's answer (a comment on any answer, the edit behind "Edit
input" and its diff, expiry, errors on their card, the count in the tab title, history past
a page), the decision log, the overview's charts and the policy's versions with their diff.
Attacker text (tool names, inputs, agent names, reasons, policy source) shows as text.
The screenshots in docs/images/ come from tests/test_dashboard.py's calmer data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_policy, start_server, stop_server
from servers import Server
from test_dashboard import card, login

sync_api = pytest.importorskip("playwright.sync_api")
XSS = "<img src=x onerror=window.__xss=1>"
POLICY = f"""version: 1
rules:
  - name: big_money
    tools: ["*refund*", "*transfer*"]
    when: tool_input.amount > 1000
    action: escalate
    reason: 'Over 1000 needs a person {XSS}'
  - name: no_sql_writes
    tools: [run_sql]
    action: block
    reason: SQL writes are not for agents
  - name: cap_tips
    tools: [tip]
    action: modify
    modify: {{cap: {{amount: 10}}}}
"""
LONG_TOOL = "reconcile_ledger_and_wire_transfer_to_the_external_settlement_bank_account_now"
LONG_AGENT = "agent-" + "with-a-very-long-descriptive-name-" * 3
EVIL_TOOL = XSS + "_transfer"
PAGES = {"/": ".card", "/history": "#history tbody tr", "/decisions": "details.decision",
         "/overview": "#over-time svg rect", "/policy": "#diff span",
         "/grants": "#grants tbody tr"}


def guard(server: Server, tool: str, tool_input: dict[str, Any], agent: str = "refund-agent"
          ) -> dict[str, Any]:
    r = server.request("POST", "/v1/guard", json={"tool_name": tool, "tool_input": tool_input,
                                                  "agent_name": agent})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def answer(server: Server, escalation_id: str, verb: str, **body: Any) -> dict[str, Any]:
    r = server.request("POST", f"/v1/escalations/{escalation_id}/{verb}", role="approver",
                       json=body)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    """One server with every kind of data the pages show: long names and long JSON, attacker
    text, answered escalations, blocks, modifications, an execution outcome, a standing
    approval and two policy versions."""
    tmp = tmp_path_factory.mktemp("operator")
    server = start_server(tmp, "sqlite", policy=make_policy(tmp, POLICY))
    seeds: dict[str, Any] = {}
    seeds["long"] = guard(server, LONG_TOOL, {
        "amount": 5000, "memo": "x" * 300, "iban": "DE" + "1234567890" * 4,
        "nested": {"lines": [{"sku": "s" * 60, "qty": 1}] * 3}}, agent=LONG_AGENT)
    seeds["evil"] = guard(server, EVIL_TOOL, {"amount": 7000, "note": XSS},
                          agent="bot" + XSS)
    for amount in (2100, 2200, 2300, 2400):
        done = guard(server, "process_refund", {"customer": "c_hist", "amount": amount})
        answer(server, done["escalation_id"], "deny", comment="duplicate " + XSS)
    long_input = {"amount": 6000, "memo": "y" * 200, "iban": "FR" + "9876543210" * 4}
    edited = guard(server, LONG_TOOL, long_input, agent=LONG_AGENT)
    answer(server, edited["escalation_id"], "approve",
           modified_input={**long_input, "amount": 60, "memo": "z" * 200})
    granted = guard(server, LONG_TOOL, {"amount": 1500, "memo": "w" * 100}, agent=LONG_AGENT)
    answer(server, granted["escalation_id"], "approve",
           grant={"ttl": "1h", "when": "tool_input.amount <= 2000 && tool_input.memo != '"
                  + "v" * 120 + "'"})
    for order in ("o-1", "o-2", "o-3"):
        assert guard(server, "lookup_order", {"order": order})["action"] == "allow"
    seeds["blocked"] = guard(server, "run_sql", {"sql": "DELETE FROM users", "password": "pw-9"})
    seeds["tip"] = guard(server, "tip", {"amount": 50})
    r = server.request("POST", "/v1/executions", json={"records": [{
        "decision_id": seeds["tip"]["decision_id"], "execution_status": "error",
        "execution_error": "card declined " + XSS, "execution_ms": 12.5}]})
    assert r.status_code == 200, r.text
    r = server.request("PUT", "/v1/policy", role="admin", json={
        "source": POLICY.replace("amount > 1000", "amount > 1500")
        + f"  # reviewed {XSS}\n"})
    assert r.status_code == 200, r.text
    yield server, seeds
    stop_server(server)


@pytest.fixture
def open_page(browser: Any, served: tuple[Server, dict[str, Any]]) -> Iterator[Any]:
    """``open_page(width, height)``: a new logged-in page at that size."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        login(page, served[0])
        return page

    yield make
    for context in contexts:
        context.close()


def no_markup_ran(page: Any) -> None:
    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def fits(page: Any, width: int = 390) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide at {width} px"


def in_viewport(locator: Any, width: int = 390) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


def test_every_page_fits_a_phone_and_shows_attacker_text_as_text(
        open_page: Any, served: tuple[Server, dict[str, Any]], tmp_path: Path) -> None:
    server, seeds = served
    out = tmp_path  # (what a phone shows, kept with the test's output)
    page = open_page(390, 844)
    for path, ready in PAGES.items():
        page.goto(server.url + path)
        page.locator(ready).first.wait_for()
        fits(page)
        nav = page.locator("nav.tabs a")
        assert nav.all_text_contents() == ["Queue", "History", "Decisions", "Overview",
                                           "Policy", "Standing approvals"]
        no_markup_ran(page)
        if path == "/":
            page.screenshot(path=str(out / "dashboard-phone.png"))
        if path == "/overview":
            page.screenshot(path=str(out / "dashboard-overview-phone.png"), full_page=True)
    page.goto(server.url + "/")
    long_card = card(page, seeds["long"]["escalation_id"])
    evil_card = card(page, seeds["evil"]["escalation_id"])
    long_card.wait_for()
    assert LONG_AGENT in long_card.text_content()
    assert EVIL_TOOL in evil_card.locator(".tool").text_content()
    assert "bot" + XSS in evil_card.text_content()
    assert XSS in evil_card.locator("pre.input").text_content()
    assert "Over 1000 needs a person " + XSS in evil_card.locator(".reason").text_content()
    long_card.locator("details.edit summary").click()
    long_card.locator("details.grant summary").click()
    fits(page)
    for control in ("button.approve", "button.deny", "input.comment", "textarea",
                    "button.approve-edit", "button.approve-grant"):
        long_card.locator(control).scroll_into_view_if_needed()
        in_viewport(long_card.locator(control))
    page.goto(server.url + "/decisions")
    row = page.locator(f'details.decision[data-id="{seeds["long"]["decision_id"]}"]')
    row.locator("summary").click()
    row.locator(".detail pre").first.wait_for()
    fits(page)
    no_markup_ran(page)
    wide = open_page(1280, 900)
    wide.goto(server.url + "/")
    card(wide, seeds["long"]["escalation_id"]).wait_for()
    wide.screenshot(path=str(out / "dashboard-queue.png"))
    wide.goto(server.url + "/overview")
    wide.locator("#resolution svg rect").first.wait_for()
    wide.screenshot(path=str(out / "dashboard-overview.png"), full_page=True)
    assert (out / "dashboard-phone.png").stat().st_size > 10_000


def test_filters_live_in_the_url_and_never_hide_the_pending_count(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, seeds = served
    page = open_page()
    page.goto(server.url + "/")
    card(page, seeds["long"]["escalation_id"]).wait_for()
    total = int(page.text_content("#pending-count"))
    assert total >= 2
    page.fill("#filter-tool", "LEDGER_and")  # any case, any part of the name
    page.wait_for_function("() => document.querySelectorAll('#pending .card').length === 1")
    assert page.locator(".card").get_attribute("data-id") == seeds["long"]["escalation_id"]
    assert page.text_content("#pending-shown") == f"{total} pending, 1 shown"
    page.wait_for_function("() => location.search === '?tool=LEDGER_and'")
    page.reload()
    assert page.input_value("#filter-tool") == "LEDGER_and"
    page.wait_for_function("() => document.querySelectorAll('#pending .card').length === 1")
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#pending .card').length > 1")
    assert page.input_value("#filter-tool") == ""
    # a shared link opens the same view: the history's and the decision log's filters
    page.goto(server.url + "/history?status=denied&agent=REFUND")
    page.locator("#history tbody tr").first.wait_for()
    assert page.input_value("#filter-status") == "denied"
    statuses = page.locator("#history td.status-denied").count()
    assert statuses == page.locator("#history tbody tr").count() >= 4
    assert page.text_content("#pending-shown").startswith(f"{total} pending")
    page.goto(server.url + "/decisions?action=block&agent=REFUND")
    page.locator("details.decision").first.wait_for()
    assert page.is_checked("#filter-action input[value=block]")
    actions = page.locator("details.decision .action").all_text_contents()
    assert actions and set(actions) == {"block"}
    page.uncheck("#filter-action input[value=block]")
    page.wait_for_function("() => [...document.querySelectorAll('details.decision .action')]"
                           ".some(a => a.textContent !== 'block')")
    assert "action=" not in page.url and "agent=REFUND" in page.url
    page.go_back()
    page.wait_for_function("() => [...document.querySelectorAll('details.decision .action')]"
                           ".every(a => a.textContent === 'block')")
    assert page.is_checked("#filter-action input[value=block]")


def flash_error(page: Any, *words: str) -> str:
    page.wait_for_function("() => document.querySelector('#flash').className === 'error'")
    said: str = page.text_content("#flash")
    assert said.startswith("invalid request: ") and all(w in said for w in words), said
    return said


def test_a_shared_link_is_applied_or_refused_never_ignored(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    page = open_page()
    # several actions at once, as the API and the CLI take them, kept in the URL
    page.goto(server.url + "/decisions?action=block,escalate")
    page.locator("details.decision").first.wait_for()
    ticked = page.locator("#filter-action input:checked").evaluate_all(
        "bs => bs.map(b => b.value)")
    assert ticked == ["block", "escalate"]
    actions = page.locator("details.decision .action").all_text_contents()
    assert set(actions) == {"block", "escalate"}, actions
    page.check("#filter-action input[value=modify]")
    page.wait_for_function("() => location.search === '?action=block%2Cmodify%2Cescalate'")
    page.wait_for_function("() => [...document.querySelectorAll('details.decision .action')]"
                           ".some(a => a.textContent === 'modify')")
    # a value no filter has: kept in sight and refused in words, nothing listed as if all
    page.goto(server.url + "/decisions?action=approve")
    flash_error(page, "action", "'approve'")
    assert page.is_checked("#filter-action label.unknown input[value=approve]")
    assert page.locator("details.decision").count() == 0
    page.uncheck("#filter-action input[value=approve]")  # corrected: the message goes
    page.locator("details.decision").first.wait_for()
    page.wait_for_function("() => document.querySelector('#flash').textContent === ''")
    for path, select, words in (("/?status=bogus", "#filter-status", ("status", "'bogus'")),
                                ("/history?status=bogus", "#filter-status", ("status",)),
                                ("/overview?since=banana", "#filter-since",
                                 ("since", "'banana'"))):
        page.goto(server.url + path)
        flash_error(page, *words)
        assert page.input_value(select) == path.rsplit("=", 1)[1], path
    assert page.locator("#over-time svg").count() == 0  # no chart of the last 24 hours
    page.goto(server.url + "/overview?since=2h")  # any duration the server takes
    page.locator("#over-time svg rect").first.wait_for()
    assert page.input_value("#filter-since") == "2h"
    assert page.text_content("#flash") == ""


def test_a_decision_shows_its_answers_in_words_and_no_empty_fields(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    edited = guard(server, "process_refund", {"customer": "c_words", "amount": 8000})
    answer(server, edited["escalation_id"], "approve", comment="checked with finance",
           modified_input={"customer": "c_words", "amount": 800})
    r = server.request("POST", f"/v1/escalations/{edited['escalation_id']}/claim",
                       json={"decision_id": edited["decision_id"]})  # the agent takes it
    assert r.status_code == 200 and r.json()["claimed"], r.text
    page = open_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/decisions?q=" + edited["escalation_id"])
    row = page.locator("details.decision").first
    row.locator("summary").click()
    row.locator(".escalation").wait_for()
    detail = row.locator(".detail")
    said = detail.locator("ul.answers li").all_text_contents()
    assert len(said) == 1 and said[0].startswith("approved by "), said
    assert " via api at " in said[0] and said[0].endswith(": checked with finance"), said
    assert detail.locator("div.answers pre").count() == 0  # no raw JSON, no epoch "at"
    text = detail.text_content()
    assert "environment:" not in text and "*:" not in text
    assert detail.locator("ul.modifications").text_content().startswith("edited by ")
    icon = page.get_attribute('link[rel="icon"]', "href")
    assert icon.startswith("data:image/svg+xml,")
    assert not any(u.endswith("/favicon.ico") for u in requests), requests
    login_page = page.context.browser.new_page()
    login_page.goto(server.url + "/login")
    assert login_page.get_attribute('link[rel="icon"]', "href") == icon
    login_page.close()
    csp = page.request.get(server.url + "/login").headers["content-security-policy"]
    assert "img-src 'self' data:" in csp


def test_a_comment_on_any_answer_and_an_edit_shown_as_a_diff(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    plain = guard(server, "process_refund", {"customer": "c_plain", "amount": 3000})
    edited = guard(server, "process_refund", {"customer": "c_edit", "amount": 90000})
    page = open_page()
    page.goto(server.url + "/")
    box = card(page, plain["escalation_id"])
    box.locator("input.comment").fill("ok, known customer")
    box.locator("button.approve").click()
    box.wait_for(state="detached")
    stored = server.request("GET", f"/v1/escalations/{plain['escalation_id']}").json()
    assert stored["status"] == "approved" and stored["comment"] == "ok, known customer"
    box = card(page, edited["escalation_id"])
    assert box.locator("pre.input").count() == 1  # the input shown once
    assert box.locator("textarea").is_hidden()  # the edit box waits behind "Edit input"
    box.locator("details.edit summary").click()
    box.locator("textarea").fill('{"customer": "c_edit", "amount": 900}')
    box.locator("input.comment").fill("a typo: 900")
    box.locator("button.approve-edit").click()
    box.wait_for(state="detached")
    row = page.locator(f'#history tr[data-id="{edited["escalation_id"]}"]')
    row.wait_for()
    assert row.locator("ul.changes del").text_content() == "90000"
    assert row.locator("ul.changes ins").text_content() == "900"
    assert "amount: 90000 → 900" in row.locator("ul.changes").text_content()
    assert "a typo: 900" in row.text_content()
    page.goto(server.url + "/decisions?q=" + edited["decision_id"])
    found = page.locator(f'details.decision[data-id="{edited["decision_id"]}"]')
    found.locator("summary").click()
    changes = found.locator(".escalation ul.changes")
    changes.wait_for()
    assert "amount: 90000 → 900" in changes.text_content()


def test_expiry_errors_on_their_card_and_the_count_in_the_tab_title(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, seeds = served
    page = open_page()
    page.goto(server.url + "/")
    box = card(page, seeds["evil"]["escalation_id"])
    box.wait_for()
    expires = box.locator(".expires")
    assert expires.text_content().startswith("expires in ")
    assert expires.get_attribute("title").startswith("expires ")
    total = int(page.text_content("#pending-count"))
    assert page.title() == f"({total}) staso · queue"
    other = page.context.new_page()  # the queue's tab goes to the background
    other.goto(server.url + "/grants")
    other.bring_to_front()
    # (headless chromium calls every tab visible: the page is told it is hidden, as a
    # background tab is, so a page that paused when hidden would fail here)
    page.evaluate("""() => { Object.defineProperty(document, "visibilityState",
                                                   { get: () => "hidden" });
                             Object.defineProperty(document, "hidden", { get: () => true });
                             document.dispatchEvent(new Event("visibilitychange")); }""")
    late = guard(server, "process_refund", {"customer": "c_late", "amount": 4444})
    page.wait_for_function(f"() => document.title === '({total + 1}) staso · queue'")
    page.bring_to_front()
    late_box = card(page, late["escalation_id"])
    late_box.locator("details.edit summary").click()
    late_box.locator("textarea").fill('{"amount": 44')  # not JSON
    late_box.locator("button.approve-edit").click()
    error = late_box.locator(".card-error")
    error.wait_for()
    assert "edited input rejected" in error.text_content()
    assert page.get_attribute("#flash", "class") != "error"  # not at the top of the page
    assert late_box.locator("textarea").input_value() == '{"amount": 44'  # nothing lost
    answer(server, late["escalation_id"], "deny")  # then someone else answers it
    # the next refresh finds it answered: the card stays, greyed, with its error
    page.locator(f'.card.stale[data-id="{late["escalation_id"]}"]').wait_for()
    assert error.is_visible() and late_box.locator("button.approve").is_disabled()
    late_box.locator("button.dismiss").click()
    late_box.wait_for(state="detached")
    page.wait_for_function(f"() => document.title === '({total}) staso · queue'")


def test_history_loads_more_past_a_page(open_page: Any,
                                        served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    page = open_page()
    page.goto(server.url + "/history?limit=3")
    rows = page.locator("#history tbody tr")
    page.wait_for_function("() => document.querySelectorAll('#history tbody tr').length === 3")
    first = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    page.click("#history-more")
    page.wait_for_function("() => document.querySelectorAll('#history tbody tr').length > 3")
    after = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert after[:3] == first and len(set(after)) == len(after) >= 5
    every = server.request("GET", "/v1/escalations?limit=1000", role="approver").json()
    answered = [e["id"] for e in every if e["status"] != "pending"]
    while page.locator("#history-more").is_visible():
        shown = rows.count()
        page.click("#history-more")
        page.wait_for_function("n => document.querySelectorAll('#history tbody tr').length > n"
                               " || document.querySelector('#history-more').hidden", arg=shown)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.id)") == answered
    r = page.request.get(server.url + "/dashboard/data?before=esc_0")
    assert r.status == 422 and "esc_0" in r.json()["detail"]


def test_overview_charts_come_from_the_data_with_text_equivalents(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    page = open_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/overview")
    page.locator("#over-time svg rect").first.wait_for()
    data = page.request.get(server.url + "/dashboard/overview?since=24h").json()
    drawn = page.locator("#over-time svg rect title").all_text_contents()
    for action in ("allow", "block", "modify", "escalate"):
        want = data["totals"].get(action, 0)
        got = sum(int(t.split(": ")[1].split(" ")[0]) for t in drawn if t.endswith(" " + action))
        assert got == want, (action, drawn)
    assert page.get_attribute("#over-time svg", "aria-labelledby") == "over-time-title"
    table = page.locator("#top-rules table")
    top = data["top_rules"][0]
    assert top["rule"] in table.text_content() and str(top["count"]) in table.text_content()
    assert data["resolution"]["count"] >= 5
    assert f'{data["resolution"]["count"]} answered' in page.text_content("#resolution-summary")
    assert page.locator("#resolution svg rect").count() >= 1
    assert all(u.startswith(server.url) for u in requests), requests  # nothing off the box


def test_policy_versions_and_their_diff_render_as_text(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    page = open_page()
    page.goto(server.url + "/policy")
    page.locator("#diff span").first.wait_for()
    assert "version 2" in page.text_content("#in-force")
    assert f"# reviewed {XSS}" in page.text_content("#policy-source")
    assert page.locator("#versions tbody tr").count() == 2
    added = page.locator("#diff .add").all_text_contents()
    removed = page.locator("#diff .del").all_text_contents()
    assert "+     when: tool_input.amount > 1500\n" in added
    assert f"+   # reviewed {XSS}\n" in added
    assert removed == ["-     when: tool_input.amount > 1000\n"]
    assert "2 lines added, 1 removed" in page.text_content("#diff-summary")
    no_markup_ran(page)
    page.select_option("#diff-from", "2")
    page.wait_for_function("() => document.querySelector('#diff-summary').textContent"
                           ".includes('identical')")
    assert "from=2" in page.url
    page.reload()
    page.wait_for_function("() => document.querySelector('#diff-summary').textContent"
                           ".includes('identical')")
    page.go_back()
    page.wait_for_function("() => document.querySelector('#diff-summary').textContent"
                           ".includes('1 removed')")


def test_the_decision_log_searches_and_opens_a_decision(
        open_page: Any, served: tuple[Server, dict[str, Any]]) -> None:
    server, seeds = served
    page = open_page()
    page.goto(server.url + "/decisions")
    page.locator("details.decision").first.wait_for()
    page.fill("#filter-tool", "TIP")
    page.wait_for_function("() => [...document.querySelectorAll('details.decision .tool')]"
                           ".every(t => t.textContent === 'tip')")
    tip = page.locator(f'details.decision[data-id="{seeds["tip"]["decision_id"]}"]')
    tip.locator("summary").click()
    tip.locator(".execution").wait_for()
    assert "card declined " + XSS in tip.locator(".execution").text_content()
    assert "amount: 50 → 10" in tip.locator("ul.changes").text_content()
    assert "capped 50 to 10" in tip.locator("ul.modifications").text_content()
    # the rule that fired comes first, with its action; rules the call passed say so
    results = tip.locator("ul.results li").all_text_contents()
    assert results[0].startswith("cap_tips · modify"), results
    assert all(r.endswith(" · passed") for r in results[1:]), results
    page.goto(server.url + "/decisions?action=block")
    blocked = page.locator(f'details.decision[data-id="{seeds["blocked"]["decision_id"]}"]')
    blocked.locator("summary").click()
    blocked.locator(".detail pre").first.wait_for()
    shown = blocked.locator(".detail").text_content()
    assert "no_sql_writes" in shown and "pw-9" not in shown and "DELETE FROM users" in shown
    page.goto(server.url + f"/decisions?q={seeds['evil']['escalation_id']}")
    evil = page.locator(f'details.decision[data-id="{seeds["evil"]["decision_id"]}"]')
    evil.locator("summary").click()
    evil.locator(".escalation").wait_for()
    assert EVIL_TOOL in evil.locator(".tool").text_content()
    assert "Over 1000 needs a person " + XSS in evil.locator(".reason").text_content()
    no_markup_ran(page)
    page.goto(server.url + "/decisions?limit=2")
    page.wait_for_function("() => document.querySelectorAll('details.decision').length === 2")
    page.click("#decisions-more")
    page.wait_for_function("() => document.querySelectorAll('details.decision').length === 4")
    page.goto(server.url + "/decisions?since=yesterday")  # bad input: one clear line
    page.wait_for_function("() => document.querySelector('#flash').textContent.includes('since')")
    assert page.get_attribute("#flash", "class") == "error"
    assert page.input_value("#filter-since") == "yesterday"  # kept, to be corrected
