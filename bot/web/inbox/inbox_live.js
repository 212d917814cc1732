// The agent inbox's real time, a part of the inbox page (loaded after staff.js, before inbox.js): its
// WebSocket (/api/inbox/ws; reconnects with backoff while the session is valid), the events it
// brings (conversations, messages, notes, delivery statuses, agents) and the agent's typing
// indicator. InboxLive(state, t, page) with page = { api, signedOut, refreshLists,
// openConversation, loadAgents, view (InboxView) }.
"use strict";

window.InboxLive = function (state, t, page) {
  const $ = (id) => document.getElementById(id);
  const { api, signedOut, refreshLists, openConversation, loadAgents, view } = page;

  // --- the socket and its events --------------------------------------------------------------
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
        view.renderHead();
      }
    } else if (ev.type === "message" || ev.type === "note") {
      scheduleRefresh();
      const item = Object.assign({ kind: ev.type, conversation_id: ev.conversation_id }, ev.type === "message" ? ev.message : ev.note);
      if (state.early) state.early.push(item); // a conversation is loading: merged into it when it arrives
      if (state.detail && state.detail.conversations.some((c) => c.id === ev.conversation_id)) {
        if (!state.detail.timeline.some((x) => x.kind === item.kind && x.id === item.id)) {
          state.detail.timeline.push(item);
          view.renderTimeline();
        }
      } else if (state.detail && ev.type === "message") {
        openConversation(state.current, true); // a new conversation of this contact
      }
    } else if (ev.type === "delivery") {
      if (state.detail) {
        const m = state.detail.timeline.find((x) => x.kind === "message" && x.id === ev.message_id);
        if (m) { m.delivery_status = ev.delivery_status || (ev.delivered ? "delivered" : m.delivery_status); m.delivery_error = ev.error; view.renderTimeline(); }
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

  // --- the agent's typing indicator (to the customer of a conversation the agent has) ---------

  function typing() {
    const mode = document.querySelector("input[name=mode]:checked").value;
    if (mode !== "reply" || !state.ws || !state.detail || !view.mine(state.detail.conversation)) return;
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
  function disconnect() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  }

  return { connect, disconnect, typing, stopTyping };
};
