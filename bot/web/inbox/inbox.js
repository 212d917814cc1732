// The agent inbox: plain JavaScript, no build step. Every text from the server is rendered with
// textContent (never as HTML). State-changing requests carry the session's CSRF token.
// This file holds the state, signing in, loading the lists and a conversation, the agent's actions
// and the agents' admin; the rendering is in inbox_view.js, the WebSocket and its events in
// inbox_live.js (both loaded before this file).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    texts: {}, lang: "en", agent: null, csrf: null, view: "queue", lists: {}, current: null,
    detail: null, agents: [], ws: null, wsRetry: 0, typingSent: 0, typingTimer: null, refreshTimer: null,
  };

  // --- texts (bot/web/staff/staff.js) ---------------------------------------------------------
  const t = Staff.translator(state);
  const el = Staff.el;
  function applyTexts() { Staff.applyTexts(state, t); }
  const view = InboxView(state, t, openConversation);
  const live = InboxLive(state, t, { api, signedOut, refreshLists, openConversation, loadAgents, view });

  // --- the API -------------------------------------------------------------------------------
  function api(method, path, body) {
    return Staff.api(state, method, path, body, { onUnauthorized: signedOut });
  }
  function showError(id, err) {
    $(id).textContent = err ? t("error", { message: err.message || String(err) }) : "";
  }

  // --- signing in ----------------------------------------------------------------------------
  function signedOut() {
    state.agent = null; state.csrf = null;
    live.disconnect();
    $("app-view").hidden = true; $("login-view").hidden = false;
    $("logout-button").hidden = true; $("admin-button").hidden = true; $("me").textContent = "";
    $("connection").hidden = true;
  }
  function signedIn(data) {
    state.agent = data.agent; state.csrf = data.csrf_token;
    if (!localStorage.getItem("inbox-lang") && data.agent.language) { state.lang = data.agent.language; applyTexts(); }
    $("login-view").hidden = true; $("app-view").hidden = false;
    $("logout-button").hidden = false; $("admin-button").hidden = data.agent.role !== "admin";
    $("me").textContent = data.agent.name;
    live.connect();
    loadAgents();
    refreshLists();
  }
  async function logout() {
    try { await api("POST", "/api/inbox/logout"); } catch (e) { /* signed out anyway */ }
    signedOut();
  }

  // --- lists ---------------------------------------------------------------------------------
  async function refreshLists() {
    if (!state.agent) return;
    try {
      const views = ["queue", "mine"];
      if (!views.includes(state.view)) views.push(state.view);
      const results = await Promise.all(views.map((v) => api("GET", "/api/inbox/conversations?view=" + v)));
      views.forEach((v, i) => { state.lists[v] = results[i].conversations; });
      $("count-queue").textContent = state.lists.queue.length ? String(state.lists.queue.length) : "";
      $("count-mine").textContent = state.lists.mine.length ? String(state.lists.mine.length) : "";
      view.renderList();
    } catch (err) { /* shown at the next action */ }
  }

  // --- one conversation ----------------------------------------------------------------------
  async function openConversation(id, keepScroll) {
    state.current = id;
    $("action-error").textContent = "";
    const early = [];  // messages and notes that arrive while the conversation loads
    state.early = early;
    let detail;
    try {
      detail = await api("GET", "/api/inbox/conversations/" + encodeURIComponent(id));
    } catch (err) { showError("action-error", err); return; } finally { if (state.early === early) state.early = null; }
    if (state.current !== id) return; // another conversation was opened meanwhile
    early.forEach((item) => {
      if (detail.conversations.some((c) => c.id === item.conversation_id)
          && !detail.timeline.some((x) => x.kind === item.kind && x.id === item.id)) detail.timeline.push(item);
    });
    state.detail = detail;
    $("detail-empty").hidden = true; $("detail-body").hidden = false;
    view.renderList(); view.renderHead(); view.renderContext(); view.renderTimeline(keepScroll);
    if (!keepScroll) { $("canned-results").replaceChildren(); $("canned-query").value = ""; }
  }

  // --- actions -------------------------------------------------------------------------------
  async function act(path, body) {
    $("action-error").textContent = "";
    try {
      const data = await api("POST", "/api/inbox/conversations/" + encodeURIComponent(state.current) + "/" + path, body);
      await openConversation(state.current, true);
      refreshLists();
      return data;
    } catch (err) {
      if (err.status === 409 && err.data && err.data.assignee) $("action-error").textContent = t("taken", { name: err.data.assignee.name });
      else showError("action-error", err);
      if (err.status === 409) openConversation(state.current, true);
      return null;
    }
  }
  // The agent checked the customer's address: it links this contact with one that has the same
  // confirmed address (bot/insights/identity.py); the timeline then shows both.
  async function confirmEmail(ev) {
    ev.preventDefault();
    const email = $("confirm-email").value.trim();
    if (!email || !state.current) return;
    const data = await act("confirm-email", { email });
    if (data) $("confirm-email-result").textContent = data.merged ? t("email_linked") : t("email_confirmed");
  }
  async function send(ev) {
    ev.preventDefault();
    const text = $("composer-text").value.trim();
    if (!text || !state.current) return;
    const mode = document.querySelector("input[name=mode]:checked").value;
    $("send-button").disabled = true;
    try {
      await api("POST", "/api/inbox/conversations/" + encodeURIComponent(state.current) + (mode === "note" ? "/notes" : "/reply"), { text });
      $("composer-text").value = "";
      live.stopTyping();
      $("action-error").textContent = "";
    } catch (err) { showError("action-error", err); }
    finally { $("send-button").disabled = false; }
  }
  async function searchCanned(ev) {
    ev.preventDefault();
    const q = $("canned-query").value.trim();
    const ul = $("canned-results");
    ul.replaceChildren();
    if (!q) return;
    const lang = state.detail ? (state.detail.conversation.language || "") : "";
    try {
      const data = await api("GET", "/api/inbox/canned?q=" + encodeURIComponent(q) + "&lang=" + encodeURIComponent(lang));
      for (const a of data.answers) {
        const li = el("li", "canned-item");
        li.append(el("strong", "", a.title), el("p", "", a.text));
        const btn = el("button", "", t("insert"));
        btn.type = "button";
        btn.addEventListener("click", () => {
          const box = $("composer-text");
          const link = a.link ? "\n" + (a.link.startsWith("/") ? location.origin + a.link : a.link) : "";
          box.value = (box.value ? box.value + "\n\n" : "") + a.text + link;
          box.focus();
        });
        li.append(btn);
        ul.append(li);
      }
    } catch (err) { ul.append(el("li", "error", t("error", { message: err.message }))); }
  }

  // --- agents (admin) ------------------------------------------------------------------------
  async function loadAgents() {
    try {
      state.agents = (await api("GET", "/api/inbox/agents")).agents;
      if (state.detail) view.renderHead();
      if ($("admin-dialog").open) renderAdmin();
    } catch (e) { /* ignore */ }
  }
  async function renderAdmin() {
    const tbody = $("agents-body");
    let rows;
    try { rows = (await api("GET", "/api/inbox/admin/agents")).agents; } catch (err) { showError("add-agent-error", err); return; }
    tbody.replaceChildren();
    for (const a of rows) {
      const tr = el("tr");
      tr.append(el("td", "", a.name), el("td", "", a.email), el("td", "", a.role),
        el("td", "", (a.active ? t("active") : t("disabled")) + (a.active ? " · " + t(a.online ? "online" : "offline") : "")));
      const td = el("td");
      if (a.id !== state.agent.id) {
        const b = el("button", "", a.active ? t("disable") : t("enable"));
        b.type = "button";
        b.addEventListener("click", async () => {
          try { await api("POST", "/api/inbox/admin/agents/" + encodeURIComponent(a.id) + (a.active ? "/disable" : "/enable")); renderAdmin(); }
          catch (err) { showError("add-agent-error", err); }
        });
        td.append(b);
      }
      tr.append(td);
      tbody.append(tr);
    }
  }
  async function addAgent(ev) {
    ev.preventDefault();
    $("add-agent-error").textContent = "";
    try {
      await api("POST", "/api/inbox/admin/agents", {
        name: $("new-name").value, email: $("new-email").value, password: $("new-password").value,
        role: $("new-role").value, language: $("new-language").value });
      $("add-agent-form").reset();
      renderAdmin();
    } catch (err) { showError("add-agent-error", err); }
  }

  // --- start ---------------------------------------------------------------------------------
  async function start() {
    try { state.texts = await (await fetch("/inbox/static/texts.json")).json(); } catch (e) { state.texts = {}; }
    const saved = localStorage.getItem("inbox-lang");
    state.lang = saved || ((navigator.language || "en").toLowerCase().startsWith("de") ? "de" : "en");
    if (!state.texts[state.lang]) state.lang = "en";
    applyTexts();
    $("lang-select").addEventListener("change", () => {
      state.lang = $("lang-select").value; localStorage.setItem("inbox-lang", state.lang);
      applyTexts(); view.renderList(); if (state.detail) { view.renderHead(); view.renderContext(); view.renderTimeline(true); }
    });
    Staff.bindLogin(t, api, signedIn);
    $("logout-button").addEventListener("click", logout);
    $("admin-button").addEventListener("click", () => { $("admin-dialog").showModal(); renderAdmin(); });
    $("add-agent-form").addEventListener("submit", addAgent);
    for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => { state.view = b.dataset.view; view.renderList(); refreshLists(); });
    $("claim-button").addEventListener("click", () => act("claim"));
    $("transfer-button").addEventListener("click", () => { if ($("transfer-select").value) act("transfer", { agent_id: $("transfer-select").value }); });
    $("handback-button").addEventListener("click", () => act("handback"));
    $("resolve-button").addEventListener("click", () => act("resolve"));
    $("composer").addEventListener("submit", send);
    $("confirm-email-form").addEventListener("submit", confirmEmail);
    $("composer-text").addEventListener("input", live.typing);
    $("composer-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(e); });
    for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", () => { state.noteChosen = r.value === "note" && r.checked; view.updateHint(); });
    $("canned-form").addEventListener("submit", searchCanned);
    setInterval(() => { if (state.agent) view.renderList(); }, 30000); // waiting times
    try { signedIn(await api("GET", "/api/inbox/me")); } catch (e) { signedOut(); }
  }
  start();
})();