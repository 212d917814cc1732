/*
 * The website chat widget. Embed it with one tag:
 *
 *   <script src="https://HOST/widget.js" data-title="Brewbox help" data-color="#7b4a2d" defer></script>
 *
 * Options (data- attributes of that tag): data-title, data-greeting, data-color, data-text-color,
 * data-position ("right" | "left"), data-language ("en" | "de" | "tr" | "ja"; else the page's
 * <html lang>, else the browser's languages), data-user-id + data-user-hash (a signed user id),
 * data-link-base (base URL of relative help-centre links; default the page's origin),
 * data-server (the gateway's URL; default where this script came from).
 *
 * Plain JavaScript, no build step, no framework. Everything lives in a Shadow DOM, so the page's
 * styles do not leak in and ours do not leak out. Message text is only ever set with
 * textContent (bold and links are built as elements), never parsed as HTML.
 * The WebSocket protocol is documented in README.md ("Embedding the website widget").
 */
(() => {
  "use strict";

  const TEXTS = /*@texts*/{};
  const LANGS = ["en", "de", "tr", "ja"];
  const script = document.currentScript;
  if (!script || window.__supportWidget) return;
  window.__supportWidget = true;

  const ds = script.dataset;
  const scriptUrl = new URL(script.src, location.href);
  // the gateway: where this script came from (its folder, so a gateway behind a path prefix works)
  const server = (ds.server || new URL(".", scriptUrl).href).replace(/\/+$/, "");
  const wsUrl = server.replace(/^http/, "ws") + "/webhooks/webchat/ws";

  function pickLanguage(candidates) {
    for (const c of candidates) {
      if (!c) continue;
      const base = String(c).trim().toLowerCase().split(/[-_]/)[0];
      if (LANGS.includes(base)) return base;
    }
    return "en";
  }
  const lang = pickLanguage([ds.language, document.documentElement.lang,
                             ...(navigator.languages || []), navigator.language]);

  function tr(key, vars) {
    const v = TEXTS[key] || {};
    let s = v[lang] || v.en || key;
    for (const k in vars || {}) s = s.split("{" + k + "}").join(String(vars[k]));
    return s;
  }

  // ---- storage (localStorage when the browser allows it, else memory) ----
  const storage = (() => {
    try {
      const k = "__support_widget_test";
      localStorage.setItem(k, "1");
      localStorage.removeItem(k);
      return localStorage;
    } catch (e) {
      const m = new Map();
      return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)),
               removeItem: (k) => m.delete(k) };
    }
  })();
  const PREFIX = "supportWidget:" + server + ":";
  const get = (k) => { try { return storage.getItem(PREFIX + k); } catch (e) { return null; } };
  const set = (k, v) => { try { storage.setItem(PREFIX + k, v); } catch (e) { /* full or blocked */ } };

  function randomId(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let visitor = get("visitor");
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(visitor || "")) visitor = null;
  const userId = ds.userId || null;
  const userHash = ds.userHash || null;

  // ---- the UI ----
  const STYLES = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .root { --c: #6b3e26; --ct: #fff; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
            "Helvetica Neue", Arial, "Noto Sans", "Noto Sans JP", sans-serif; color: #1d1d1f; }
    .launcher { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000; width: 60px; height: 60px;
                border-radius: 50%; border: 0; background: var(--c); color: var(--ct); cursor: pointer;
                box-shadow: 0 6px 20px rgba(0,0,0,.25); display: grid; place-items: center; padding: 0; }
    .left .launcher { right: auto; left: 20px; }
    .launcher svg { width: 28px; height: 28px; }
    .launcher:focus-visible, button:focus-visible, textarea:focus-visible, a:focus-visible {
      outline: 3px solid #1a73e8; outline-offset: 2px; }
    .badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px;
             border-radius: 11px; background: #d93025; color: #fff; font: 700 12px/22px system-ui, sans-serif;
             text-align: center; box-shadow: 0 0 0 2px #fff; }
    .panel { position: fixed; bottom: 92px; right: 20px; z-index: 2147483001; width: 380px;
             height: min(620px, calc(100vh - 112px)); display: flex; flex-direction: column; background: #fff;
             border-radius: 16px; overflow: hidden; box-shadow: 0 12px 48px rgba(0,0,0,.28); }
    .left .panel { right: auto; left: 20px; }
    .panel[hidden], [hidden] { display: none !important; }
    header { background: var(--c); color: var(--ct); padding: 14px 12px 14px 18px; display: flex;
             align-items: center; gap: 8px; }
    header h2 { margin: 0; font-size: 17px; font-weight: 650; flex: 1; overflow: hidden; text-overflow: ellipsis;
                white-space: nowrap; }
    .close { background: transparent; border: 0; color: inherit; width: 40px; height: 40px; border-radius: 50%;
             cursor: pointer; display: grid; place-items: center; padding: 0; }
    .close:hover { background: rgba(255,255,255,.15); }
    .close svg { width: 20px; height: 20px; }
    .status { background: #fff4ce; color: #5c4400; padding: 8px 16px; font-size: 13px;
              border-bottom: 1px solid #f0dc9c; }
    .alert { background: #fde8e7; color: #8a1c14; padding: 8px 16px; font-size: 13px; margin: 0;
             border-bottom: 1px solid #f5c2be; }
    .scroll { flex: 1; overflow-y: auto; padding: 16px 14px 8px; background: #f7f5f3;
              overscroll-behavior: contain; }
    .log { display: flex; flex-direction: column; gap: 8px; }
    .msg { display: flex; flex-direction: column; align-items: flex-start; max-width: 100%; }
    .msg.customer { align-items: flex-end; }
    .bubble { max-width: 85%; padding: 9px 13px; border-radius: 16px; background: #fff; color: #1d1d1f;
              white-space: pre-wrap; overflow-wrap: anywhere; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
    .msg.bot .bubble, .msg.agent .bubble { border-bottom-left-radius: 4px; }
    .msg.agent .bubble { border: 1.5px solid var(--c); box-shadow: none; }
    .who { display: flex; align-items: center; gap: 6px; margin: 0 0 3px 2px; font-size: 12px; font-weight: 600;
           color: #4a4a4a; }
    .avatar { width: 20px; height: 20px; border-radius: 50%; background: var(--c); color: var(--ct);
              display: grid; place-items: center; font-size: 11px; font-weight: 700; flex: none; }
    .msg.customer .bubble { background: var(--c); color: var(--ct); border-bottom-right-radius: 4px; }
    .msg.system .bubble { background: #eceae7; color: #444; font-size: 13px; }
    .msg.pending .bubble { opacity: .7; }
    .msg.failed .bubble { background: #fde8e7; color: #8a1c14; }
    .bubble a { color: inherit; text-decoration: underline; text-underline-offset: 2px; }
    .msg.bot .bubble a, .msg.agent .bubble a, .msg.system .bubble a { color: #0b57d0; }
    .note { font-size: 12px; color: #6b6b6b; margin: 2px 6px 0; }
    .msg.failed .note { color: #b3261e; }
    .quick { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; max-width: 90%; }
    .quick button { font: inherit; font-size: 14px; border: 1.5px solid var(--c); color: var(--c);
                    background: #fff; border-radius: 18px; padding: 6px 14px; cursor: pointer; min-height: 36px; }
    .quick button:hover { background: var(--c); color: var(--ct); }
    .sr { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
          clip: rect(0,0,0,0); white-space: nowrap; border: 0; }
    .typing { display: flex; gap: 4px; padding: 12px 14px; margin-top: 8px; background: #fff; width: fit-content;
              border-radius: 16px; border-bottom-left-radius: 4px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
    .typing span { width: 7px; height: 7px; border-radius: 50%; background: #9a9a9a;
                   animation: blink 1.2s infinite ease-in-out; }
    .typing span:nth-child(2) { animation-delay: .2s; }
    .typing span:nth-child(3) { animation-delay: .4s; }
    @keyframes blink { 0%, 80%, 100% { opacity: .3; transform: translateY(0); }
                       40% { opacity: 1; transform: translateY(-3px); } }
    form { display: flex; gap: 8px; padding: 10px 10px 12px; border-top: 1px solid #e6e3df; background: #fff;
           align-items: flex-end; }
    textarea { flex: 1; resize: none; font: inherit; border: 1px solid #cfcac4; border-radius: 12px;
               padding: 9px 12px; max-height: 120px; min-height: 42px; color: #1d1d1f; background: #fff; }
    .send { width: 42px; height: 42px; border-radius: 50%; border: 0; background: var(--c); color: var(--ct);
            cursor: pointer; display: grid; place-items: center; padding: 0; flex: none; }
    .send svg { width: 20px; height: 20px; }
    @media (max-width: 480px) {
      .panel, .left .panel { inset: 0; width: 100%; height: 100%; max-height: none; border-radius: 0; }
      .launcher { bottom: 16px; right: 16px; }
      .left .launcher { left: 16px; }
      textarea { font-size: 16px; }
    }
    @media (prefers-reduced-motion: reduce) { .typing span { animation: none; } }
  `;
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
      sheet.replaceSync(STYLES);
      shadow.adoptedStyleSheets = [sheet];
      adopted = true;
    }
  } catch (e) { /* not supported: fall back */ }
  if (!adopted) shadow.append(el("style", { text: STYLES }));
  shadow.append(root);

  // ---- rendering message text: plain text, **bold**, [label](link), URLs and /help/... paths ----
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
  let ws = null;
  let connected = false; // the server answered our hello on this socket
  let attempt = 0;
  let retryTimer = null;
  let connectingTimer = null;
  let lastFrameAt = 0;
  let heartbeat = null;
  const sentOn = new Map(); // client id -> the socket it was sent on (sent once per socket)
  let isOpen = false;
  let lastSeen = null; // id of the last server message shown
  let maxChars = 4000;
  let unread = 0;
  const byServerId = new Map();
  const byClientId = new Map();
  let outbox = [];
  try { outbox = JSON.parse(get("outbox") || "[]").filter((m) => m && m.id && m.text); } catch (e) { outbox = []; }
  const saveOutbox = () => set("outbox", JSON.stringify(outbox.map(({ id, text, title }) => ({ id, text, title }))));

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
        q.addEventListener("click", () => send(btn.payload, btn.title));
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
      const row = byClientId.get(m.client_id);
      confirmRow(row, m.client_id, m.id);
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

  function confirmRow(row, clientId, serverId) {
    row.classList.remove("pending", "failed");
    setNote(row, null);
    if (serverId) { row.dataset.id = serverId; byServerId.set(serverId, row); }
    outbox = outbox.filter((m) => m.id !== clientId);
    saveOutbox();
    // keep the confirmed message before any still pending one
    const firstPending = log.querySelector(".msg.pending");
    if (firstPending && row.compareDocumentPosition(firstPending) & Node.DOCUMENT_POSITION_PRECEDING) {
      log.insertBefore(row, firstPending);
    }
  }

  function showPending(item) {
    dropQuickReplies();
    const row = bubble("customer", item.title || item.text);
    row.classList.add("pending");
    byClientId.set(item.id, row);
    log.appendChild(row);
    if (!connected) setNote(row, tr("widget_not_sent"));
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
    const readId = get("read");
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
    if (lastSeen) set("read", lastSeen);
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

  // greeting: shown first, not stored
  const greeting = bubble("bot", ds.greeting || tr("widget_greeting"));
  greeting.classList.add("greeting");
  log.appendChild(greeting);
  for (const item of outbox) showPending(item);

  // ---- open / close ----
  function open() {
    if (isOpen) return;
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    markRead();
    connect();
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

  // ---- sending ----
  function send(text, titleText) {
    text = (text || "").trim();
    if (!text) return false;
    if (text.length > maxChars) {
      showAlert(tr("widget_too_long", { n: maxChars }));
      return false;
    }
    const item = { id: "c" + randomId(12), text, title: titleText || null };
    outbox.push(item);
    saveOutbox();
    showPending(item);
    flush();
    return true;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (send(input.value)) { input.value = ""; autosize(); }
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

  // ---- the connection ----

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

  function wsSend(sock, frame) {
    if (!sock || sock.readyState !== 1) return false;
    try { sock.send(JSON.stringify(frame)); return true; } catch (e) { return false; }
  }

  function flush() {
    if (!connected) return;
    for (const item of outbox) {
      if (sentOn.get(item.id) === ws) continue; // never twice on one socket; the server dedupes resends
      if (wsSend(ws, { type: "message", id: item.id, text: item.text, title: item.title || undefined })) {
        sentOn.set(item.id, ws);
      }
    }
  }

  function connect() {
    if (ws) return;
    clearTimeout(retryTimer);
    if (!visitor) { visitor = randomId(16); set("visitor", visitor); }
    setStatus(attempt === 0 ? "connecting" : "reconnecting");
    let sock;
    try { sock = new WebSocket(wsUrl); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = () => {
      lastFrameAt = Date.now();
      const hello = { type: "hello", visitor, language: lang, last_seen: lastSeen };
      if (userId || userHash) { hello.user_id = userId; hello.user_hash = userHash; }
      wsSend(sock, hello);
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(sock, f);
    };
    sock.onclose = () => { if (ws === sock) dropped(); };
    sock.onerror = () => { /* a close event follows */ };
  }

  function dropped() {
    const sock = ws;
    ws = null;
    connected = false;
    clearInterval(heartbeat);
    typing.hidden = true;
    if (sock) { sock.onclose = sock.onmessage = null; try { sock.close(); } catch (e) { /* already closed */ } }
    for (const item of outbox) { const row = byClientId.get(item.id); if (row) setNote(row, tr("widget_not_sent")); }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    setStatus("reconnecting");
    clearTimeout(retryTimer);
    // exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... capped at 15 s
    const ceiling = Math.min(15000, 500 * Math.pow(2, attempt));
    attempt = Math.min(attempt + 1, 10);
    retryTimer = setTimeout(connect, 250 + Math.random() * ceiling);
  }

  function reconnectNow() {
    if (ws || (!isOpen && !visitor)) return;
    attempt = 0;
    clearTimeout(retryTimer);
    connect();
  }
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") { reconnectNow(); if (isOpen) markRead(); }
  });

  function onFrame(sock, f) {
    switch (f.type) {
      case "ready":
        connected = true;
        attempt = 0;
        setStatus("ok");
        if (typeof f.visitor === "string" && f.visitor !== visitor) {
          visitor = f.visitor; // a new visitor (e.g. this browser's user signed out)
          set("visitor", visitor);
          set("read", "");
          lastSeen = null;
        }
        if (Number.isInteger(f.max_chars)) { maxChars = f.max_chars; input.maxLength = maxChars; }
        clearInterval(heartbeat);
        heartbeat = setInterval(() => {
          if (Date.now() - lastFrameAt > 45000) { dropped(); return; } // a half-open connection
          wsSend(sock, { type: "ping" });
        }, 20000);
        break;
      case "history":
        renderHistory(Array.isArray(f.messages) ? f.messages : [], !!f.resume);
        for (const item of outbox) { const row = byClientId.get(item.id); if (row) setNote(row, null); }
        flush();
        break;
      case "message":
        showServerMessage(f, true);
        break;
      case "ack": {
        const row = byClientId.get(f.id);
        if (row) confirmRow(row, f.id, f.message_id);
        else { outbox = outbox.filter((m) => m.id !== f.id); saveOutbox(); }
        break;
      }
      case "typing":
        typing.setAttribute("aria-label", tr(f.by === "agent" ? "widget_agent_typing" : "widget_typing"));
        typing.hidden = !f.on;
        if (f.on) scrollDown();
        break;
      case "error":
        onError(f);
        break;
      default:
        break; // pong and frames of newer servers
    }
  }

  function onError(f) {
    const row = f.id ? byClientId.get(f.id) : null;
    if (f.code === "identity_refused") {
      showAlert(tr("widget_identity_refused"), true);
    } else if (f.code === "rate_limited") {
      showAlert(tr("widget_rate_limited"));
      if (f.id) { sentOn.delete(f.id); setTimeout(flush, 1500); }
    } else if (f.code === "unavailable") {
      if (f.id) { sentOn.delete(f.id); setTimeout(flush, 3000); }
    } else if (row) {
      // refused for good (too long, empty, malformed): not resent
      outbox = outbox.filter((m) => m.id !== f.id);
      saveOutbox();
      row.classList.remove("pending");
      row.classList.add("failed");
      setNote(row, f.code === "too_long" ? tr("widget_too_long", { n: maxChars }) : tr("widget_failed"));
    }
    if (window.console && console.warn) console.warn("support widget:", f.code, f.message);
  }

  function mount() {
    document.body.appendChild(host);
    // A returning visitor (or a signed-in user) connects at once: history, unread badge, live messages.
    // A first-time visitor connects when opening the chat.
    if (visitor || userId || outbox.length) connect();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
