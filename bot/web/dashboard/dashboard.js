// The managers' dashboard: plain JavaScript, no build step, against /api/admin/metrics (README,
// "Dashboard"). Charts are SVG built node by node; every text is set with textContent.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const state = { texts: {}, lang: "en", me: null, csrf: null, data: null };
  const t = Staff.translator(state);  // shared helpers: bot/web/staff/staff.js
  const el = Staff.el;

  function api(method, path, body, raw) {
    return Staff.api(state, method, path, body, { raw, onUnauthorized: signedOut });
  }
  const pct = (v) => (v === null || v === undefined ? "—" : (Math.round(v * 1000) / 10) + " %");
  const num = (v) => (v === null || v === undefined ? "—" : String(v));
  function duration(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    return (Math.round(s / 360) / 10) + " h";
  }

  // --- signing in ------------------------------------------------------------------------------
  function signedOut() { Staff.signedOutView(state); }
  async function signedIn(data) {
    if (!Staff.signedInView(state, data, ["admin"])) return;
    $("app-view").hidden = false;
    await load();
  }

  // --- loading ---------------------------------------------------------------------------------
  function query() {
    const q = new URLSearchParams();
    q.set("from", $("f-from").value); q.set("to", $("f-to").value);
    if ($("f-channel").value) q.set("channel", $("f-channel").value);
    if ($("f-language").value) q.set("language", $("f-language").value);
    return q;
  }
  async function load() {
    $("filter-error").textContent = "";
    const q = query();
    for (const table of ["summary", "daily", "conversations"]) {
      const qq = new URLSearchParams(q); qq.set("table", table);
      $("csv-" + table).href = "/api/admin/metrics.csv?" + qq.toString();
    }
    try {
      state.data = await api("GET", "/api/admin/metrics?" + q.toString());
    } catch (err) {
      $("filter-error").textContent = t("error", { message: err.message });
      return;
    }
    render();
    await loadMerges();
  }
  async function loadMerges() {
    const tb = $("merges");
    tb.replaceChildren();
    const data = await api("GET", "/api/admin/merges");
    if (!data.merges.length) { const tr = el("tr"); tr.appendChild(el("td", "empty", t("none"))); tb.appendChild(tr); return; }
    const hr = el("tr");
    for (const k of ["merged_at", "merged_contact", "kept_contact", "merge_reason", "merge_actor", ""]) hr.appendChild(el("th", null, k ? t(k) : ""));
    tb.appendChild(hr);
    for (const m of data.merges) {
      const tr = el("tr"); tr.dataset.merge = m.id;
      for (const v of [new Date(m.created_at).toLocaleString(), m.merged_contact_id.slice(0, 8), m.kept_contact_id.slice(0, 8),
                       t("merge_reason_" + m.reason), m.actor || "—"]) tr.appendChild(el("td", null, v));
      const td = el("td");
      if (m.undone_at) td.textContent = t("undone", { who: m.undone_by || "" });
      else {
        const b = el("button", null, t("undo"));
        b.type = "button";
        b.addEventListener("click", async () => {
          $("merge-error").textContent = "";
          try { await api("POST", "/api/admin/merges/" + encodeURIComponent(m.id) + "/undo"); await loadMerges(); }
          catch (err) { $("merge-error").textContent = t("error", { message: err.message }); }
        });
        td.appendChild(b);
      }
      tr.appendChild(td); tb.appendChild(tr);
    }
  }

  // --- rendering -------------------------------------------------------------------------------
  function kpi(key, value, sub) {
    const d = el("div", "kpi"); d.dataset.kpi = key;
    d.appendChild(el("span", "value", value));
    d.appendChild(el("span", "label", t("kpi_" + key)));
    if (sub) d.appendChild(el("span", "sub", sub));
    return d;
  }
  function table(id, head, rows) {
    const tb = $(id); tb.replaceChildren();
    if (!rows.length) { const tr = el("tr"); tr.appendChild(el("td", "empty", t("none"))); tb.appendChild(tr); return; }
    const hr = el("tr");
    head.forEach((h, i) => hr.appendChild(el("th", i > 0 && h.num ? "num" : null, t(h.key))));
    tb.appendChild(hr);
    for (const r of rows) {
      const tr = el("tr");
      r.forEach((cell, i) => {
        const td = el("td", head[i].num ? "num" : (cell && cell.cls) || null, cell && cell.text !== undefined ? cell.text : cell);
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    }
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function dailyChart(days) {
    const W = 720, H = 180, pad = 24, n = Math.max(days.length, 1);
    const max = Math.max(1, ...days.map((d) => d.conversations));
    const bw = (W - pad) / n;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H + 20}`, role: "img", "aria-label": t("daily_title") });
    days.forEach((d, i) => {
      const x = pad + i * bw, hc = (d.contained / max) * H, hh = (d.handed_off / max) * H, hn = (d.not_resolved / max) * H;
      const g = svg("g", { "data-date": d.date });
      g.appendChild(svg("title", {}, `${d.date}: ${d.conversations} (${t("contained")} ${d.contained}, ${t("handed_off")} ${d.handed_off}, ${t("not_resolved")} ${d.not_resolved})`));
      g.appendChild(svg("rect", { class: "bar-contained", x: x + 1, y: H - hc, width: Math.max(1, bw - 2), height: hc }));
      g.appendChild(svg("rect", { class: "bar-handed", x: x + 1, y: H - hc - hh, width: Math.max(1, bw - 2), height: hh }));
      g.appendChild(svg("rect", { class: "bar-unresolved", x: x + 1, y: H - hc - hh - hn, width: Math.max(1, bw - 2), height: hn }));
      root.appendChild(g);
      if (i === 0 || i === days.length - 1 || (n > 10 && i % Math.ceil(n / 6) === 0)) {
        root.appendChild(svg("text", { class: "axis", x: x, y: H + 14 }, d.date.slice(5)));
      }
    });
    root.appendChild(svg("text", { class: "axis", x: 0, y: 10 }, max));
    $("daily-chart").replaceChildren(root);
  }
  function csatChart(csat) {
    const W = 300, H = 120, keys = ["1", "2", "3", "4", "5"];
    const max = Math.max(1, ...keys.map((k) => csat.distribution[k] || 0));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H + 20}`, role: "img", "aria-label": t("csat_title") });
    keys.forEach((k, i) => {
      const v = csat.distribution[k] || 0, h = (v / max) * H, x = i * (W / 5);
      const r = svg("rect", { class: "bar-csat", x: x + 6, y: H - h, width: W / 5 - 12, height: h, "data-score": k });
      r.appendChild(svg("title", {}, `${k}: ${v}`));
      root.appendChild(r);
      root.appendChild(svg("text", { class: "axis", x: x + W / 10 - 8, y: H + 14 }, `${k}★ ${v}`));
    });
    $("csat-chart").replaceChildren(root);
  }
  function render() {
    const d = state.data;
    const k = $("kpis"); k.replaceChildren();
    k.appendChild(kpi("conversations", num(d.conversations)));
    k.appendChild(kpi("containment", pct(d.containment_rate), t("of_n", { n: d.contained })));
    k.appendChild(kpi("handoff", pct(d.handoff_rate), t("of_n", { n: d.handed_off })));
    k.appendChild(kpi("fcr", pct(d.fcr_rate)));
    k.appendChild(kpi("first_response", duration(d.first_response_seconds.median), t("p90", { v: duration(d.first_response_seconds.p90) })));
    k.appendChild(kpi("resolution", duration(d.resolution_seconds.median), t("p90", { v: duration(d.resolution_seconds.p90) })));
    k.appendChild(kpi("csat", pct(d.csat.score), t("csat_sub", { avg: num(d.csat.average), n: d.csat.responses })));
    k.appendChild(kpi("nps", num(d.nps.nps), t("responses", { n: d.nps.responses })));
    k.appendChild(kpi("unanswered", pct(d.unanswered_rate), t("n_of_questions", { n: d.unanswered, total: d.questions })));
    dailyChart(d.daily);
    csatChart(d.csat);
    $("nps-line").textContent = t("nps_line", { p: d.nps.promoters, pa: d.nps.passives, de: d.nps.detractors });
    table("reasons", [{ key: "reason" }, { key: "count", num: true }],
          Object.entries(d.handoff_reasons).map(([r, n]) => [t("reason_" + r) === "reason_" + r ? r : t("reason_" + r), n]));
    table("channels", [{ key: "dimension" }, { key: "count", num: true }],
          Object.entries(d.by_channel).map(([c, n]) => [t("channel") + ": " + c, n])
            .concat(Object.entries(d.by_language).map(([l, n]) => [t("language_filter") + ": " + l, n])));
    $("drivers").previousElementSibling.textContent = d.drivers.error ? d.drivers.error : t("drivers_hint", { n: d.drivers.questions });
    table("drivers", [{ key: "topic" }, { key: "languages" }, { key: "share", num: true }],
          d.drivers.topics.map((x) => [x.label, x.languages.join(", "), pct(x.share)]));
    table("outcomes", [{ key: "outcome" }, { key: "count", num: true }, { key: "share", num: true }],
          Object.entries(d.outcomes).map(([o, n]) => [{ text: t("outcome_" + o), cls: "outcome-" + o }, n, pct(d.conversations ? n / d.conversations : null)]));
    // every unanswered question of the figure above: the most frequent, then the rest in one row
    const other = d.unanswered_other.count ? [[{ text: t("other_questions", { n: d.unanswered_other.questions }), cls: "other" }, d.unanswered_other.count]] : [];
    table("unanswered", [{ key: "question" }, { key: "count", num: true }], d.top_unanswered.map((x) => [x.question, x.count]).concat(other));
    table("risk", [{ key: "customer" }, { key: "level" }, { key: "score", num: true }, { key: "reasons" }],
          d.at_risk.map((x) => [x.name || x.email || x.contact_id.slice(0, 8),
                                { text: t("level_" + x.level), cls: "level-" + x.level }, x.score,
                                x.signals.map((s) => s.reason).join("; ")]));
    table("churn", [{ key: "period" }, { key: "customers_start", num: true }, { key: "customers_end", num: true },
                    { key: "new_customers", num: true }, { key: "lost", num: true }, { key: "simple_churn", num: true },
                    { key: "adjusted_churn", num: true }],
          d.churn.map((c) => [c.period_start + " – " + c.period_end, c.customers_start, c.customers_end, c.new_customers,
                              c.lost, pct(c.simple_churn), pct(c.adjusted_churn)]));
  }

  // --- customer counts -------------------------------------------------------------------------
  async function saveCount(ev) {
    ev.preventDefault();
    $("count-error").textContent = "";
    try {
      await api("POST", "/api/admin/customer-counts", {
        period_start: $("c-start").value, period_end: $("c-end").value,
        customers_start: parseInt($("c-cstart").value, 10), customers_end: parseInt($("c-cend").value, 10),
        new_customers: parseInt($("c-new").value || "0", 10) });
      await load();
    } catch (err) { $("count-error").textContent = t("error", { message: err.message }); }
  }
  async function importCounts(ev) {
    ev.preventDefault();
    $("count-error").textContent = "";
    const file = $("c-file").files[0];
    if (!file) return;
    try {
      const out = await api("POST", "/api/admin/customer-counts/import", null, await file.arrayBuffer());
      $("count-error").textContent = t("imported", { n: out.imported });
      await load();
    } catch (err) { $("count-error").textContent = t("error", { message: err.message }); }
  }

  // --- start -----------------------------------------------------------------------------------
  async function start() {
    state.texts = await (await fetch("/dashboard/static/texts.json")).json();
    const saved = localStorage.getItem("dashboard_lang");
    state.lang = saved && state.texts[saved] ? saved : ((navigator.language || "en").slice(0, 2) === "de" ? "de" : "en");
    Staff.applyTexts(state, t);
    const today = new Date().toISOString().slice(0, 10);
    const monthAgo = new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10);
    $("f-from").value = monthAgo; $("f-to").value = today;
    Staff.bindLogin(t, api, signedIn);
    $("filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    $("count-form").addEventListener("submit", saveCount);
    $("import-form").addEventListener("submit", importCounts);
    $("lang-select").addEventListener("change", () => {
      state.lang = $("lang-select").value; localStorage.setItem("dashboard_lang", state.lang);
      Staff.applyTexts(state, t); if (state.data) render();
    });
    $("logout-button").addEventListener("click", async () => { try { await api("POST", "/api/inbox/logout"); } catch (e) { /* signed out anyway */ } signedOut(); });
    try { await signedIn(await api("GET", "/api/inbox/me")); } catch (err) { signedOut(); }
  }
  start();
})();
