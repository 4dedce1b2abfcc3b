// staso dashboard: the pending queue, the history of answers and standing approvals.
"use strict";
(function () {
  const { el, shown, duration, span, pretty, when, said, changeList, form, poll, query,
          getJson, say } = window.staso;

  // -- the history table (the queue page's latest answers and the History page) ----------
  function historyRow(e) {
    const edited = e.modified_input && JSON.stringify(e.modified_input) !== JSON.stringify(e.tool_input);
    const input = el("td", { class: "input", "data-label": "Input" });
    if (edited) input.append(changeList(e.tool_input, e.modified_input));
    else input.append(el("span", { text: JSON.stringify(e.tool_input) }));
    const td = (label, text, cls) => el("td", { "data-label": label, class: cls || "", text: text });
    return el("tr", { "data-id": e.id }, [
      td("Tool", e.tool_name, "tool"),
      input,
      td("Rule", e.rule_name || ""),
      td("Agent", e.agent_name || ""),
      td("Resolution", e.status === "timeout" ? "timed out"
        : e.status + (e.modified_input ? " (edited)" : ""), "status-" + e.status),
      td("By", e.resolved_by || ""),
      td("Comment", e.comment || ""),
      td("Time to resolution", duration(e.time_to_resolution), "ttr"),
      td("Answered", e.resolved_at ? when(e.resolved_at) : when(e.expires_at)),
      el("td", { class: "approvals", "data-label": "Approvals" }, [el("ul", {}, answers(e))]),
      td("Policy", policy(e), "policy")]);
  }

  // every approver of an answered escalation with their channel (and, when several had to
  // approve, each one's comment), then a denial's author
  function answers(e) {
    const several = e.approvals_required > 1;
    const items = (e.approvals || []).map((a) => el("li", {
      text: "approved by " + said(a.by || a.name, a.via, a.at) +
        (several && a.comment ? ": " + a.comment : "") }));
    if (e.status === "denied" && e.resolved_by)
      items.push(el("li", { text: "denied by " + said(e.resolved_by, e.resolved_via,
                                                       e.resolved_at) }));
    return items;
  }

  function policy(e) {
    if (e.policy_version) return "version " + e.policy_version;
    return e.policy_digest ? "digest " + String(e.policy_digest).slice(0, 12) : "";
  }

  // "3 pending" or, when filters hide some, "3 pending, 1 shown"; the tab title carries the
  // whole queue's count, also while the tab is in the background
  function counts(total, shownCount) {
    const badge = document.getElementById("pending-count");
    if (badge) badge.textContent = String(total);
    const note = document.getElementById("pending-shown");
    if (note) note.textContent = total + " pending" +
      (shownCount === null || shownCount === total ? "" : ", " + shownCount + " shown");
    document.title = (total ? "(" + total + ") " : "") + "staso · " +
      (document.body.dataset.view === "history" ? "history" : "queue");
  }

  // -- the queue ---------------------------------------------------------------------------
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
      // one comment for whichever answer is given; it reaches the agent
      const comment = el("input", { name: "comment", class: "comment",
                                    placeholder: "comment (optional; reaches the agent)",
                                    "aria-label": "comment" });
      const actions = [form(base + "/approve", "approve", "Approve", []),
                       form(base + "/deny", "deny", "Deny", [])];
      let edit = null;
      if (!quorum) {  // one of several approvers cannot edit what the others approve
        const box = el("textarea", { name: "modified_input", "aria-label": "edited input",
                                     spellcheck: "false" });
        box.value = pretty(e.proposed_input || e.tool_input);
        edit = el("details", { class: "edit" }, [
          el("summary", { text: "Edit input" }),
          form(base + "/approve", "approve-edit", "Approve with edit", [box])]);
      }
      const age = el("span", { class: "age" });
      const expires = el("span", { class: "expires" });
      const who = el("p", { class: "answerers", text: "Who may answer: " +
        (e.approvers ? e.approvers.join(", ") : "any approver") });
      const parts = [
        el("div", { class: "meta" }, [
          el("span", { class: "tool", text: e.tool_name }),
          el("span", { text: "rule: " + (e.rule_name || "") }),
          el("span", { class: "sev-" + e.severity, text: "severity: " + e.severity }),
          el("span", { class: "agent", text: "agent: " + (e.agent_name || "") }),
          age, expires,
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
      parts.push(note, comment, el("div", { class: "actions" }, actions));
      if (edit) parts.push(edit);
      const granting = !quorum && e.rule_name && !e.rule_name.startsWith("staso/");
      const grant = granting ? grantForm(base, e) : null;
      if (grant) parts.push(grant);
      parts.push(el("p", { class: "card-error error", role: "alert" }));
      const dismiss = el("button", { type: "button", class: "dismiss", text: "Dismiss",
                                     hidden: "" });
      parts.push(dismiss);
      const node = el("div", { class: "card", "data-id": e.id }, parts);
      // answered elsewhere after an answer here failed: stays, greyed, until dismissed
      node._stale = () => {
        node.classList.add("stale");
        for (const b of node.querySelectorAll("form button")) b.disabled = true;
        dismiss.hidden = false;
      };
      dismiss.addEventListener("click", () => { node.remove(); cards.delete(e.id); });
      node._tick = (now) => {
        age.textContent = "waiting " + duration(now - e.created_at);
        const left = e.expires_at - now;
        expires.textContent = left > 0 ? "expires in " + span(left) : "expired";
        expires.title = "expires " + when(e.expires_at);
      };
      node._update = (fresh) => {  // what changes while it waits, without touching the inputs
        const you = fresh.you || { may_approve: true, may_deny: true, note: "" };
        note.textContent = shown(you.note || "");
        note.hidden = !you.note;
        for (const b of node.querySelectorAll("form.approve button, form.approve-edit button," +
                                              " form.approve-grant button"))
          b.disabled = !you.may_approve;
        node.querySelector("form.deny button").disabled = !you.may_deny;
        comment.disabled = !you.may_approve && !you.may_deny;
        if (grant) grant.hidden = !you.may_approve;
        if (edit) edit.hidden = !you.may_approve;
        if (quorum) {
          const done = fresh.approvals || [];
          progress.replaceChildren(
            el("span", { class: "progress",
                         text: done.length + " of " + fresh.approvals_required + " approvals" }),
            el("ul", { class: "approvals" },
               done.map((a) => el("li", { text: said(a.by || a.name, a.via, a.at) +
                                                (a.comment ? ": " + a.comment : "") }))));
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
        node._tick(now);
        node._update(e);
        pendingBox.appendChild(node); // keeps order; moves an existing node without rebuilding
      }
      for (const [id, node] of cards) {
        if (seen.has(id)) continue;
        if (node.dataset.failed) { node._stale(); continue; }  // keep the error readable
        node.remove();
        cards.delete(id);
      }
      document.getElementById("pending-empty").hidden = items.length > 0;
    }

    poll(filters, "/dashboard/data", (data) => {
      const filtered = [...new FormData(filters).values()].some(Boolean);
      renderPending(data.pending, data.now);
      counts(data.pending_total, filtered ? data.pending.length : null);
      historyBody.replaceChildren(...data.history.slice(0, 50).map(historyRow));
      focusOn();
    }, 1000);
  }

  // -- the history, 200 (or ?limit=) at a time, "Load more" going further back -------------
  function historyPage() {
    const filters = document.getElementById("filters");
    const body = document.querySelector("#history tbody");
    const more = document.getElementById("history-more");
    const limit = new URLSearchParams(window.location.search).get("limit");
    let next = null, extra = [];  // the rows loaded past the first page

    function show(first) {
      body.replaceChildren(...first.map(historyRow), ...extra.map(historyRow));
      document.getElementById("history-empty").hidden = body.children.length > 0;
      more.hidden = !next;
    }

    if (limit) filters.appendChild(el("input", { type: "hidden", name: "limit", value: limit }));
    let first = [];
    poll(filters, "/dashboard/data", (data) => {
      counts(data.pending_total, null);
      if (!extra.length) next = data.history_next;
      first = data.history;
      show(first);
    }, 5000);
    filters.addEventListener("input", () => { extra = []; });
    window.addEventListener("popstate", () => { extra = []; });
    more.addEventListener("click", async () => {
      if (!next) return;
      more.disabled = true;
      try {
        const data = await getJson("/dashboard/data?" + query(filters, { before: next, limit }));
        const have = new Set([...first, ...extra].map((e) => e.id));
        extra.push(...data.history.filter((e) => !have.has(e.id)));
        next = data.history_next;
        show(first);
      } catch (err) {
        say(String(err.message || err), true);
      } finally {
        more.disabled = false;
      }
    });
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
      const td = (label, text, cls) => el("td", { "data-label": label, class: cls || "", text: text });
      return el("tr", { "data-id": g.id }, [
        td("Id", g.id, "id"),
        td("Agent", g.agent_name),
        td("Tool", g.tool_name, "tool"),
        td("Rule", g.rule_name + (g.environment ? " (" + g.environment + ")" : "")),
        td("When", g.condition || "any input", "cel"),
        td("Given by", given.join(" · "), "given"),
        td("Expires", when(g.expires_at) + " (" + left(g, now) + ")", "expires"),
        td("Uses", g.max_uses === null ? g.uses + " (no limit)" : g.uses + " of " + g.max_uses,
           "uses"),
        el("td", { class: "state", "data-label": "State" }, state),
        el("td", {}, [revoke])]);
    }

    poll(filters, "/dashboard/grants", (data) => {
      body.replaceChildren(...data.grants.map((g) => row(g, data.now)));
      document.getElementById("grants-count").textContent = String(data.grants.length);
      document.getElementById("grants-empty").hidden = data.grants.length > 0;
    }, 2000);
  }

  const view = document.body.dataset.view;
  if (view === "grants") grantsPage();
  else if (view === "history") historyPage();
  else escalationsPage();
})();
