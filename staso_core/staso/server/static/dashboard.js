// staso dashboard: renders escalations with textContent only (tool inputs are attacker text).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const pendingBox = document.getElementById("pending");
  const historyBody = document.querySelector("#history tbody");
  const flash = document.getElementById("flash");
  const filters = document.getElementById("filters");
  const cards = new Map(); // escalation id -> card element (kept while the user types)

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
      flash.textContent = data.detail || r.statusText;
      flash.className = r.ok ? "" : "error";
    } catch (err) {
      flash.textContent = "could not reach the server: " + err;
      flash.className = "error";
    }
    refresh();
  }

  function card(e) {
    const base = "/dashboard/escalations/" + encodeURIComponent(e.id);
    const edit = el("textarea", { name: "modified_input", "aria-label": "edited input" });
    edit.value = pretty(e.proposed_input || e.tool_input);
    const editForm = form(base + "/approve", "approve-edit", "Approve with edit", [edit]);
    const comment = el("input", { name: "comment", placeholder: "comment (reaches the agent)",
                                  "aria-label": "deny comment" });
    const age = el("span", { class: "age" });
    const node = el("div", { class: "card", "data-id": e.id }, [
      el("div", { class: "meta" }, [
        el("span", { class: "tool", text: e.tool_name }),
        el("span", { text: "rule: " + (e.rule_name || "") }),
        el("span", { class: "sev-" + e.severity, text: "severity: " + e.severity }),
        el("span", { text: "agent: " + (e.agent_name || "") }),
        age,
        el("span", { class: "id", text: e.id })]),
      el("p", { class: "reason", text: e.reason || "" }),
      el("pre", { class: "input", text: pretty(e.tool_input) }),
      Object.keys(e.context || {}).length
        ? el("pre", { class: "context", text: "context: " + pretty(e.context) }) : el("span"),
      el("div", { class: "actions" }, [
        form(base + "/approve", "approve", "Approve", []),
        editForm,
        form(base + "/deny", "deny", "Deny", [comment])])]);
    node._age = age;
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
      el("td", { text: e.resolved_at ? new Date(e.resolved_at * 1000).toLocaleString()
                                     : new Date(e.expires_at * 1000).toLocaleString() })]));
    historyBody.replaceChildren(...rows);
  }

  let busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }  // one more right after: an answer must show at once
    busy = true;
    try {
      const query = new URLSearchParams(new FormData(filters));
      const r = await fetch("/dashboard/data?" + query, { credentials: "same-origin" });
      if (r.status === 401) { window.location.assign("/login"); return; }
      const data = await r.json();
      renderPending(data.pending, data.now);
      renderHistory(data.history);
      focusOn();
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
  refresh();
  setInterval(refresh, 1000);
})();
