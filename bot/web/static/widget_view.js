/*
 * The widget's rendering, a part of widget.js (the gateway puts it in): the launcher and the panel in
 * a Shadow DOM styled by widget.css, the messages (text set as text; bold and links built as
 * elements, never parsed as HTML), quick replies, the unread badge, the status line, alerts, the
 * typing indicator, opening and closing. It knows nothing of the connection: it reports what the
 * customer does (hooks.opened(), hooks.send(text, title) -> whether it was taken) and which of the
 * customer's messages it saw stored (hooks.stored(clientId)), and shows what it is told.
 *
 * createView({ ds: the script tag's dataset, lang, tr, styles, store: { get, set }, hooks })
 */
function createView({ ds, lang, tr, styles, store, hooks }) {
  const ICON_CHAT = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/></svg>';
  const ICON_CLOSE = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" d="M6 6l12 12M18 6L6 18"/></svg>';
  const ICON_SEND = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M3.4 20.4l17.45-7.48a1 1 0 0 0 0-1.84L3.4 3.6a.99.99 0 0 0-1.39.91L2 9.12c0 .5.37.93.87.99L17 12 2.87 13.88c-.5.07-.87.5-.87 1l.01 4.61c0 .71.73 1.2 1.39.91z"/></svg>';

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "html") e.innerHTML = attrs[k]; // only our own constant icons
      else e.setAttribute(k, attrs[k]);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  // ---- the elements ----
  const host = el("div", { "data-support-widget": "" });
  const shadow = host.attachShadow({ mode: "open" });
  const root = el("div", { class: "root" + (ds.position === "left" ? " left" : ""), lang });
  for (const [attr, prop] of [["color", "--c"], ["textColor", "--ct"]]) {
    const v = ds[attr];
    if (v && window.CSS && CSS.supports("color", v)) root.style.setProperty(prop, v);
  }

  const badge = el("span", { class: "badge", "aria-hidden": "true", hidden: "" });
  const launcher = el("button", { class: "launcher", type: "button", "aria-expanded": "false",
                                  "aria-controls": "sw-panel", "aria-label": tr("widget_launcher"),
                                  html: ICON_CHAT });
  launcher.appendChild(badge);
  const title = el("h2", { id: "sw-title", text: ds.title || tr("widget_title") });
  const closeBtn = el("button", { class: "close", type: "button", "aria-label": tr("widget_close"),
                                  html: ICON_CLOSE });
  const status = el("div", { class: "status", role: "status", hidden: "" });
  const alertBox = el("p", { class: "alert", role: "alert", hidden: "" });
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
                          "aria-label": tr("widget_conversation") });
  const typing = el("div", { class: "typing", role: "status", "aria-label": tr("widget_typing"), hidden: "" },
                    [el("span"), el("span"), el("span")]);
  const scroller = el("div", { class: "scroll" }, [log, typing]);
  const input = el("textarea", { rows: "1", "aria-label": tr("widget_message_label"),
                                 placeholder: tr("widget_placeholder"), maxlength: "4000" });
  const sendBtn = el("button", { class: "send", type: "submit", "aria-label": tr("widget_send"), html: ICON_SEND });
  const form = el("form", { novalidate: "" }, [input, sendBtn]);
  const panel = el("section", { class: "panel", id: "sw-panel", role: "dialog", "aria-labelledby": "sw-title",
                                hidden: "" },
                   [el("header", {}, [title, closeBtn]), status, alertBox, scroller, form]);
  root.append(launcher, panel);
  // A constructed stylesheet where the browser has them: a site's Content-Security-Policy needs no
  // 'unsafe-inline' in style-src for it. Otherwise (older browsers) a <style> in the shadow root.
  let adopted = false;
  try {
    if ("adoptedStyleSheets" in shadow && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(styles);
      shadow.adoptedStyleSheets = [sheet];
      adopted = true;
    }
  } catch (e) { /* not supported: fall back */ }
  if (!adopted) shadow.append(el("style", { text: styles }));
  shadow.append(root);

  // ---- message text: plain text, **bold**, [label](link), URLs and /help/... paths ----
  const linkBase = ds.linkBase || location.origin;
  const TOKEN = /\*\*([^*\n]+?)\*\*|\[([^\]\n]{1,200})\]\(((?:https?:\/\/|\/)[^\s)]+)\)|(https?:\/\/[^\s<>()"]+[^\s<>()".,;:!?'])|(\/help\/[A-Za-z0-9_\-\/]+[A-Za-z0-9_\-])/g;

  function safeHref(raw) {
    try {
      const u = new URL(raw, linkBase);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch (e) { return null; }
  }

  function link(label, href) {
    const safe = safeHref(href);
    if (!safe) return document.createTextNode(label);
    return el("a", { href: safe, target: "_blank", rel: "noopener noreferrer", text: label });
  }

  function renderText(parent, text) {
    let last = 0;
    TOKEN.lastIndex = 0;
    for (let m; (m = TOKEN.exec(text)); ) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) parent.appendChild(el("strong", { text: m[1] }));
      else if (m[2] !== undefined) parent.appendChild(link(m[2], m[3]));
      else parent.appendChild(link(m[4] || m[5], m[4] || m[5]));
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // ---- state ----
  let isOpen = false;
  let lastSeen = null; // id of the last server message shown
  let maxChars = 4000;
  let unread = 0;
  const byServerId = new Map();
  const byClientId = new Map();

  // ---- messages ----
  const ROLE_LABEL = { customer: "widget_you", bot: "widget_assistant", system: "widget_assistant" };

  function bubble(role, text, opts) {
    const row = el("div", { class: "msg " + role });
    if (role === "agent") {
      // a person of the team, not the bot: named, with the initial of the name
      const name = opts && typeof opts.agent === "string" ? opts.agent.trim() : "";
      const who = el("div", { class: "who" });
      if (name) who.appendChild(el("span", { class: "avatar", "aria-hidden": "true", text: Array.from(name)[0].toUpperCase() }));
      who.appendChild(el("span", { text: name ? tr("widget_agent_named", { name }) : tr("widget_agent") }));
      who.appendChild(el("span", { class: "sr", text: ": " }));
      row.appendChild(who);
    } else {
      row.appendChild(el("span", { class: "sr", text: tr(ROLE_LABEL[role] || "widget_assistant") + ": " }));
    }
    const b = el("div", { class: "bubble" });
    if (role === "customer") b.textContent = text; else renderText(b, text || "");
    row.appendChild(b);
    if (opts && opts.buttons && opts.buttons.length) {
      const group = el("div", { class: "quick", role: "group", "aria-label": tr("widget_suggestions") });
      for (const btn of opts.buttons) {
        const q = el("button", { type: "button", text: btn.title });
        q.addEventListener("click", () => submit(btn.payload, btn.title));
        group.appendChild(q);
      }
      row.appendChild(group);
    }
    return row;
  }

  function setNote(row, text) {
    let note = row.querySelector(".note");
    if (!text) { if (note) note.remove(); return; }
    if (!note) { note = el("div", { class: "note" }); row.appendChild(note); }
    note.textContent = text;
  }

  function dropQuickReplies() {
    for (const g of log.querySelectorAll(".quick")) g.remove();
  }

  function scrollDown() { scroller.scrollTop = scroller.scrollHeight; }

  function appendRow(row) {
    // Pending messages stay last: new server messages go before the first of them.
    const firstPending = log.querySelector(".msg.pending");
    if (firstPending && !row.classList.contains("pending")) log.insertBefore(row, firstPending);
    else log.appendChild(row);
  }

  function showServerMessage(m, live) {
    if (!m || typeof m.id !== "string") return;
    lastSeen = m.id;
    if (byServerId.has(m.id)) return;
    if (m.role === "customer" && m.client_id && byClientId.has(m.client_id)) {
      confirmRow(byClientId.get(m.client_id), m.client_id, m.id);
      return;
    }
    if (m.role === "customer") dropQuickReplies();
    else if (m.buttons && m.buttons.length) dropQuickReplies();
    const row = bubble(m.role, m.text || "", { buttons: m.buttons, agent: m.agent });
    row.dataset.id = m.id;
    byServerId.set(m.id, row);
    if (m.client_id) byClientId.set(m.client_id, row);
    appendRow(row);
    if (m.role !== "customer") {
      if (isOpen && document.visibilityState !== "hidden") markRead();
      else if (live) { unread += 1; showBadge(); }
    } else if (isOpen) markRead();
    scrollDown();
  }

  // The customer's message is stored (acked, or seen in the history or another tab's echo).
  function confirmRow(row, clientId, serverId) {
    row.classList.remove("pending", "failed");
    setNote(row, null);
    if (serverId) { row.dataset.id = serverId; byServerId.set(serverId, row); }
    hooks.stored(clientId);
    // keep the confirmed message before any still pending one
    const firstPending = log.querySelector(".msg.pending");
    if (firstPending && row.compareDocumentPosition(firstPending) & Node.DOCUMENT_POSITION_PRECEDING) {
      log.insertBefore(row, firstPending);
    }
  }

  function showPending(item, sending) {
    dropQuickReplies();
    const row = bubble("customer", item.title || item.text);
    row.classList.add("pending");
    byClientId.set(item.id, row);
    log.appendChild(row);
    if (!sending) setNote(row, tr("widget_not_sent"));
    scrollDown();
    return row;
  }

  function renderHistory(messages, resume) {
    log.setAttribute("aria-busy", "true"); // screen readers: no reading out of the whole history
    if (!resume) {
      for (const row of Array.from(log.children)) if (!row.classList.contains("pending") && !row.classList.contains("greeting")) row.remove();
      byServerId.clear();
      for (const [cid, row] of Array.from(byClientId)) if (!row.classList.contains("pending")) byClientId.delete(cid);
    }
    // unread: on a resume, every new reply; on a full history, the replies after the last one read
    const readId = store.get("read");
    let readSeen = resume || !readId;
    let count = 0;
    for (const m of messages) {
      showServerMessage(m, false);
      if (!resume && m.id === readId) { readSeen = true; count = 0; }
      else if (m.role !== "customer") count += 1;
    }
    // the latest message's quick replies are the only ones still offered
    const rows = log.querySelectorAll(".msg:not(.pending)");
    rows.forEach((row, i) => { if (i < rows.length - 1) { const q = row.querySelector(".quick"); if (q) q.remove(); } });
    const lastRow = rows[rows.length - 1];
    if (lastRow && lastRow.classList.contains("customer")) dropQuickReplies();
    log.removeAttribute("aria-busy");
    if (isOpen) markRead();
    else if (readSeen && count) { unread = resume ? unread + count : count; showBadge(); }
    else if (!resume) { unread = 0; showBadge(); }
    scrollDown();
  }

  function markRead() {
    unread = 0;
    showBadge();
    if (lastSeen) store.set("read", lastSeen);
  }

  function showBadge() {
    if (unread > 0 && !isOpen) {
      badge.textContent = unread > 9 ? "9+" : String(unread);
      badge.hidden = false;
      launcher.setAttribute("aria-label", tr("widget_launcher") + ", " + tr("widget_unread", { n: unread }));
    } else {
      badge.hidden = true;
      launcher.setAttribute("aria-label", tr("widget_launcher"));
    }
  }

  let alertTimer = null;
  function showAlert(text, sticky) {
    alertBox.textContent = text;
    alertBox.hidden = false;
    clearTimeout(alertTimer);
    if (!sticky) alertTimer = setTimeout(() => { alertBox.hidden = true; }, 8000);
  }

  let connectingTimer = null;
  function setStatus(kind) {
    clearTimeout(connectingTimer);
    if (kind === "ok") { status.hidden = true; return; }
    if (kind === "connecting") {
      // only worth saying when it takes a while
      connectingTimer = setTimeout(() => { status.textContent = tr("widget_connecting"); status.hidden = false; }, 1500);
      return;
    }
    status.textContent = tr("widget_reconnecting");
    status.hidden = false;
  }

  // greeting: shown first, not stored
  const greeting = bubble("bot", ds.greeting || tr("widget_greeting"));
  greeting.classList.add("greeting");
  log.appendChild(greeting);

  // ---- open / close ----
  function open() {
    if (isOpen) return;
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    markRead();
    hooks.opened();
    scrollDown();
    input.focus();
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    showBadge();
    launcher.focus();
  }

  launcher.addEventListener("click", () => (isOpen ? close() : open()));
  closeBtn.addEventListener("click", close);
  shadow.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && isOpen) { e.stopPropagation(); close(); }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && isOpen) markRead();
  });

  // ---- what the customer sends (typed, or a quick reply's payload with its title) ----
  function submit(text, titleText) {
    text = (text || "").trim();
    if (!text) return false;
    if (text.length > maxChars) {
      showAlert(tr("widget_too_long", { n: maxChars }));
      return false;
    }
    return hooks.send(text, titleText || null);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (submit(input.value)) { input.value = ""; autosize(); }
    input.focus();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  function autosize() { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight + 2, 120) + "px"; }
  input.addEventListener("input", autosize);

  // ---- what the connection tells it ----
  return {
    mount() { document.body.appendChild(host); },
    isOpen: () => isOpen,
    lastSeen: () => lastSeen,
    status: setStatus,
    alert(key, sticky) { showAlert(tr(key), sticky); },
    setMaxChars(n) { maxChars = n; input.maxLength = n; },
    forgetRead() { store.set("read", ""); lastSeen = null; }, // a new visitor: nothing of the old one was read
    history: renderHistory,
    message(m) { showServerMessage(m, true); },
    pending: showPending,
    // marks the customer's message stored; false when it has no row here
    confirm(clientId, serverId) {
      const row = byClientId.get(clientId);
      if (row) confirmRow(row, clientId, serverId);
      return !!row;
    },
    // refused for good (too long, empty, malformed): shown as failed; false when it has no row here
    fail(clientId, tooLong) {
      const row = byClientId.get(clientId);
      if (!row) return false;
      row.classList.remove("pending");
      row.classList.add("failed");
      setNote(row, tooLong ? tr("widget_too_long", { n: maxChars }) : tr("widget_failed"));
      return true;
    },
    notSent(clientIds, yes) {
      for (const id of clientIds) { const row = byClientId.get(id); if (row) setNote(row, yes ? tr("widget_not_sent") : null); }
    },
    typing(on, by) {
      typing.setAttribute("aria-label", tr(by === "agent" ? "widget_agent_typing" : "widget_typing"));
      typing.hidden = !on;
      if (on) scrollDown();
    },
    stopTyping() { typing.hidden = true; }, // the connection dropped: nobody can be seen typing
  };
}
