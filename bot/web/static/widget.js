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
 *
 * This file is the entry: the options, the UI language and texts, the browser's storage, and the
 * wiring of its parts, which the gateway puts in where the include markers are (one script, one
 * request; bot/channels/webchat_assets.py): widget.css (the styles), widget_view.js (rendering:
 * the DOM, messages, quick replies, badge, open/close) and widget_transport.js (the WebSocket,
 * reconnects, the outbox and its resends).
 */
(() => {
  "use strict";

  const TEXTS = /*@texts*/{};
  const STYLES = /*@include widget.css*/"";
  /*@include widget_view.js*/
  /*@include widget_transport.js*/

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
  const store = {
    get: (k) => { try { return storage.getItem(PREFIX + k); } catch (e) { return null; } },
    set: (k, v) => { try { storage.setItem(PREFIX + k, v); } catch (e) { /* full or blocked */ } },
  };

  let transport = null; // the view's hooks are only called once both exist
  const view = createView({ ds, lang, tr, styles: STYLES, store, hooks: {
    opened: () => transport.connect(),
    send: (text, title) => transport.send(text, title),
    stored: (clientId) => transport.forget(clientId),
  } });
  transport = createTransport({ wsUrl, lang, store, userId: ds.userId || null, userHash: ds.userHash || null, view });
  for (const item of transport.pending()) view.pending(item, false);

  function mount() {
    view.mount();
    // A returning visitor (or a signed-in user) connects at once: history, unread badge, live messages.
    // A first-time visitor connects when opening the chat.
    if (transport.known()) transport.connect();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
