// staso dashboard, what every page shares: building elements with textContent only (tool
// names and inputs, agent names, reasons, comments and policy text are attacker text), the
// filters kept in the URL, polling, and the forms that answer.
"use strict";
window.staso = (function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const flash = () => document.getElementById("flash");

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

  // SVG elements (the overview's charts); text again only through textContent
  function svg(tag, attrs, children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = shown(v);
      else node.setAttribute(k, String(v));
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

  // a short, whole-unit span for "expires in 4m"
  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function pretty(value) { return JSON.stringify(value, null, 2); }

  function when(seconds) { return new Date(seconds * 1000).toLocaleString(); }

  // who answered and how: "alice (dashboard, 14:02:11)"
  function said(name, via, at) {
    const how = [via, at ? new Date(at * 1000).toLocaleTimeString() : ""].filter(Boolean);
    return name + (how.length ? " (" + how.join(", ") + ")" : "");
  }

  // An edited input against the original, field by field: [{path, before, after}], so
  // "amount: 90000 → 900" is seen at a glance.
  function changes(before, after) {
    const out = [];
    function walk(path, a, b) {
      const objects = a && b && typeof a === "object" && typeof b === "object" &&
        Array.isArray(a) === Array.isArray(b);
      if (objects) {
        const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
        for (const k of keys) walk(path ? path + "." + k : k, a[k], b[k]);
      } else if (JSON.stringify(a) !== JSON.stringify(b)) {
        out.push({ path: path || "(input)", before: a, after: b });
      }
    }
    walk("", before, after);
    return out;
  }

  function changeList(before, after) {
    const text = (v) => v === undefined ? "(none)" : JSON.stringify(v);
    return el("ul", { class: "changes" }, changes(before, after).map((c) =>
      el("li", {}, [el("span", { class: "path", text: c.path + ": " }),
                    el("del", { text: text(c.before) }), el("span", { text: " → " }),
                    el("ins", { text: text(c.after) })])));
  }

  // -- forms that answer: the result shows on their own card (errors never only at the top)
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
    const box = f.closest(".card");
    const comment = box && box.querySelector("input.comment");
    if (comment && !body.has("comment")) body.set("comment", comment.value);
    const report = (ok, text) => {
      if (box) {
        const where = box.querySelector(".card-error");
        where.textContent = ok ? "" : shown(text);
        if (ok) delete box.dataset.failed;
        else { box.dataset.failed = "1"; where.scrollIntoView({ block: "nearest" }); }
      }
      if (ok || !box) say(text, !ok);
    };
    try {
      const r = await fetch(f.action, { method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json" } });
      const data = await r.json().catch(() => ({ detail: r.statusText }));
      report(r.ok, typeof data.detail === "string" ? data.detail
        : (r.statusText || "refused (HTTP " + r.status + ")"));
    } catch (err) {
      report(false, "could not reach the server: " + err);
    }
    api.refresh();
  }

  function say(text, error) {
    const where = flash();
    if (!where) return;
    where.textContent = shown(text);
    where.className = error ? "error" : "";
  }

  // -- filters in the URL: reload, back/forward and a shared link give the same view --------
  // A link's value is always put in its control, even one the control does not offer (a
  // select gets it as an option, checkboxes a box more), and sent as it is: the server
  // applies it or says why not ("invalid request: …"); a page never quietly shows
  // everything under a filter it ignored.
  function fields(filters) { return [...filters.elements].filter((f) => f.name); }

  // name -> its controls (the checkboxes of one filter share its name)
  function groups(filters) {
    const found = new Map();
    for (const f of fields(filters)) {
      if (!found.has(f.name)) found.set(f.name, []);
      found.get(f.name).push(f);
    }
    return found;
  }

  // a filter's value: the ticked boxes joined by commas ("block,escalate"), else the value
  function valueOf(controls) {
    if (controls[0].type === "checkbox")
      return controls.filter((c) => c.checked).map((c) => c.value).join(",");
    return controls[0].value;
  }

  function setValue(controls, value) {
    const first = controls[0];
    if (first.type === "checkbox") {
      const want = value.split(",").map((v) => v.trim()).filter(Boolean);
      for (const c of controls) c.checked = want.includes(c.value);
      const box = first.closest("fieldset") || first.parentNode.parentNode;
      for (const v of want) {
        if (controls.some((c) => c.value === v)) continue;
        const extra = el("input", { type: "checkbox", name: first.name, value: v });
        extra.checked = true;
        box.appendChild(el("label", { class: "unknown" }, [extra, el("span", { text: v })]));
      }
    } else if (first.tagName === "SELECT") {
      if (value && ![...first.options].some((o) => o.value === value))
        first.appendChild(el("option", { value: value, text: value, class: "unknown" }));
      first.value = value || (first.options[0]?.value ?? "");
    } else {
      first.value = value;
    }
  }

  function fromUrl(filters) {
    filters.querySelectorAll(".unknown").forEach((n) => n.remove());
    const query = new URLSearchParams(window.location.search);
    for (const [name, controls] of groups(filters)) setValue(controls, query.get(name) ?? "");
  }

  function toUrl(filters) {
    const query = new URLSearchParams(window.location.search);
    for (const [name, controls] of groups(filters)) {
      const value = valueOf(controls);
      if (value) query.set(name, value); else query.delete(name);
    }
    const search = query.toString() ? "?" + query : "";
    if (search !== window.location.search)
      window.history.pushState(null, "", window.location.pathname + search);
  }

  // what the filters ask for, blank ones left out
  function query(filters, extra) {
    const q = new URLSearchParams();
    for (const [name, controls] of groups(filters)) {
      const value = valueOf(controls);
      if (value) q.set(name, value);
    }
    for (const [k, v] of Object.entries(extra || {})) if (v !== undefined && v !== null) q.set(k, v);
    return q;
  }

  // Fill the filters from the URL, then keep the page fresh: fetch url with the filters and
  // render it at once, when the filters change (the URL follows) and every `every` ms (0:
  // never). One request at a time; one asked for meanwhile runs right after.
  // `adjust(query)`: the page's own changes to what is asked for (not to the URL).
  function poll(filters, url, render, every, adjust) {
    fromUrl(filters);
    let busy = false, again = false, typing = null, failed = false;
    async function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const q = query(filters);
        if (adjust) adjust(q);
        const r = await fetch(url + "?" + q, { credentials: "same-origin" });
        if (r.status === 401) { window.location.assign("/login"); return; }
        const data = await r.json();
        if (!r.ok) {
          failed = true;
          say(typeof data.detail === "string" ? data.detail : "HTTP " + r.status, true);
          return;
        }
        if (failed) { failed = false; say("", false); }  // the filters were corrected
        render(data);
      } catch (err) {
        failed = true;
        say("could not reach the server: " + err, true);
      } finally {
        busy = false;
        if (again) { again = false; refresh(); }
      }
    }
    filters.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => toUrl(filters), 300);
      refresh();
    });
    filters.addEventListener("change", () => { clearTimeout(typing); toUrl(filters); });
    filters.addEventListener("submit", (e) => { e.preventDefault(); toUrl(filters); refresh(); });
    window.addEventListener("popstate", () => { fromUrl(filters); refresh(); });
    api.refresh = refresh;
    refresh();
    if (every) setInterval(refresh, every);
    return refresh;
  }

  async function getJson(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { window.location.assign("/login"); throw new Error("logged out"); }
    const data = await r.json().catch(() => ({ detail: r.statusText }));
    if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : "HTTP " + r.status);
    return data;
  }

  const api = { csrf, shown, el, svg, duration, span, pretty, when, said, changes, changeList,
                form, say, poll, query, getJson, fromUrl, toUrl, refresh: () => {} };
  return api;
})();
