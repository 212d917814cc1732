// The agent inbox's rendering, a part of the inbox page (loaded after staff.js, before inbox.js):
// the conversation lists, and the open conversation's head, context and timeline. Every text from
// the server is set as text (Staff.el), never as HTML. InboxView(state, t, openConversation)
// returns the render functions inbox.js and inbox_live.js call when the state changes.
"use strict";

window.InboxView = function (state, t, openConversation) {
  const $ = (id) => document.getElementById(id);
  const el = Staff.el;
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

  // --- lists ---------------------------------------------------------------------------------
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

  return { renderList, renderHead, updateHint, renderContext, renderTimeline, mine };
};
