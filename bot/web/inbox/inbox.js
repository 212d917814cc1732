// The agent inbox: plain JavaScript, no build step. Every text from the server is rendered with
// textContent (never as HTML). State-changing requests carry the session's CSRF token.
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
  function ago(iso) {
    if (!iso) return "";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    if (s < 86400) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  function clock(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(state.lang === "de" ? "de-DE" : "en-GB", {
      day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
  }

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
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
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
    connect();
    loadAgents();
    refreshLists();
  }
  async function logout() {
    try { await api("POST", "/api/inbox/logout"); } catch (e) { /* signed out anyway */ }
    signedOut();
  }

  // --- real time -----------------------------------------------------------------------------
  function connect() {
    if (!state.csrf) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/api/inbox/ws?csrf=" + encodeURIComponent(state.csrf));
    state.ws = ws;
    ws.onopen = () => { state.wsRetry = 0; $("connection").hidden = true; refreshLists(); if (state.current) openConversation(state.current, true); };
    ws.onmessage = (m) => { let ev; try { ev = JSON.parse(m.data); } catch (e) { return; } onEvent(ev); };
    ws.onclose = (e) => {
      state.ws = null;
      if (!state.agent) return;
      if (e.code === 4401) { signedOut(); return; }
      $("connection").textContent = t("connecting"); $("connection").hidden = false;
      const delay = Math.min(10000, 500 * Math.pow(2, state.wsRetry++));
      setTimeout(async () => {
        try { await api("GET", "/api/inbox/me"); } catch (err) { if (err.status === 401) return; } // signed out
        if (state.agent && !state.ws) connect();
      }, delay);
    };
  }
  function onEvent(ev) {
    if (ev.type === "conversation") {
      scheduleRefresh();
      if (state.detail && ev.conversation.id === state.current) {
        const before = state.detail.conversation;
        state.detail.conversation = Object.assign({}, before, ev.conversation);
        if (before.status === "pending" && ev.conversation.status === "open" && ev.conversation.assignee
            && ev.conversation.assignee.id !== state.agent.id) {
          $("action-error").textContent = t("taken", { name: ev.conversation.assignee.name });
        }
        renderHead();
      }
    } else if (ev.type === "message" || ev.type === "note") {
      scheduleRefresh();
      const item = Object.assign({ kind: ev.type, conversation_id: ev.conversation_id }, ev.type === "message" ? ev.message : ev.note);
      if (state.early) state.early.push(item); // a conversation is loading: merged into it when it arrives
      if (state.detail && state.detail.conversations.some((c) => c.id === ev.conversation_id)) {
        if (!state.detail.timeline.some((x) => x.kind === item.kind && x.id === item.id)) {
          state.detail.timeline.push(item);
          renderTimeline();
        }
      } else if (state.detail && ev.type === "message") {
        openConversation(state.current, true); // a new conversation of this contact
      }
    } else if (ev.type === "delivery") {
      if (state.detail) {
        const m = state.detail.timeline.find((x) => x.kind === "message" && x.id === ev.message_id);
        if (m) { m.delivery_status = ev.delivery_status || (ev.delivered ? "delivered" : m.delivery_status); m.delivery_error = ev.error; renderTimeline(); }
      }
    } else if (ev.type === "agents") {
      loadAgents();
    } else if (ev.type === "resync") {
      refreshLists(); if (state.current) openConversation(state.current, true);
    }
  }
  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshLists, 150);
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
      renderList();
    } catch (err) { /* shown at the next action */ }
  }
  function renderList() {
    for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-selected", String(b.dataset.view === state.view));
    const ul = $("conversation-list");
    ul.replaceChildren();
    const rows = state.lists[state.view] || [];
    $("list-empty").hidden = rows.length > 0;
    for (const c of rows) {
      const li = el("li", "conv" + (c.id === state.current ? " selected" : ""));
      li.dataset.id = c.id;
      li.tabIndex = 0;
      const top = el("div", "conv-top");
      top.append(el("strong", "conv-name", (c.contact && (c.contact.name || c.contact.email)) || c.id.slice(0, 8)));
      if (c.priority > 0) top.append(el("span", "badge prio-" + c.priority, t("priority_" + c.priority)));
      top.append(el("span", "badge", c.channel), el("span", "badge", (c.language || "").toUpperCase()));
      li.append(top);
      const sub = el("div", "conv-sub");
      if (c.status === "pending") sub.append(el("span", "wait", t("waiting_for", { t: ago(c.queued_at) })));
      else if (c.assignee) sub.append(el("span", "", t("assigned_to", { name: c.assignee.id === state.agent.id ? t("you") : c.assignee.name })));
      else sub.append(el("span", "", t("status_" + c.status)));
      li.append(sub);
      if (c.handoff && c.handoff.summary) li.append(el("p", "conv-summary", c.handoff.summary));
      li.addEventListener("click", () => openConversation(c.id));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") openConversation(c.id); });
      ul.append(li);
    }
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
    renderList(); renderHead(); renderContext(); renderTimeline(keepScroll);
    if (!keepScroll) { $("canned-results").replaceChildren(); $("canned-query").value = ""; }
  }
  function mine(c) { return c.status === "open" && c.assignee && c.assignee.id === state.agent.id; }
  function renderHead() {
    const c = state.detail.conversation;
    $("detail-title").textContent = (c.contact && (c.contact.name || c.contact.email)) || c.id.slice(0, 8);
    const meta = [t("status_" + c.status), c.channel, (c.language || "").toUpperCase()];
    if (c.assignee) meta.push(t("assigned_to", { name: c.assignee.id === state.agent.id ? t("you") : c.assignee.name }));
    if (c.status === "pending" && c.position) meta.push("#" + c.position);
    $("detail-meta").textContent = meta.filter(Boolean).join(" · ");
    const isAdmin = state.agent.role === "admin";
    $("claim-button").hidden = c.status !== "pending";
    $("transfer-box").hidden = !(c.status === "open" && (mine(c) || isAdmin));
    $("handback-button").hidden = !(c.status === "pending" || (c.status === "open" && (mine(c) || isAdmin)));
    $("resolve-button").hidden = $("handback-button").hidden;
    const sel = $("transfer-select");
    sel.replaceChildren();
    for (const a of state.agents) {
      if (c.assignee && a.id === c.assignee.id) continue;
      const o = el("option", "", a.name + (a.online ? " (" + t("online") + ")" : ""));
      o.value = a.id; sel.append(o);
    }
    const reply = document.querySelector("input[name=mode][value=reply]");
    const canReply = mine(c);
    reply.disabled = !canReply;
    if (!canReply) document.querySelector("input[name=mode][value=note]").checked = true;
    else if (!state.noteChosen) reply.checked = true;
    updateHint();
  }
  function updateHint() {
    const c = state.detail.conversation;
    const mode = document.querySelector("input[name=mode]:checked").value;
    let hint;
    if (mode === "note") hint = c.status === "open" && !mine(c) && c.assignee ? t("hint_not_yours", { name: c.assignee.name }) + " " + t("hint_note") : t("hint_note");
    else hint = c.channel === "rest" ? t("hint_rest") : t("hint_reply", { channel: c.channel });
    if (c.status === "pending" && mode === "note") hint = t("hint_claim_first") + " " + hint;
    $("composer-hint").textContent = hint;
    $("composer").classList.toggle("note-mode", mode === "note");
  }
  function renderContext() {
    const c = state.detail.conversation, h = c.handoff, risk = state.detail.churn_risk;
    const riskBox = $("churn-risk");
    riskBox.hidden = !risk || risk.level === "none";
    if (risk && risk.level !== "none") {
      riskBox.className = "churn-risk level-" + risk.level;
      riskBox.replaceChildren(el("strong", "", t("churn_risk", { level: t("risk_" + risk.level), score: risk.score })));
      const ul = el("ul");
      for (const s of risk.signals) ul.append(el("li", "", s.reason));
      riskBox.append(ul);
    }
    if ($("confirm-email").dataset.conversation !== c.id) {  // a newly opened conversation
      $("confirm-email").dataset.conversation = c.id;
      $("confirm-email").value = ((h && h.captured && h.captured.email) || (c.contact && c.contact.email) || "");
      $("confirm-email-result").textContent = "";
    }
    $("context").hidden = !h;
    if (!h) return;
    $("context-summary").textContent = h.summary || "";
    const dl = $("context-fields");
    dl.replaceChildren();
    const add = (k, v) => { if (v === undefined || v === null || v === "") return; dl.append(el("dt", "", t(k)), el("dd", "", v)); };
    add("reason", h.reason);
    add("sentiment", h.sentiment);
    const cap = h.captured || {};
    add("captured_name", cap.name || (c.contact && c.contact.name));
    add("captured_email", cap.email || (c.contact && c.contact.email));
    add("captured_order_number", cap.order_number);
    add("channel", c.channel);
    add("languages", (c.language || "").toUpperCase());
    if (h.after_hours) dl.append(el("dt", "", "⏰"), el("dd", "", t("after_hours")));
    const ul = $("context-articles");
    ul.replaceChildren();
    if (h.articles && h.articles.length) {
      ul.append(el("li", "label", t("articles_shown")));
      for (const a of h.articles) ul.append(articleItem(a));
    }
  }
  function articleItem(a) {
    const li = el("li");
    if (a.link) {
      const link = el("a", "", a.title || a.group);
      link.href = a.link; link.target = "_blank"; link.rel = "noopener noreferrer";
      li.append(link);
    } else li.textContent = a.title || a.group || "";
    return li;
  }
  function renderTimeline(keepScroll) {
    const ol = $("timeline");
    const nearBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 80;
    ol.replaceChildren();
    const convs = state.detail.conversations;
    let lastConv = null;
    for (const item of state.detail.timeline) {
      if (item.conversation_id !== lastConv) {
        const conv = convs.find((x) => x.id === item.conversation_id);
        if (conv) {
          const label = conv.id === state.current ? t("new_conversation", { channel: conv.channel }) : t("other_conversation", { channel: conv.channel });
          ol.append(el("li", "divider", label + " · " + clock(conv.created_at)));
        }
        lastConv = item.conversation_id;
      }
      ol.append(timelineItem(item));
    }
    if (!keepScroll || nearBottom) ol.scrollTop = ol.scrollHeight;
  }
  function timelineItem(item) {
    if (item.kind === "event") {
      const d = item.data || {};
      let text;
      if (item.type === "status") text = t("event_status", { from: t("status_" + d.from), to: t("status_" + d.to) });
      else if (item.type === "assigned") text = t(d.transfer ? "event_transfer" : "event_assigned", { name: d.agent_name || "" });
      else if (item.type === "handoff") text = t("event_handoff", { reason: d.reason || "" });
      else text = t("event_" + item.type);
      return el("li", "event", text + " · " + clock(item.created_at));
    }
    if (item.kind === "note") {
      const li = el("li", "msg note");
      li.append(el("div", "who", t("role_note") + " · " + ((item.agent && item.agent.name) || "") + " · " + clock(item.created_at)));
      li.append(el("div", "text", item.text));
      return li;
    }
    const role = item.sender_type;
    const li = el("li", "msg " + role + (item.direction === "in" ? " in" : " out"));
    li.dataset.id = item.id;
    let who = t("role_" + role);
    if (role === "agent" && item.agent && item.agent.name) who = item.agent.name;
    let status = "";
    if (role === "agent") status = item.delivery_status === "failed" ? " · " + t("delivery_failed") : (item.delivery_status ? " · " + item.delivery_status : "");
    li.append(el("div", "who", who + " · " + clock(item.created_at) + status));
    if (item.sentiment && (item.sentiment.severity === "high" || item.sentiment.severity === "medium")) {
      li.classList.add("upset-" + item.sentiment.severity);
      li.lastChild.append(el("span", "feeling " + item.sentiment.severity, t("upset_" + item.sentiment.severity)));
    }
    if (item.clicked) {  // a button the customer clicked: its title, marked as a click
      const text = el("div", "text clicked");
      text.append(el("span", "chip", item.text || ""), el("span", "hint", t("clicked_button")));
      li.append(text);
    } else li.append(el("div", "text", item.text || ""));
    if (item.buttons && item.buttons.length) {
      const b = el("div", "buttons");
      for (const x of item.buttons) b.append(el("span", "chip", x.title || ""));
      li.append(b);
    }
    if (item.articles && item.articles.length) {
      const src = el("ul", "sources");
      src.append(el("li", "label", t("sources")));
      for (const a of item.articles) src.append(articleItem(a));
      li.append(src);
    }
    return li;
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
  // confirmed address (bot/identity.py); the timeline then shows both.
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
      stopTyping();
      $("action-error").textContent = "";
    } catch (err) { showError("action-error", err); }
    finally { $("send-button").disabled = false; }
  }
  function typing() {
    const mode = document.querySelector("input[name=mode]:checked").value;
    if (mode !== "reply" || !state.ws || !state.detail || !mine(state.detail.conversation)) return;
    const now = Date.now();
    if (now - state.typingSent > 3000) {
      state.typingSent = now;
      state.ws.send(JSON.stringify({ type: "typing", conversation_id: state.current, on: true }));
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, 4000);
  }
  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.typingSent && state.ws && state.current) {
      state.ws.send(JSON.stringify({ type: "typing", conversation_id: state.current, on: false }));
    }
    state.typingSent = 0;
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
      if (state.detail) renderHead();
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
      applyTexts(); renderList(); if (state.detail) { renderHead(); renderContext(); renderTimeline(true); }
    });
    Staff.bindLogin(t, api, signedIn);
    $("logout-button").addEventListener("click", logout);
    $("admin-button").addEventListener("click", () => { $("admin-dialog").showModal(); renderAdmin(); });
    $("add-agent-form").addEventListener("submit", addAgent);
    for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => { state.view = b.dataset.view; renderList(); refreshLists(); });
    $("claim-button").addEventListener("click", () => act("claim"));
    $("transfer-button").addEventListener("click", () => { if ($("transfer-select").value) act("transfer", { agent_id: $("transfer-select").value }); });
    $("handback-button").addEventListener("click", () => act("handback"));
    $("resolve-button").addEventListener("click", () => act("resolve"));
    $("composer").addEventListener("submit", send);
    $("confirm-email-form").addEventListener("submit", confirmEmail);
    $("composer-text").addEventListener("input", typing);
    $("composer-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(e); });
    for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", () => { state.noteChosen = r.value === "note" && r.checked; updateHint(); });
    $("canned-form").addEventListener("submit", searchCanned);
    setInterval(() => { if (state.agent) renderList(); }, 30000); // waiting times
    try { signedIn(await api("GET", "/api/inbox/me")); } catch (e) { signedOut(); }
  }
  start();
})();
