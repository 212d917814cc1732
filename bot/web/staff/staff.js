// Shared by the staff pages (/inbox, /editor, /dashboard): UI texts, a DOM helper and the JSON API call with the
// session's CSRF token. Loaded before each page's own script (both with defer, so in order).
"use strict";

window.Staff = (function () {
  // t(key, {name: value}) from state.texts[state.lang], falling back to English, then to the key.
  function translator(state) {
    return function t(key, values) {
      const table = state.texts[state.lang] || state.texts.en || {};
      let s = table[key] !== undefined ? table[key] : ((state.texts.en || {})[key] || key);
      if (values) for (const k of Object.keys(values)) s = s.split("{" + k + "}").join(String(values[k]));
      return s;
    };
  }
  // Every element with data-t gets its text; the page's title and language follow.
  function applyTexts(state, t) {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
    const select = document.getElementById("lang-select");
    if (select) select.value = state.lang;
  }
  // An element with a class and a text (always as text, never as HTML).
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  // fetch + JSON; non-GET requests carry X-CSRF-Token and a JSON body (or ``raw`` bytes). A 401 other
  // than the sign-in's own calls onUnauthorized; any error status throws an Error with .status, .data.
  async function api(state, method, path, body, options) {
    const o = options || {};
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = state.csrf || "";
      if (o.raw !== undefined) { opts.body = o.raw; opts.headers["Content-Type"] = "application/octet-stream"; }
      else { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body || {}); }
    }
    const resp = await fetch(path, opts);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401 && path !== "/api/inbox/login" && o.onUnauthorized) o.onUnauthorized();
    if (!resp.ok) {
      const err = new Error((data && data.error) || ("HTTP " + resp.status));
      err.status = resp.status; err.data = data;
      throw err;
    }
    return data;
  }
  // The sign-in form every staff page has (#login-form, #login-email, #login-password, #login-error):
  // signs in through /api/inbox/login and hands the answer to onSignedIn.
  function bindLogin(t, api, onSignedIn) {
    const $ = (id) => document.getElementById(id);
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("login-error").textContent = "";
      try {
        const data = await api("POST", "/api/inbox/login", { email: $("login-email").value, password: $("login-password").value });
        $("login-password").value = "";
        await onSignedIn(data);
      } catch (err) {
        $("login-error").textContent = err.status === 403 ? t("login_disabled") : err.status === 429 ? t("login_throttled") : t("login_failed");
      }
    });
  }
  // The views a staff page switches between: #login-view, #denied-view, #app-view, with #me and
  // #logout-button in the top bar. signedInView returns whether the account's role may use the page.
  function signedOutView(state) {
    const $ = (id) => document.getElementById(id);
    state.me = null; state.csrf = null;
    $("app-view").hidden = true; $("denied-view").hidden = true; $("login-view").hidden = false;
    $("logout-button").hidden = true; $("me").textContent = "";
  }
  function signedInView(state, data, roles) {
    const $ = (id) => document.getElementById(id);
    state.me = data.agent; state.csrf = data.csrf_token;
    $("login-view").hidden = true; $("logout-button").hidden = false; $("me").textContent = data.agent.name;
    if (!roles.includes(data.agent.role)) { $("denied-view").hidden = false; return false; }
    return true;
  }
  return { translator, applyTexts, el, api, bindLogin, signedOutView, signedInView };
})();
