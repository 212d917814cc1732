// The help-centre editor: plain JavaScript, no build step, against /api/editor (README, "Editors'
// workspace"). Every text is rendered with textContent; the Markdown preview builds DOM nodes and
// links only http(s) and relative addresses. State-changing requests carry the session's CSRF token.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { texts: {}, lang: "en", me: null, csrf: null, meta: null, list: [], article: null,
                  questions: [], tab: "edit", isNew: false };

  const t = Staff.translator(state);  // shared helpers: bot/web/staff/staff.js
  const el = Staff.el;
  function applyTexts() { Staff.applyTexts(state, t); }
  function when(iso) {
    return iso ? new Date(iso).toLocaleString(state.lang === "de" ? "de-DE" : "en-GB") : "";
  }

  function api(method, path, body, raw) {
    return Staff.api(state, method, path, body, { raw, onUnauthorized: signedOut });
  }
  function showError(id, err) { $(id).textContent = err ? t("error", { message: err.message || String(err) }) : ""; }

  // --- Markdown preview (a safe subset: headings, paragraphs, lists, bold, italic, links) ------
  function inline(parent, text) {
    const re = /\*\*([^*]+)\*\*|\*([^*]+)\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
    let last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) parent.appendChild(el("strong", null, m[1]));
      else if (m[2] !== undefined) parent.appendChild(el("em", null, m[2]));
      else if (/^(https?:\/\/|\/)/i.test(m[4])) { const a = el("a", null, m[3]); a.href = m[4]; a.rel = "noopener"; parent.appendChild(a); }
      else parent.appendChild(document.createTextNode(m[0]));
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }
  function renderMarkdown(target, md) {
    target.replaceChildren();
    let para = [], list = null;
    const flush = () => {
      if (para.length) { const p = el("p"); inline(p, para.join(" ")); target.appendChild(p); para = []; }
      list = null;
    };
    for (const line of String(md || "").split("\n")) {
      const h = /^(#{1,4})\s+(.*)$/.exec(line), item = /^\s*([-*]|\d+\.)\s+(.*)$/.exec(line);
      if (!line.trim()) { flush(); continue; }
      if (h) { flush(); const e = el("h" + (h[1].length + 1)); inline(e, h[2]); target.appendChild(e); continue; }
      if (item) {
        if (para.length) flush();
        const kind = /\d/.test(item[1]) ? "ol" : "ul";
        if (!list || list.tagName.toLowerCase() !== kind) { list = el(kind); target.appendChild(list); }
        const li = el("li"); inline(li, item[2]); list.appendChild(li); continue;
      }
      list = null; para.push(line.trim());
    }
    flush();
  }

  // --- signing in ----------------------------------------------------------------------------
  function signedOut() { Staff.signedOutView(state); }
  async function signedIn(data) {
    if (!Staff.signedInView(state, data, ["editor", "admin"])) return;
    state.meta = await api("GET", "/api/editor/meta");
    fillSelect($("filter-locale"), state.meta.languages, true);
    fillSelect($("filter-missing"), state.meta.languages, true);
    fillSelect($("filter-status"), state.meta.statuses, true, (s) => t("status_" + s));
    fillSelect($("edit-locale"), state.meta.languages, false);
    fillSelect($("try-language"), state.meta.languages, true);
    $("app-view").hidden = false;
    showTab("edit");
    await refreshList();
  }
  function fillSelect(select, values, keepFirst, label) {
    const first = keepFirst ? select.options[0] : null;
    select.replaceChildren();
    if (first) select.appendChild(first);
    for (const v of values) { const o = el("option", null, label ? label(v) : v); o.value = v; select.appendChild(o); }
  }

  // --- the list ------------------------------------------------------------------------------
  async function refreshList() {
    const q = new URLSearchParams();
    for (const [key, id] of [["q", "filter-q"], ["locale", "filter-locale"], ["status", "filter-status"],
                             ["tag", "filter-tag"], ["missing", "filter-missing"]]) {
      if ($(id).value) q.set(key, $(id).value);
    }
    q.set("limit", "500");
    const data = await api("GET", "/api/editor/articles?" + q.toString());
    state.list = data.articles;
    $("list-count").textContent = t("count", { n: data.total });
    const ul = $("article-list");
    ul.replaceChildren();
    for (const a of data.articles) {
      const b = el("button");
      b.type = "button";
      b.appendChild(el("span", "title", a.title));
      b.appendChild(el("span", "badge", a.locale));
      b.appendChild(el("span", "badge " + a.status, t("status_" + a.status)));
      if (a.missing_locales.length) b.appendChild(el("div", "missing", t("missing_locales", { list: a.missing_locales.join(", ") })));
      if (state.article && state.article.id === a.id) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => openArticle(a.id));
      const li = el("li"); li.dataset.id = a.id; li.appendChild(b); ul.appendChild(li);
    }
  }

  // --- one article ---------------------------------------------------------------------------
  async function openArticle(id) {
    try { show((await api("GET", "/api/editor/articles/" + encodeURIComponent(id))).article); }
    catch (err) { showError("edit-error", err); }
  }
  function show(article, message) {
    state.article = article; state.isNew = false;
    const v = article.head;
    $("edit-empty").hidden = true; $("edit-form").hidden = false; $("conflict").hidden = true;
    $("edit-locale").value = article.locale; $("edit-locale").disabled = true;
    $("edit-title").value = v.title; $("edit-tags").value = (v.tags || []).join(", "); $("edit-body").value = v.body;
    state.questions = (v.questions || []).slice();
    renderQuestions(); renderMarkdown($("edit-preview"), v.body); renderTranslations(article);
    $("edit-meta").textContent = statusLine(article, message);
    $("edit-error").textContent = "";
    const s = article.status;
    $("submit-button").hidden = s !== "draft";
    $("approve-button").hidden = $("reject-button").hidden = s !== "in_review";
    $("publish-button").hidden = !article.can_publish;
    $("unpublish-button").hidden = !article.published_version;
    $("archive-button").hidden = s === "archived";
    refreshList().catch(() => {});
    if (state.tab === "history") loadHistory();
  }
  // One line, built from the article's state, so that it never contradicts itself: what is live (and
  // what is scheduled), the outcome of the last action, and why publishing is blocked only while there
  // is something new to publish.
  function statusLine(article, message) {
    const v = article.head;
    const headLive = article.published_version === article.head_version;
    const live = article.published_version ? t("live", { n: article.published_version }) : t("not_live");
    const parts = [t("meta", { head: article.head_version, status: t("status_" + article.status), live,
                              who: (v.author && v.author.name) || "—" })];
    if (article.publish_at) parts.push(t("scheduled", { at: when(article.publish_at) }));
    if (message) parts.push(message);
    if (article.publish_blocker && !headLive) {
      parts.push(t("blocker", { why: article.publish_blocker.replace(/^cannot publish:\s*/i, "") }));
    }
    return parts.length > 1 ? parts[0] + ". " + parts.slice(1).join(" ") : parts[0];
  }
  function newArticle() {
    state.article = null; state.isNew = true;
    $("edit-empty").hidden = true; $("edit-form").hidden = false; $("conflict").hidden = true;
    $("edit-locale").disabled = false; $("edit-title").value = ""; $("edit-tags").value = ""; $("edit-body").value = "";
    state.questions = []; renderQuestions(); renderMarkdown($("edit-preview"), ""); $("translations").replaceChildren();
    $("edit-meta").textContent = t("new_title"); $("edit-error").textContent = "";
    for (const id of ["submit-button", "approve-button", "reject-button", "publish-button", "unpublish-button", "archive-button"]) $(id).hidden = true;
    showTab("edit"); $("edit-title").focus();
  }
  // Enter in the box adds the question (a text box in a form would otherwise save the article);
  // Save adds one still typed there too, so it is never lost.
  function addQuestion() {
    const box = $("question-new"), q = box.value.trim();
    if (!q) return;
    if (!state.questions.some((x) => x.toLowerCase() === q.toLowerCase())) state.questions.push(q);
    box.value = "";
    renderQuestions();
  }
  function renderQuestions() {
    const ul = $("question-list");
    ul.replaceChildren();
    state.questions.forEach((q, i) => {
      const li = el("li", null, q + " ");
      const b = el("button", null, t("remove"));
      b.type = "button"; b.setAttribute("aria-label", t("remove") + ": " + q);
      b.addEventListener("click", () => { state.questions.splice(i, 1); renderQuestions(); });
      li.appendChild(b); ul.appendChild(li);
    });
  }
  function renderTranslations(article) {
    const box = $("translations");
    box.replaceChildren(el("strong", null, t("translations") + ": "));
    for (const tr of article.translations || []) {
      const b = el("button", "link", tr.locale + " (" + t("status_" + tr.status) + ")");
      b.type = "button"; b.addEventListener("click", () => openArticle(tr.id)); box.appendChild(b);
    }
    for (const loc of article.missing_locales || []) {
      const b = el("button", "create-translation", t("create_translation", { locale: loc }));
      b.type = "button"; b.dataset.locale = loc;
      b.addEventListener("click", async () => {
        try {
          const created = await api("POST", "/api/editor/articles", { locale: loc, group: article.group,
            title: article.head.title, body: article.head.body, questions: [], tags: article.head.tags });
          show(created.article);
        } catch (err) { showError("edit-error", err); }
      });
      box.appendChild(b);
    }
  }
  function content() {
    return { title: $("edit-title").value, body: $("edit-body").value, questions: state.questions.slice(),
             tags: $("edit-tags").value.split(",").map((x) => x.trim()).filter(Boolean) };
  }
  async function save(ev) {
    ev.preventDefault();
    addQuestion();
    $("edit-error").textContent = ""; $("conflict").hidden = true;
    try {
      if (state.isNew) {
        const created = await api("POST", "/api/editor/articles", Object.assign({ locale: $("edit-locale").value }, content()));
        show(created.article, t("saved", { n: created.article.head_version }));
      } else {
        const before = state.article.head_version;
        const data = await api("PUT", "/api/editor/articles/" + encodeURIComponent(state.article.id),
                               Object.assign({ base_version: before }, content()));
        show(data.article, data.article.head_version === before ? t("unchanged") : t("saved", { n: data.article.head_version }));
      }
    } catch (err) {
      if (err.status === 409 && err.data && err.data.current_version) {
        $("conflict-text").textContent = t("conflict", { n: err.data.current_version }); $("conflict").hidden = false;
      } else showError("edit-error", err);
    }
  }
  async function act(path, body, message) {
    $("edit-error").textContent = "";
    try {
      const data = await api("POST", "/api/editor/articles/" + encodeURIComponent(state.article.id) + "/" + path, body || {});
      show(data.article, typeof message === "function" ? message(data) : message);
    } catch (err) { showError("edit-error", err); }
  }

  // --- history -------------------------------------------------------------------------------
  async function loadHistory() {
    const ol = $("version-list");
    ol.replaceChildren(); $("diff").replaceChildren();
    if (!state.article) return;
    const id = encodeURIComponent(state.article.id);
    const data = await api("GET", "/api/editor/articles/" + id + "/versions");
    for (const v of data.versions) {
      const li = el("li", null, "v" + v.number + " · " + when(v.created_at) + " · " + ((v.author && v.author.name) || "—") + " · " + v.title + " ");
      li.dataset.version = v.number;
      const cmp = el("button", "compare", t("compare")); cmp.type = "button";
      cmp.addEventListener("click", async () => {
        const d = await api("GET", "/api/editor/articles/" + id + "/diff?from=" + v.number + "&to=" + state.article.head_version);
        const pre = $("diff"); pre.replaceChildren();
        for (const line of d.diff.split("\n")) {
          pre.appendChild(el("span", line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : null, line + "\n"));
        }
      });
      const back = el("button", "rollback", t("rollback")); back.type = "button";
      back.addEventListener("click", () => act("rollback", { version: v.number, base_version: state.article.head_version },
                                               (d) => t("rolled_back", { n: d.article.head_version, from: v.number })));
      li.appendChild(cmp); if (v.number !== state.article.head_version) li.appendChild(back);
      ol.appendChild(li);
    }
  }

  // --- test a question -----------------------------------------------------------------------
  function result(target, title, r) {
    target.replaceChildren(el("h3", null, title));
    if (!r) return;
    target.appendChild(el("p", "decision", t("decision", { d: r.decision })));
    const ol = el("ol", "hits");
    for (const h of r.hits || []) ol.appendChild(el("li", h.draft ? "draft" : null, h.title + " (" + h.locale + ") " + Number(h.score).toFixed(3) + (h.draft ? " ✎" : "")));
    if (!(r.hits || []).length) ol.appendChild(el("li", null, t("no_hits")));
    target.appendChild(ol);
  }
  async function tryQuestion(ev) {
    ev.preventDefault();
    $("try-error").textContent = "";
    const body = { question: $("try-question").value };
    if ($("try-language").value) body.language = $("try-language").value;
    if ($("try-draft").checked && (state.article || state.isNew)) {
      body.draft = Object.assign({ locale: state.article ? state.article.locale : $("edit-locale").value }, content());
      if (state.article) { body.draft.id = state.article.id; body.draft.group = state.article.group; }
    }
    try {
      const data = await api("POST", "/api/editor/try", body);
      result($("try-current"), t("current"), data.current);
      result($("try-draft-result"), t("with_draft_title"), data.with_draft);
      if (data.with_draft) $("try-draft-result").appendChild(el("p", null, data.changed ? t("changed") : t("not_changed")));
    } catch (err) { showError("try-error", err); }
  }

  // --- gaps ----------------------------------------------------------------------------------
  async function loadGaps(ev) {
    if (ev) ev.preventDefault();
    $("gaps-error").textContent = "";
    let data;
    try { data = await api("GET", "/api/editor/gaps?days=" + encodeURIComponent($("gaps-days").value || "30")); }
    catch (err) { showError("gaps-error", err); return; }
    const topics = $("gaps-topics"), coll = $("gaps-collisions"), never = $("gaps-never");
    topics.replaceChildren(); coll.replaceChildren(); never.replaceChildren();
    for (const tp of data.topics) {
      const li = el("li", "topic");
      li.appendChild(el("strong", null, tp.label));
      li.appendChild(el("div", "muted", t("topic_line", { n: tp.count, langs: tp.languages.join(", ") })));
      const ex = el("ul");
      for (const q of tp.examples) ex.appendChild(el("li", null, q));
      li.appendChild(ex);
      const b = el("button", "create-from-topic", t("create_from_topic")); b.type = "button";
      b.addEventListener("click", async () => {
        try {
          const made = await api("POST", "/api/editor/gaps/draft", { questions: tp.questions, locale: tp.languages[0] || "en" });
          showTab("edit"); show(made.article);
        } catch (err) { showError("gaps-error", err); }
      });
      li.appendChild(b); topics.appendChild(li);
    }
    for (const c of data.collisions) coll.appendChild(el("li", null, t("collision_line", { a: c.groups[0], b: c.groups[1], n: c.count, how: c.how.join(", ") })));
    for (const a of data.never_shown) never.appendChild(el("li", null, a.title + " (" + a.locale + ")"));
    for (const list of [topics, coll, never]) if (!list.children.length) list.appendChild(el("li", "muted", t("none")));
  }

  // --- import and audit ----------------------------------------------------------------------
  async function importFile(ev) {
    ev.preventDefault();
    $("import-error").textContent = ""; $("import-report").textContent = "";
    const file = $("import-file").files[0];
    if (!file) return;
    try {
      const data = await api("POST", "/api/editor/import?filename=" + encodeURIComponent(file.name), null, await file.arrayBuffer());
      const r = data.report;
      const lines = [t("import_report", { c: r.created.length, u: r.updated.length, n: r.unchanged.length, s: r.skipped.length })];
      for (const s of r.skipped) lines.push("  " + s.source + ":" + s.line + (s.id ? " (" + s.id + ")" : "") + " — " + s.reason);
      $("import-report").textContent = lines.join("\n");
      refreshList();
    } catch (err) { showError("import-error", err); }
  }
  async function loadAudit() {
    const data = await api("GET", "/api/editor/audit?limit=200");
    const body = $("audit-body");
    body.replaceChildren();
    for (const e of data.entries) {
      const tr = el("tr");
      for (const v of [when(e.at), (e.actor && e.actor.name) || "—", e.action + (e.version ? " v" + e.version : ""), e.article_id || ""]) tr.appendChild(el("td", null, v));
      body.appendChild(tr);
    }
  }

  function showTab(name) {
    state.tab = name;
    for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    for (const p of ["edit", "history", "try", "gaps", "bulk", "audit"]) $("panel-" + p).hidden = p !== name;
    if (name === "gaps") loadGaps();
    if (name === "history") loadHistory().catch((err) => showError("edit-error", err));
    if (name === "audit") loadAudit().catch(() => {});
  }

  async function start() {
    state.texts = await (await fetch("/editor/static/texts.json")).json();
    const saved = localStorage.getItem("editor-lang");
    state.lang = saved || ((navigator.language || "en").toLowerCase().startsWith("de") ? "de" : "en");
    applyTexts();
    $("lang-select").addEventListener("change", () => { state.lang = $("lang-select").value; localStorage.setItem("editor-lang", state.lang); applyTexts(); if (state.article) show(state.article); });
    Staff.bindLogin(t, api, signedIn);
    $("logout-button").addEventListener("click", async () => { try { await api("POST", "/api/inbox/logout"); } catch (e) { /* anyway */ } signedOut(); });
    $("filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); refreshList(); });
    $("new-button").addEventListener("click", newArticle);
    $("edit-form").addEventListener("submit", save);
    $("edit-body").addEventListener("input", () => renderMarkdown($("edit-preview"), $("edit-body").value));
    $("question-add").addEventListener("click", addQuestion);
    $("question-new").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.isComposing) { ev.preventDefault(); addQuestion(); }
    });
    $("conflict-reload").addEventListener("click", () => openArticle(state.article.id));
    $("submit-button").addEventListener("click", () => act("submit"));
    $("approve-button").addEventListener("click", () => act("approve"));
    $("reject-button").addEventListener("click", () => { const c = window.prompt(t("reject_comment")); if (c) act("reject", { comment: c }); });
    $("publish-button").addEventListener("click", () => {
      const at = $("publish-at").value;
      // the status line says what is live and what is scheduled; "the bot answers it now" only when it does
      act("publish", at ? { publish_at: new Date(at).toISOString() } : {},
          (d) => (d.article.published_version === d.article.head_version ? t("published_ok") : ""));
    });
    $("unpublish-button").addEventListener("click", () => act("unpublish"));
    $("archive-button").addEventListener("click", () => act("archive"));
    $("try-form").addEventListener("submit", tryQuestion);
    $("import-form").addEventListener("submit", importFile);
    $("gaps-form").addEventListener("submit", loadGaps);
    for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
    try { await signedIn(await api("GET", "/api/inbox/me")); } catch (e) { signedOut(); }
  }
  document.addEventListener("DOMContentLoaded", start);
})();
