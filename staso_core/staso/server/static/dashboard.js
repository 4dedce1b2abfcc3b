// staso dashboard: renders escalations and standing approvals with textContent only (tool
// names and inputs, agent names, grant conditions and comments are attacker text).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const flash = document.getElementById("flash");

  // Text a page cannot show (NUL and other control characters, a lone surrogate from a
  // file name that was not UTF-8) appears as its \uXXXX escape instead of vanishing.
  const unshowable = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
  function shown(text) {
    return String(text).replace(unshowable,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") node.textContent = shown(v);
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function pretty(value) { return JSON.stringify(value, null, 2); }

  function when(seconds) { return new Date(seconds * 1000).toLocaleString(); }

  // who answered and how: "alice (dashboard, 14:02:11)"
  function said(name, via, at) {
    const how = [via, at ? new Date(at * 1000).toLocaleTimeString() : ""].filter(Boolean);
    return name + (how.length ? " (" + how.join(", ") + ")" : "");
  }

  function form(action, cls, label, fields) {
    const f = el("form", { method: "post", action: action, class: cls }, [
      el("input", { type: "hidden", name: "csrf_token", value: csrf })]);
    for (const field of fields) f.appendChild(field);
    f.appendChild(el("button", { type: "submit", class: cls, text: label }));
    f.addEventListener("submit", submit);
    return f;
  }

  async function submit(event) {
    event.preventDefault();
    const f = event.currentTarget;
    const body = new URLSearchParams(new FormData(f));
    try {
      const r = await fetch(f.action, { method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json" } });
      const data = await r.json().catch(() => ({ detail: r.statusText }));
      const detail = typeof data.detail === "string" ? data.detail
        : (r.statusText || "refused (HTTP " + r.status + ")");
      flash.textContent = detail;
      flash.className = r.ok ? "" : "error";
      const box = f.closest(".card");
      if (box) box.querySelector(".card-error").textContent = r.ok ? "" : shown(detail);
    } catch (err) {
      flash.textContent = "could not reach the server: " + err;
      flash.className = "error";
    }
    refreshPage();
  }

  let refreshPage = () => {};  // the page's own refresh, set by poll

  // Keep a page fresh: fetch url with the filters' values and render what comes back, at
  // once, whenever the filters change and every `every` ms. One request at a time; a refresh
  // asked for meanwhile runs right after it (an answer must show at once).
  function poll(filters, url, render, every) {
    let busy = false, again = false;
    async function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const query = new URLSearchParams(new FormData(filters));
        const r = await fetch(url + "?" + query, { credentials: "same-origin" });
        if (r.status === 401) { window.location.assign("/login"); return; }
        render(await r.json());
      } catch (err) {
        flash.textContent = "could not reach the server: " + err;
        flash.className = "error";
      } finally {
        busy = false;
        if (again) { again = false; refresh(); }
      }
    }
    filters.addEventListener("input", refresh);
    filters.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
    refreshPage = refresh;
    refresh();
    setInterval(refresh, every);
  }

  // -- escalations: the pending queue and the history ------------------------------------
  function escalationsPage() {
    const pendingBox = document.getElementById("pending");
    const historyBody = document.querySelector("#history tbody");
    const filters = document.getElementById("filters");
    const cards = new Map(); // escalation id -> card element (kept while the user types)

    // "Approve and allow similar calls": an approval that also lets this agent's calls of this
    // tool, escalated by this rule, through for a while (a standing approval)
    function grantForm(base, e) {
      const ttl = el("input", { name: "grant_ttl", list: "ttl-choices", value: "1h", size: "6",
                                "aria-label": "for how long" });
      const uses = el("input", { name: "grant_max_uses", type: "number", min: "1", size: "6",
                                 placeholder: "no limit", "aria-label": "at most this many calls" });
      const cond = el("input", { name: "grant_when", class: "cel", value: "",
                                 placeholder: "any input; e.g. tool_input.amount <= 2000",
                                 "aria-label": "only calls where (CEL)" });
      const f = form(base + "/approve", "approve-grant", "Approve and allow similar calls", [
        el("input", { type: "hidden", name: "grant", value: "1" }),
        el("label", { text: "for " }, [ttl]),
        el("label", { text: "at most " }, [uses, el("span", { text: " calls" })]),
        el("label", { text: "only where " }, [cond])]);
      return el("details", { class: "grant" }, [
        el("summary", { text: "Approve and allow similar calls…" }),
        el("p", { class: "explain",
                  text: "Also allows " + (e.agent_name || "") + "'s later calls of " +
                    e.tool_name + " that rule " + e.rule_name + " escalates, without asking, " +
                    "for the time and number of calls given and, if a condition is given, " +
                    "only where it holds (CEL on tool_input). It never overrides a block; " +
                    "it can be revoked under Standing approvals." }),
        f]);
    }

    function card(e) {
      const base = "/dashboard/escalations/" + encodeURIComponent(e.id);
      const quorum = e.approvals_required > 1;
      const comment = el("input", { name: "comment", placeholder: "comment (reaches the agent)",
                                    "aria-label": "deny comment" });
      const actions = [form(base + "/approve", "approve", "Approve", [])];
      if (!quorum) {  // one of several approvers cannot edit what the others approve
        const edit = el("textarea", { name: "modified_input", "aria-label": "edited input" });
        edit.value = pretty(e.proposed_input || e.tool_input);
        actions.push(form(base + "/approve", "approve-edit", "Approve with edit", [edit]));
      }
      actions.push(form(base + "/deny", "deny", "Deny", [comment]));
      const age = el("span", { class: "age" });
      const who = el("p", { class: "answerers", text: "Who may answer: " +
        (e.approvers ? e.approvers.join(", ") : "any approver") });
      const parts = [
        el("div", { class: "meta" }, [
          el("span", { class: "tool", text: e.tool_name }),
          el("span", { text: "rule: " + (e.rule_name || "") }),
          el("span", { class: "sev-" + e.severity, text: "severity: " + e.severity }),
          el("span", { text: "agent: " + (e.agent_name || "") }),
          age,
          el("span", { class: "id", text: e.id })]),
        el("p", { class: "reason", text: e.reason || "" }),
        who];
      const progress = el("div", { class: "quorum" });
      if (quorum) parts.push(progress);
      if (e.requested_by || e.forbid_self_approval) {
        const asker = e.requested_by || "whoever asked for the call";
        const text = [e.requested_by ? "requested by " + e.requested_by : "",
                      e.forbid_self_approval ? asker + " may not approve their own request" : ""];
        parts.push(el("p", { class: "requested", text: text.filter(Boolean).join(" · ") }));
      }
      parts.push(el("pre", { class: "input", text: pretty(e.tool_input) }));
      if (Object.keys(e.context || {}).length)
        parts.push(el("pre", { class: "context", text: "context: " + pretty(e.context) }));
      const note = el("p", { class: "not-yours" });
      parts.push(note, el("div", { class: "actions" }, actions));
      const granting = !quorum && e.rule_name && !e.rule_name.startsWith("staso/");
      const grant = granting ? grantForm(base, e) : null;
      if (grant) parts.push(grant);
      parts.push(el("p", { class: "card-error error", role: "alert" }));
      const node = el("div", { class: "card", "data-id": e.id }, parts);
      node._age = age;
      node._update = (fresh) => {  // what changes while it waits, without touching the inputs
        const you = fresh.you || { may_approve: true, may_deny: true, note: "" };
        note.textContent = shown(you.note || "");
        note.hidden = !you.note;
        for (const b of node.querySelectorAll("form.approve button, form.approve-edit button," +
                                              " form.approve-grant button"))
          b.disabled = !you.may_approve;
        node.querySelector("form.deny button").disabled = !you.may_deny;
        if (grant) grant.hidden = !you.may_approve;
        if (quorum) {
          const done = fresh.approvals || [];
          progress.replaceChildren(
            el("span", { class: "progress",
                         text: done.length + " of " + fresh.approvals_required + " approvals" }),
            el("ul", { class: "approvals" },
               done.map((a) => el("li", { text: said(a.by || a.name, a.via, a.at) }))));
        }
      };
      return node;
    }

    // a link from Slack or e-mail (/?escalation=esc_…) opens on that escalation
    let focus = new URLSearchParams(window.location.search).get("escalation");
    function focusOn() {
      if (!focus) return;
      const node = document.querySelector('[data-id="' + CSS.escape(focus) + '"]');
      if (!node) return;
      node.classList.add("focused");
      node.scrollIntoView({ block: "center" });
      focus = null;
    }

    function renderPending(items, now) {
      const seen = new Set();
      for (const e of items) {
        seen.add(e.id);
        let node = cards.get(e.id);
        if (!node) {
          node = card(e);
          cards.set(e.id, node);
        }
        node._age.textContent = "waiting " + duration(now - e.created_at);
        node._update(e);
        pendingBox.appendChild(node); // keeps order; moves an existing node without rebuilding
      }
      for (const [id, node] of cards) {
        if (!seen.has(id)) { node.remove(); cards.delete(id); }
      }
      document.getElementById("pending-count").textContent = String(items.length);
      document.getElementById("pending-empty").hidden = items.length > 0;
    }

    function renderHistory(items) {
      const rows = items.map((e) => el("tr", { "data-id": e.id }, [
        el("td", { text: e.tool_name }),
        el("td", { class: "input", text: JSON.stringify(e.modified_input || e.tool_input) }),
        el("td", { text: e.rule_name || "" }),
        el("td", { text: e.agent_name || "" }),
        el("td", { class: "status-" + e.status,
                   text: e.status === "timeout" ? "timed out"
                     : e.status + (e.modified_input ? " (edited)" : "") }),
        el("td", { text: e.resolved_by || "" }),
        el("td", { text: e.comment || "" }),
        el("td", { class: "ttr", text: duration(e.time_to_resolution) }),
        el("td", { text: e.resolved_at ? when(e.resolved_at) : when(e.expires_at) }),
        el("td", { class: "approvals" }, [el("ul", {}, answers(e))]),
        el("td", { class: "policy", text: policy(e) })]));
      historyBody.replaceChildren(...rows);
    }

    // every approver of an answered escalation with their channel, then a denial's author
    function answers(e) {
      const items = (e.approvals || []).map((a) => el("li", {
        text: "approved by " + said(a.by || a.name, a.via, a.at) }));
      if (e.status === "denied" && e.resolved_by)
        items.push(el("li", { text: "denied by " + said(e.resolved_by, e.resolved_via,
                                                         e.resolved_at) }));
      return items;
    }

    function policy(e) {
      if (e.policy_version) return "version " + e.policy_version;
      return e.policy_digest ? "digest " + String(e.policy_digest).slice(0, 12) : "";
    }

    poll(filters, "/dashboard/data", (data) => {
      renderPending(data.pending, data.now);
      renderHistory(data.history);
      focusOn();
    }, 1000);
  }

  // -- standing approvals: review and revoke ----------------------------------------------
  function grantsPage() {
    const body = document.querySelector("#grants tbody");
    const filters = document.getElementById("grant-filters");

    function left(g, now) {
      const s = g.expires_at - now;
      return s > 0 ? "in " + duration(s) : duration(-s) + " ago";
    }

    function row(g, now) {
      const given = [said(g.created_by, g.created_via, null), "on " + when(g.created_at)];
      if (g.escalation_id) given.push("answering " + g.escalation_id);
      const state = [el("span", { class: "state-" + g.state.replace(" ", "-"), text: g.state })];
      if (g.revoked_at)
        state.push(el("div", { class: "muted", text: "by " + (g.revoked_by || "") + " on " +
                                                     when(g.revoked_at) }));
      const action = "/dashboard/grants/" + encodeURIComponent(g.id) + "/revoke";
      const revoke = g.state === "live" ? form(action, "revoke", "Revoke", []) : el("span");
      return el("tr", { "data-id": g.id }, [
        el("td", { class: "id", text: g.id }),
        el("td", { text: g.agent_name }),
        el("td", { class: "tool", text: g.tool_name }),
        el("td", { text: g.rule_name + (g.environment ? " (" + g.environment + ")" : "") }),
        el("td", { class: "cel", text: g.condition || "any input" }),
        el("td", { class: "given", text: given.join(" · ") }),
        el("td", { class: "expires", text: when(g.expires_at) + " (" + left(g, now) + ")" }),
        el("td", { class: "uses", text: g.max_uses === null ? g.uses + " (no limit)"
                                                            : g.uses + " of " + g.max_uses }),
        el("td", { class: "state" }, state),
        el("td", {}, [revoke])]);
    }

    poll(filters, "/dashboard/grants", (data) => {
      body.replaceChildren(...data.grants.map((g) => row(g, data.now)));
      document.getElementById("grants-count").textContent = String(data.grants.length);
      document.getElementById("grants-empty").hidden = data.grants.length > 0;
    }, 2000);
  }

  if (document.body.dataset.view === "grants") grantsPage(); else escalationsPage();
})();
