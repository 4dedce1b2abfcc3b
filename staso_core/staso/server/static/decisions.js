// staso dashboard: the decision log. Every guarded call, filtered and searched (the filters
// live in the URL); a row opens to its rule results, masked input, changes, execution
// outcome and escalation.
"use strict";
(function () {
  const { el, pretty, when, said, duration, changeList, poll, query, getJson, say } = window.staso;
  const filters = document.getElementById("filters");
  const list = document.getElementById("decisions");
  const more = document.getElementById("decisions-more");
  let cursor = null;

  // a labelled value; nothing at all for an empty one (no bare "environment:")
  function field(label, value, cls) {
    if (value === null || value === undefined || value === "") return null;
    return el("div", { class: "field " + (cls || "") }, [
      el("span", { class: "label", text: label + ": " }), el("span", { text: value })]);
  }

  function block(label, value) {
    return el("div", { class: "block" }, [
      el("h4", { text: label }), el("pre", { class: "json", text: pretty(value) })]);
  }

  function ruleResults(d) {
    const results = d.results || d.rules_triggered || [];
    if (!results.length) return el("p", { class: "muted", text: "No rule matched." });
    // the rules that fired first, then those the call passed (their action did not apply)
    const fired = (r) => typeof r === "string" || r.passed === false;
    const ordered = results.filter(fired).concat(results.filter((r) => !fired(r)));
    return el("ul", { class: "results" }, ordered.map((r) => el("li", {
      class: fired(r) ? "fired" : "muted",
      text: typeof r === "string" ? r
        : r.passed ? (r.rule_name || r.rule || r.name) + " · passed"
        : [r.rule_name || r.rule || r.name, r.action + (r.mode === "audit" ? " (audit)" : ""),
           r.reason].filter(Boolean).join(" · ") })));
  }

  function escalationPart(e) {
    const parts = [field("status", e.status === "timeout" ? "timed out" : e.status),
                   field("id", e.id, "id")];
    if (e.resolved_by) parts.push(field("by", said(e.resolved_by, e.resolved_via, e.resolved_at)));
    if (e.comment) parts.push(field("comment", e.comment));
    if (e.time_to_resolution !== null && e.time_to_resolution !== undefined)
      parts.push(field("time to resolution", duration(e.time_to_resolution)));
    for (const a of e.approvals || [])
      parts.push(field("approved by", said(a.by || a.name, a.via, a.at) +
                                      (a.comment ? ": " + a.comment : "")));
    if (e.modified_input) {
      parts.push(el("h4", { text: "Approved with an edit" }),
                 changeList(e.tool_input, e.modified_input));
    }
    return el("div", { class: "escalation" },
              [el("h4", { text: "Escalation" }), ...parts.filter(Boolean)]);
  }

  // a change the guard made: "amount: capped 50 to 10"; "*" (the whole input, edited by
  // an approver) shows as its reason alone
  function modification(m) {
    if (!m || typeof m !== "object") return String(m);
    const where = m.field && m.field !== "*" ? m.field : "";
    return [where, m.reason].filter(Boolean).join(": ") || "changed";
  }

  // who answered, how and when, with their comment: one line each
  function answers(d) {
    const e = d.escalation || {};
    const approvals = e.approvals || [];
    return el("div", { class: "answers" }, [el("h4", { text: "Answers" }),
      el("ul", { class: "answers" }, d.answers.map((a) => {
        const by = a.by || a.name || "";
        const approval = approvals.find((x) => (x.by || x.name) === by && x.at === a.at);
        const comment = (approval && approval.comment) || a.comment ||
          (by && by === e.resolved_by && a.answer === e.status ? e.comment : "");
        const text = [a.answer || "answered", by && "by " + by, a.via && "via " + a.via,
                      typeof a.at === "number" ? "at " + when(a.at) : ""]
          .filter(Boolean).join(" ");
        return el("li", { text: text + (comment ? ": " + comment : "") });
      }))]);
  }

  function detail(d) {
    const parts = [
      el("p", { class: "reason", text: d.reason || "" }),
      el("div", { class: "fields" }, [
        field("decision", d.id, "id"), field("environment", d.environment),
        field("severity", d.severity), field("latency", typeof d.latency_ms === "number" ? d.latency_ms.toFixed(1) + " ms" : ""),
        field("policy", d.policy_version ? "version " + d.policy_version
          : String(d.policy_digest || "").slice(0, 12))].filter(Boolean)),
      el("h4", { text: "Rule results" }), ruleResults(d),
      block("Input (masked)", d.tool_input)];
    if (d.context && Object.keys(d.context).length) parts.push(block("Context", d.context));
    if (d.modified_input) {
      parts.push(el("h4", { text: "Modified" }), changeList(d.tool_input, d.modified_input));
      if (d.modifications && d.modifications.length)
        parts.push(el("ul", { class: "modifications" }, d.modifications.map((m) => el("li", {
          text: modification(m) }))));
    }
    if (d.execution_status) {
      const run = [field("status", d.execution_status, "execution-" + d.execution_status)];
      if (d.execution_ms !== null && d.execution_ms !== undefined)
        run.push(field("took", d.execution_ms + " ms"));
      if (d.execution_error) run.push(field("error", d.execution_error, "error"));
      parts.push(el("div", { class: "execution" },
                    [el("h4", { text: "Execution" }), ...run.filter(Boolean)]));
      if (d.execution_output !== null && d.execution_output !== undefined)
        parts.push(block("Output", d.execution_output));
    }
    if (Array.isArray(d.answers) && d.answers.length) parts.push(answers(d));
    if (d.escalation) parts.push(escalationPart(d.escalation));
    else if (d.escalation_id) parts.push(field("escalation", d.escalation_id + " (" +
                                               (d.escalation_status || "") + ")"));
    return parts.filter(Boolean);
  }

  function row(d) {
    const body = el("div", { class: "detail" }, [el("p", { class: "muted", text: "Loading…" })]);
    const node = el("details", { class: "decision", "data-id": d.id }, [
      el("summary", {}, [
        el("span", { class: "action action-" + d.action, text: d.action }),
        el("span", { class: "tool", text: d.tool_name }),
        el("span", { class: "agent", text: d.agent_name || "" }),
        el("span", { class: "rule", text: d.rule_name || "" }),
        el("time", { class: "muted", text: when(d.created_at) })]),
      body]);
    let loaded = false;
    node.addEventListener("toggle", async () => {
      if (!node.open || loaded) return;
      loaded = true;
      try {
        const full = await getJson("/dashboard/decisions/" + encodeURIComponent(d.id));
        body.replaceChildren(...detail(full));
      } catch (err) {
        loaded = false;
        body.replaceChildren(el("p", { class: "error", role: "alert", text: String(err.message || err) }));
      }
    });
    return node;
  }

  // names match as parts, in any case: "refund" finds process_refund (the server takes globs)
  function parts(q) {
    for (const name of ["agent", "tool", "rule"]) {
      const v = q.get(name);
      if (v && !v.includes("*")) q.set(name, "*" + v + "*");
    }
    return q;
  }

  function count() {
    document.getElementById("decisions-count").textContent =
      list.children.length + " shown" + (cursor ? ", more below" : "");
    document.getElementById("decisions-empty").hidden = list.children.length > 0;
    more.hidden = !cursor;
  }

  const limit = new URLSearchParams(window.location.search).get("limit");
  if (limit) filters.appendChild(el("input", { type: "hidden", name: "limit", value: limit }));
  poll(filters, "/dashboard/decisions", (data) => {
    list.replaceChildren(...data.items.map(row));
    cursor = data.next_cursor;
    count();
  }, 0, parts);

  more.addEventListener("click", async () => {
    if (!cursor) return;
    more.disabled = true;
    try {
      const data = await getJson("/dashboard/decisions?" + parts(query(filters, { cursor })));
      list.append(...data.items.map(row));
      cursor = data.next_cursor;
      count();
    } catch (err) {
      say(String(err.message || err), true);
    } finally {
      more.disabled = false;
    }
  });
})();
