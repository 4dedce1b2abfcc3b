// staso dashboard: the policy in force, its versions, and a line diff between any two
// (computed here; the two versions chosen live in the URL). Policy text is shown as text.
"use strict";
(function () {
  const { el, when, getJson, say, fromUrl, toUrl } = window.staso;
  const filters = document.getElementById("filters");
  const from = document.getElementById("diff-from"), to = document.getElementById("diff-to");
  const sources = new Map();  // version -> its text

  async function source(version) {
    if (!sources.has(version))
      sources.set(version, (await getJson("/dashboard/policy/versions/" +
                                          encodeURIComponent(version))).source || "");
    return sources.get(version);
  }

  // the longest common subsequence of lines, walked into [" "|"-"|"+", line] pairs
  function lineDiff(a, b) {
    const n = a.length, m = b.length;
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    const out = [];
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
      else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) { out.push(["-", a[i]]); i++; }
      else { out.push(["+", b[j]]); j++; }
    }
    return out;
  }

  async function showDiff() {
    const box = document.getElementById("diff"), summary = document.getElementById("diff-summary");
    if (!from.value || !to.value) { box.replaceChildren(); summary.textContent = ""; return; }
    try {
      const [a, b] = await Promise.all([source(from.value), source(to.value)]);
      const lines = lineDiff(a.split("\n"), b.split("\n"));
      const added = lines.filter((l) => l[0] === "+").length;
      const removed = lines.filter((l) => l[0] === "-").length;
      summary.textContent = "version " + from.value + " → version " + to.value + ": " +
        (added || removed ? added + " lines added, " + removed + " removed" : "identical");
      box.replaceChildren(...lines.map(([mark, line]) => el("span", {
        class: mark === "+" ? "add" : mark === "-" ? "del" : "same", text: mark + " " + line + "\n" })));
    } catch (err) {
      say(String(err.message || err), true);
    }
  }

  async function load() {
    let versions;
    try {
      versions = await getJson("/dashboard/policy/versions");
    } catch (err) {
      say(String(err.message || err), true);
      return;
    }
    versions.sort((x, y) => y.version - x.version);
    const current = versions.find((v) => v.in_force) || versions[0];
    document.getElementById("in-force").textContent = current
      ? "version " + current.version + ", installed " + when(current.created_at) +
        (current.created_by ? " by " + current.created_by : "")
      : "no policy version is stored";
    if (current) document.getElementById("policy-source").textContent = await source(current.version);
    document.querySelector("#versions tbody").replaceChildren(...versions.map((v) => el("tr", {
      "data-version": String(v.version) }, [
      el("td", { "data-label": "Version", text: String(v.version) }),
      el("td", { "data-label": "Installed", text: when(v.created_at) }),
      el("td", { "data-label": "By", text: v.created_by || "" }),
      el("td", { "data-label": "Digest", class: "id", text: String(v.digest || "").slice(0, 16) }),
      el("td", { "data-label": "", class: "in-force", text: v.in_force ? "in force" : "" })])));
    for (const select of [from, to])
      select.replaceChildren(...versions.map((v) => el("option", {
        value: String(v.version), text: "version " + v.version + (v.in_force ? " (in force)" : "") })));
    const defaults = () => {
      if (!current) return;
      const query = new URLSearchParams(window.location.search);
      if (!query.has("to")) to.value = String(current.version);
      if (!query.has("from")) {
        const older = versions.find((v) => v.version < Number(to.value));
        from.value = String((older || current).version);
      }
    };
    fromUrl(filters);
    defaults();
    filters.addEventListener("change", () => { toUrl(filters); showDiff(); });
    window.addEventListener("popstate", () => { fromUrl(filters); defaults(); showDiff(); });
    showDiff();
  }

  load();
})();
