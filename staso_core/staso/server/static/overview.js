// staso dashboard: the overview. Charts drawn here as inline SVG from the server's numbers
// (no library, no network), each with a title per mark and the same numbers as a table.
"use strict";
(function () {
  const { el, svg, duration, poll } = window.staso;
  const ACTIONS = ["allow", "modify", "escalate", "block"];
  // drawn at the width it is shown at, so its text stays legible on a phone
  let W = 600;
  function measure() {
    const box = document.getElementById("over-time");
    W = Math.max(300, Math.min(900, box.clientWidth || 600));
  }

  function chart(titleId, height, marks) {
    return svg("svg", { viewBox: "0 0 " + W + " " + height, role: "img",
                        "aria-labelledby": titleId, class: "svg-chart",
                        preserveAspectRatio: "xMidYMid meet" }, marks);
  }

  function table(caption, head, rows) {
    return el("details", { class: "as-table" }, [
      el("summary", { text: "Show as a table" }),
      el("table", { class: "data" }, [
        el("caption", { text: caption }),
        el("thead", {}, [el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))]),
        el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", { text: String(c) })))))])]);
  }

  function label(t, bucket) {
    const d = new Date(t * 1000);
    return bucket >= 86400 ? d.toLocaleDateString()
      : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // decisions over time, one bar per bucket stacked by action
  function overTime(data) {
    const series = data.series || [];
    const H = 220, top = 10, bottom = 24, left = 34;
    const total = (p) => ACTIONS.reduce((s, a) => s + (p[a] || 0), 0);
    const max = Math.max(1, ...series.map(total));
    const step = (W - left) / Math.max(1, series.length);
    const y = (v) => (H - bottom) - (v / max) * (H - bottom - top);
    const marks = [svg("title", { text: "Decisions over time, stacked by action" }),
      svg("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: "axis" }),
      svg("text", { x: left - 4, y: top + 8, "text-anchor": "end", class: "tick", text: String(max) }),
      svg("text", { x: left - 4, y: H - bottom, "text-anchor": "end", class: "tick", text: "0" })];
    series.forEach((p, i) => {
      let base = 0;
      const x = left + i * step + step * 0.1, w = Math.max(1, step * 0.8);
      for (const a of ACTIONS) {
        const n = p[a] || 0;
        if (!n) continue;
        marks.push(svg("rect", { x: x, y: y(base + n), width: w, height: y(base) - y(base + n),
                                 class: "bar-" + a },
                       [svg("title", { text: label(p.t, data.bucket_seconds) + ": " + n + " " + a })]));
        base += n;
      }
    });
    const every = Math.max(1, Math.ceil(series.length / Math.max(2, Math.floor(W / 110))));
    series.forEach((p, i) => {
      if (i % every) return;
      // a label near the right edge ends there, so it is never cut off
      const x = left + i * step + step / 2;
      const near = x > W - 60;
      marks.push(svg("text", { x: near ? W : x, y: H - 6, "text-anchor": near ? "end" : "middle",
                               class: "tick", text: label(p.t, data.bucket_seconds) }));
    });
    const legend = el("p", { class: "legend" }, ACTIONS.map((a) =>
      el("span", { class: "key key-" + a, text: a + " " + ((data.totals || {})[a] || 0) })));
    return [chart("over-time-title", H, marks), legend,
      table("Decisions over time", ["From", ...ACTIONS],
            series.filter((p) => total(p)).map((p) => [label(p.t, data.bucket_seconds),
                                                        ...ACTIONS.map((a) => p[a] || 0)]))];
  }

  // the rules that fired most, one horizontal bar each
  function topRules(data) {
    const rules = (data.top_rules || []).slice(0, 10);
    if (!rules.length) return [el("p", { class: "empty", text: "No rule fired in this period." })];
    const row = 26, H = rules.length * row + 4, left = 0;
    const max = Math.max(1, ...rules.map((r) => r.count));
    const marks = [svg("title", { text: "Top rules by decisions" })];
    const fit = Math.max(8, Math.floor((W * 0.37) / 6.5));  // characters the labels have room for
    rules.forEach((r, i) => {
      const w = (r.count / max) * (W * 0.52);
      const name = String(r.rule);
      marks.push(
        svg("rect", { x: W * 0.38, y: i * row + 4, width: Math.max(1, w), height: row - 8,
                      class: "bar-rule" },
            [svg("title", { text: name + ": " + r.count })]),
        svg("text", { x: W * 0.37, y: i * row + row / 2 + 4, "text-anchor": "end", class: "tick",
                      text: name.length > fit ? name.slice(0, fit - 1) + "…" : name }),
        svg("text", { x: W * 0.38 + w + 4, y: i * row + row / 2 + 4, class: "tick",
                      text: String(r.count) }));
    });
    return [chart("top-rules-title", H + left, marks),
      table("Top rules", ["Rule", "Decisions", "By action"], rules.map((r) => [
        r.rule, r.count, Object.entries(r.actions || {}).map(([a, n]) => a + " " + n).join(", ")]))];
  }

  // how long escalations waited for a person, as a histogram of resolution times
  function resolution(data) {
    const res = data.resolution || { count: 0, histogram: [] };
    document.getElementById("resolution-summary").textContent = res.count
      ? res.count + " answered · median " + duration(res.p50_s) + " · 90% within " +
        duration(res.p90_s) + " · longest " + duration(res.max_s) +
        " · " + (data.pending || 0) + " pending now"
      : "No escalation was answered in this period · " + (data.pending || 0) + " pending now";
    const bins = res.histogram || [];
    if (!bins.length) return [];
    const H = 180, bottom = 24, top = 10;
    const max = Math.max(1, ...bins.map((b) => b.count));
    const step = W / bins.length;
    const open = (b) => b.le === null || b.le === undefined || b.le === "inf" || b.le === "+Inf";
    const upTo = (b) => open(b) ? "longer" : "≤ " + duration(Number(b.le));
    const short = (b) => {  // the axis' own label: "≤ 15m" fits a phone
      if (open(b)) return "more";
      const s = Number(b.le);
      for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]])
        if (s >= size) return "≤ " + Math.round(s / size) + unit;
      return "≤ " + Math.round(s) + "s";
    };
    const marks = [svg("title", { text: "Escalations by time to resolution" }),
      svg("line", { x1: 0, y1: H - bottom, x2: W, y2: H - bottom, class: "axis" })];
    bins.forEach((b, i) => {
      const h = (b.count / max) * (H - bottom - top);
      marks.push(
        svg("rect", { x: i * step + step * 0.1, y: H - bottom - h, width: step * 0.8,
                      height: h, class: "bar-resolution" },
            [svg("title", { text: upTo(b) + ": " + b.count })]),
        svg("text", { x: i * step + step / 2, y: H - 6, "text-anchor": "middle", class: "tick",
                      text: short(b) }));
    });
    return [chart("resolution-title", H, marks),
      table("Escalations by time to resolution", ["Answered within", "Escalations"],
            bins.map((b) => [upTo(b), b.count]))];
  }

  function totals(data) {
    const t = data.totals || {};
    const all = ACTIONS.reduce((s, a) => s + (t[a] || 0), 0);
    return [el("div", { class: "stat" }, [el("b", { text: String(all) }), el("span", { text: "decisions" })]),
      ...ACTIONS.map((a) => el("div", { class: "stat stat-" + a }, [
        el("b", { text: String(t[a] || 0) }), el("span", { text: a })])),
      el("div", { class: "stat" }, [el("b", { text: String(data.pending || 0) }),
                                    el("span", { text: "pending" })])];
  }

  let last = null;
  function render(data) {
    last = data;
    measure();
    document.getElementById("totals").replaceChildren(...totals(data));
    document.getElementById("over-time").replaceChildren(...overTime(data));
    document.getElementById("top-rules").replaceChildren(...topRules(data));
    document.getElementById("resolution").replaceChildren(...resolution(data));
  }

  poll(document.getElementById("filters"), "/dashboard/overview", render, 30000);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (last) render(last); }, 200);
  });
})();
