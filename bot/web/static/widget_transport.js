/*
 * The widget's connection, a part of widget.js (the gateway puts it in): the WebSocket to the
 * gateway (hello with the visitor token and the last message seen, a heartbeat that notices a
 * half-open connection), reconnects with exponential backoff and full jitter, and the outbox: what
 * the customer sent waits in localStorage until the gateway acks it, and is resent on reconnect
 * (once per socket; the gateway stores a resent client id once). It draws nothing: it tells the view
 * (widget_view.js) what to show. The frames are documented in README.md ("WebSocket protocol").
 *
 * createTransport({ wsUrl, lang, store: { get, set }, userId, userHash, view })
 */
function createTransport({ wsUrl, lang, store, userId, userHash, view }) {
  function randomId(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let visitor = store.get("visitor");
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(visitor || "")) visitor = null;

  let ws = null;
  let connected = false; // the server answered our hello on this socket
  let attempt = 0;
  let retryTimer = null;
  let lastFrameAt = 0;
  let heartbeat = null;
  const sentOn = new Map(); // client id -> the socket it was sent on (sent once per socket)

  // ---- the outbox: the customer's messages not yet acked ----
  let outbox = [];
  try { outbox = JSON.parse(store.get("outbox") || "[]").filter((m) => m && m.id && m.text); } catch (e) { outbox = []; }
  const saveOutbox = () => store.set("outbox", JSON.stringify(outbox.map(({ id, text, title }) => ({ id, text, title }))));
  const outboxIds = () => outbox.map((m) => m.id);

  function forget(clientId) {
    outbox = outbox.filter((m) => m.id !== clientId);
    saveOutbox();
  }

  function send(text, title) {
    const item = { id: "c" + randomId(12), text, title };
    outbox.push(item);
    saveOutbox();
    view.pending(item, connected);
    flush();
    return true;
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

  // ---- the socket ----
  function connect() {
    if (ws) return;
    clearTimeout(retryTimer);
    if (!visitor) { visitor = randomId(16); store.set("visitor", visitor); }
    view.status(attempt === 0 ? "connecting" : "reconnecting");
    let sock;
    try { sock = new WebSocket(wsUrl); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = () => {
      lastFrameAt = Date.now();
      const hello = { type: "hello", visitor, language: lang, last_seen: view.lastSeen() };
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
    view.stopTyping();
    if (sock) { sock.onclose = sock.onmessage = null; try { sock.close(); } catch (e) { /* already closed */ } }
    view.notSent(outboxIds(), true);
    scheduleReconnect();
  }

  function scheduleReconnect() {
    view.status("reconnecting");
    clearTimeout(retryTimer);
    // exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... capped at 15 s
    const ceiling = Math.min(15000, 500 * Math.pow(2, attempt));
    attempt = Math.min(attempt + 1, 10);
    retryTimer = setTimeout(connect, 250 + Math.random() * ceiling);
  }

  function reconnectNow() {
    if (ws || (!view.isOpen() && !visitor)) return;
    attempt = 0;
    clearTimeout(retryTimer);
    connect();
  }
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reconnectNow();
  });

  // ---- frames from the gateway ----
  function onFrame(sock, f) {
    switch (f.type) {
      case "ready":
        connected = true;
        attempt = 0;
        view.status("ok");
        if (typeof f.visitor === "string" && f.visitor !== visitor) {
          visitor = f.visitor; // a new visitor (e.g. this browser's user signed out)
          store.set("visitor", visitor);
          view.forgetRead();
        }
        if (Number.isInteger(f.max_chars)) view.setMaxChars(f.max_chars);
        clearInterval(heartbeat);
        heartbeat = setInterval(() => {
          if (Date.now() - lastFrameAt > 45000) { dropped(); return; } // a half-open connection
          wsSend(sock, { type: "ping" });
        }, 20000);
        break;
      case "history":
        view.history(Array.isArray(f.messages) ? f.messages : [], !!f.resume);
        view.notSent(outboxIds(), false);
        flush();
        break;
      case "message":
        view.message(f);
        break;
      case "ack":
        if (!view.confirm(f.id, f.message_id)) forget(f.id);
        break;
      case "typing":
        view.typing(f.on, f.by);
        break;
      case "error":
        onError(f);
        break;
      default:
        break; // pong and frames of newer servers
    }
  }

  function onError(f) {
    if (f.code === "identity_refused") {
      view.alert("widget_identity_refused", true);
    } else if (f.code === "rate_limited") {
      view.alert("widget_rate_limited");
      if (f.id) { sentOn.delete(f.id); setTimeout(flush, 1500); }
    } else if (f.code === "unavailable") {
      if (f.id) { sentOn.delete(f.id); setTimeout(flush, 3000); }
    } else if (f.id && view.fail(f.id, f.code === "too_long")) {
      forget(f.id); // refused for good (too long, empty, malformed): not resent
    }
    if (window.console && console.warn) console.warn("support widget:", f.code, f.message);
  }

  return {
    connect,
    send,
    forget,
    pending: () => outbox.slice(),
    // a returning visitor (or a signed-in user, or one with unsent messages) is worth connecting at once
    known: () => !!(visitor || userId || outbox.length),
  };
}
