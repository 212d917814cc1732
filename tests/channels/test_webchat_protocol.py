"""The website widget's server side without a browser: static assets, the Origin check, and the
WebSocket protocol with aiohttp's client. In-process against a real SQLite database and a small
stand-in for Rasa's REST channel (it records what it was sent); the last test talks to the real
running stack."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import keys
from bot.app import create_app
from bot.channels.webchat_assets import STATIC_DIR as STATIC, widget_script
from bot.channels.webchat_frames import RATE_BURST, user_hash
from bot.i18n import t
from bot.messages import InboundMessage, Recipient, Reply
from bot.settings import Settings
from bot.ops.stack import free_port

from ..conftest import wait_until

SECRET = "protocol-test-secret"
SITE = "https://shop.example"
WS = "/webhooks/webchat/ws"


class FakeRasa:
    """Rasa's REST channel, answering from rules: '/affirm' -> one line, 'fail...' -> HTTP 500,
    anything else -> an echo with a link and a yes/no question."""

    def __init__(self):
        self.received: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/webhooks/rest/webhook", self.webhook)
        self.app.router.add_get("/webhooks/rest/", self.health)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        text = body["message"]
        await asyncio.sleep(0.15)
        if text.startswith("fail"):
            return web.Response(status=500, text="boom")
        if text == "/affirm":
            return web.json_response([{"recipient_id": body["sender"], "text": "Glad that helped!"}])
        return web.json_response([
            {"recipient_id": body["sender"], "text": f"You asked **{text}**. See /help/en/reset-password"},
            {"recipient_id": body["sender"], "text": "Did this answer your question?",
             "buttons": [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]},
            {"recipient_id": body["sender"], "custom": {"event": "kb_answer", "articles": []}},
        ])


@pytest.fixture
async def rasa():
    fake = FakeRasa()
    server = TestServer(fake.app)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


def make_settings(tmp_path, rasa_url: str, **extra) -> Settings:
    return Settings.from_env({
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "RASA_URL": rasa_url, "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}", "RASA_RETRIES": "0",
        "MAX_MESSAGE_CHARS": "100", "WIDGET_IDENTITY_SECRET": SECRET, "WIDGET_ALLOWED_ORIGINS": SITE, **extra,
    })


@pytest.fixture
async def client(tmp_path, rasa):
    async with TestClient(TestServer(create_app(make_settings(tmp_path, rasa.url)))) as c:
        c.db_path = tmp_path / "gw.db"
        yield c


def db(client) -> sqlite3.Connection:
    conn = sqlite3.connect(client.db_path)
    conn.row_factory = sqlite3.Row
    return conn


def visitor() -> str:
    return "v" + uuid.uuid4().hex


async def receive(ws, timeout: float = 5.0) -> dict:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def until(ws, predicate, timeout: float = 5.0) -> tuple[dict, list[dict]]:
    """Frames up to and including the first one matching ``predicate``."""
    seen: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await receive(ws, max(0.05, deadline - loop.time()))
        seen.append(frame)
        if predicate(frame):
            return frame, seen


async def connect(client, hello: dict | None = None, origin: str = SITE):
    """Open a socket and say hello; returns (ws, ready, history, frames before ready)."""
    ws = await client.ws_connect(WS, origin=origin)
    await ws.send_json({"type": "hello", "visitor": visitor(), "language": "en", **(hello or {})})
    ready, before = await until(ws, lambda f: f["type"] == "ready")
    history = await receive(ws)
    assert history["type"] == "history"
    return ws, ready, history, before[:-1]


async def ask(ws, text: str, cid: str | None = None, **extra) -> tuple[dict, list[dict]]:
    """Send a message and read up to the end of the answer (typing off); returns (ack, frames)."""
    cid = cid or uuid.uuid4().hex[:12]
    await ws.send_json({"type": "message", "id": cid, "text": text, **extra})
    _, frames = await until(ws, lambda f: f["type"] == "typing" and f["on"] is False)
    ack = next(f for f in frames if f["type"] == "ack")
    assert ack["id"] == cid
    return ack, frames


# --- static assets ------------------------------------------------------------------------------

async def test_widget_js_is_served_with_a_content_type_cache_headers_and_its_texts(client):
    resp = await client.get("/widget.js")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "max-age=" in resp.headers["Cache-Control"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    etag = resp.headers["ETag"]
    body = await resp.text()
    assert "/*@texts*/{}" not in body  # the UI texts of bot/i18n.py are in
    for text in ("Reconnecting…", "Verbindung wird wiederhergestellt", "Yeniden bağlanılıyor", "再接続中"):
        assert text in body
    # one script: its parts (styles, rendering, connection) are in it, not loaded by it
    assert "/*@include" not in body
    assert "function createView(" in body and "function createTransport(" in body
    assert json.dumps((STATIC / "widget.css").read_text(encoding="utf-8")) in body
    again = await client.get("/widget.js", headers={"If-None-Match": etag})
    assert again.status == 304


def test_a_widget_js_that_leaves_out_a_part_or_has_no_texts_marker_stops_the_start(tmp_path):
    for name in ("widget.css", "widget_view.js", "widget_transport.js"):
        (tmp_path / name).write_text((STATIC / name).read_text(encoding="utf-8"), encoding="utf-8")
    entry = (STATIC / "widget.js").read_text(encoding="utf-8")
    (tmp_path / "widget.js").write_text(entry.replace("/*@include widget_transport.js*/", ""), encoding="utf-8")
    with pytest.raises(RuntimeError, match="widget_transport.js"):
        widget_script(tmp_path)
    (tmp_path / "widget.js").write_text(entry.replace("/*@texts*/{}", "{}"), encoding="utf-8")
    with pytest.raises(RuntimeError, match="texts"):
        widget_script(tmp_path)
    (tmp_path / "widget.js").write_text(entry, encoding="utf-8")
    assert b"function createTransport(" in widget_script(tmp_path)


async def test_the_demo_page_embeds_the_widget_in_the_requested_language(client):
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert '<html lang="en">' in page
    assert '<script src="/widget.js"' in page
    assert "Content-Security-Policy" in resp.headers  # the widget needs no inline script nor eval
    assert f"{client.make_url('')}".rstrip("/") + "/widget.js" in page  # the embed snippet names this host
    german = await (await client.get("/?lang=de")).text()
    assert '<html lang="de">' in german and "Wie können wir helfen?" in german
    assert '<html lang="en">' in await (await client.get("/?lang=<script>")).text()


async def test_health_route(client):
    resp = await client.get("/webhooks/webchat/")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"


# --- the Origin check ---------------------------------------------------------------------------

@pytest.mark.parametrize("origin", ["https://evil.example", "null", None])
async def test_a_socket_from_an_origin_not_allowed_is_refused(client, origin):
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await client.ws_connect(WS, origin=origin)
    assert exc.value.status == 403


async def test_allowed_origins_and_the_gateways_own_origin_are_accepted(client):
    ws, ready, _, _ = await connect(client, origin=SITE)
    assert ready["type"] == "ready"
    await ws.close()
    own = str(client.make_url("")).rstrip("/")  # the demo page's origin
    ws, ready, _, _ = await connect(client, origin=own)
    assert ready["type"] == "ready"
    await ws.close()


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("frame,code", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "bad_frame"),
    ('{"text": "no type"}', "bad_frame"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "message", "id": "c1", "text": "' + "x" * 101 + '"}', "too_long"),
    ('{"type": "message", "id": "c1", "text": "   "}', "empty_message"),
    ('{"type": "message", "text": "no id"}', "bad_frame"),
    ('{"type": "message", "id": "c1", "text": "hi", "title": 5}', "bad_frame"),
    ('{"type": "hello", "visitor": "again"}', "bad_frame"),
])
async def test_bad_frames_get_a_clear_error_frame_and_nothing_is_stored(client, frame, code):
    ws, _, _, _ = await connect(client)
    await ws.send_str(frame)
    err = await receive(ws)
    assert err["type"] == "error" and err["code"] == code, err
    assert err["message"]
    if code in ("too_long", "empty_message"):
        assert err["id"] == "c1"  # the widget marks that message as failed
    await ws.send_json({"type": "ping"})  # the socket stays usable
    assert (await receive(ws))["type"] == "pong"
    with db(client) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


async def test_a_binary_frame_and_a_message_before_hello_are_refused(client):
    ws = await client.ws_connect(WS, origin=SITE)
    await ws.send_json({"type": "message", "id": "c1", "text": "hi"})
    err = await receive(ws)
    assert err["code"] == "hello_required" and err["id"] == "c1"
    await ws.send_bytes(b"\x00\x01")
    assert (await receive(ws))["code"] == "bad_frame"
    await ws.close()


async def test_too_many_frames_are_rate_limited(client):
    ws, _, _, _ = await connect(client)
    for _ in range(40):
        await ws.send_json({"type": "ping"})
    frames = [await receive(ws) for _ in range(40)]
    limited = [f for f in frames if f["type"] == "error"]
    assert limited and all(f["code"] == "rate_limited" for f in limited)
    # the burst (less the hello) went through first, whatever else the refill allowed later
    assert [f["type"] for f in frames[:RATE_BURST - 1]] == ["pong"] * (RATE_BURST - 1)


# --- messages -----------------------------------------------------------------------------------

async def test_a_message_is_acked_echoed_answered_with_typing_and_stored(client, rasa):
    ws, ready, history, _ = await connect(client, {"language": "de-DE"})
    assert ready["language"] == "de" and ready["identity"] is None and ready["max_chars"] == 100
    assert history == {"type": "history", "resume": False, "messages": []}
    ack, frames = await ask(ws, "How do I reset my password?", cid="c-1")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack" and ack["duplicate"] is False
    customer = next(f for f in frames if f["type"] == "message" and f["role"] == "customer")
    assert customer["client_id"] == "c-1" and customer["id"] == ack["message_id"]
    assert kinds.index("typing") < max(i for i, f in enumerate(frames) if f.get("role") == "bot")
    bot = [f for f in frames if f.get("role") == "bot"]
    assert "/help/en/reset-password" in bot[0]["text"]
    assert bot[1]["buttons"] == [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
    assert len(bot) == 2  # the assistant's internal event is stored, never shown
    # the widget's UI language is the router's language hint
    assert rasa.received[-1]["metadata"]["language_hint"] == "de"
    # a quick reply: the payload goes to the assistant, the title is what the customer sees
    _, frames = await ask(ws, "/affirm", title="Yes")
    shown = next(f for f in frames if f.get("role") == "customer")
    assert shown["text"] == "Yes"
    assert rasa.received[-1]["message"] == "/affirm"
    with db(client) as conn:
        rows = conn.execute("SELECT direction, sender_type, text, delivery_status, meta FROM messages "
                            "ORDER BY id").fetchall()
    assert [(r["direction"], r["sender_type"]) for r in rows] == [
        ("in", "customer"), ("out", "bot"), ("out", "bot"), ("in", "customer"), ("out", "bot")]
    assert rows[3]["text"] == "/affirm" and json.loads(rows[3]["meta"])["title"] == "Yes"
    assert rows[0]["delivery_status"] == rows[3]["delivery_status"] == "processed"


async def test_a_resent_client_id_is_stored_once_and_acked_again(client, rasa):
    ws, ready, _, _ = await connect(client)
    ack1, _ = await ask(ws, "Where is my parcel?", cid="same-id")
    await ws.send_json({"type": "message", "id": "same-id", "text": "Where is my parcel?"})
    ack2, _ = await until(ws, lambda f: f["type"] == "ack")
    assert ack2["duplicate"] is True and ack2["message_id"] == ack1["message_id"]
    await ws.close()
    # after a reconnect (the widget resends what it has no ack for), still once
    ws, _, history, _ = await connect(client, {"visitor": ready["visitor"]})
    assert [m["role"] for m in history["messages"]] == ["customer", "bot", "bot"]
    await ws.send_json({"type": "message", "id": "same-id", "text": "Where is my parcel?"})
    ack3, _ = await until(ws, lambda f: f["type"] == "ack")
    assert ack3["duplicate"] is True and ack3["message_id"] == ack1["message_id"]
    await ask(ws, "And my invoice?")  # a visitor's messages are answered in turn: anything queued came first
    with db(client) as conn:
        assert [r[0] for r in conn.execute("SELECT text FROM messages WHERE direction = 'in' ORDER BY id")] == [
            "Where is my parcel?", "And my invoice?"]
        assert conn.execute("SELECT count(*) FROM messages WHERE direction = 'out'").fetchone()[0] == 4
    assert [b["message"] for b in rasa.received] == ["Where is my parcel?", "And my invoice?"]


async def test_every_open_socket_of_the_visitor_gets_new_messages(client):
    ws1, ready, _, _ = await connect(client)
    ws2, _, _, _ = await connect(client, {"visitor": ready["visitor"]})
    other, _, _, _ = await connect(client)  # another visitor
    await ask(ws1, "first question", cid="a1")
    _, frames = await until(ws2, lambda f: f["type"] == "typing" and f["on"] is False)
    assert [f.get("role") for f in frames if f["type"] == "message"] == ["customer", "bot", "bot"]
    assert next(f for f in frames if f.get("role") == "customer")["client_id"] == "a1"
    # the other visitor's socket gets, in order, only its own question and answer: had the first
    # visitor's messages reached it, they would have come before
    _, frames = await ask(other, "a question of my own")
    said = [f for f in frames if f["type"] == "message"]
    assert [f["role"] for f in said] == ["customer", "bot", "bot"] and said[0]["text"] == "a question of my own"


async def test_an_assistant_failure_is_told_to_the_customer_in_their_language(client):
    ws, _, _, _ = await connect(client, {"language": "de"})
    _, frames = await ask(ws, "fail bitte")
    notice = next(f for f in frames if f["type"] == "message" and f["role"] == "system")
    assert notice["text"] == t("assistant_unavailable", "de")


async def test_messages_sent_while_offline_are_delivered_on_reconnect_after_the_last_seen(client):
    ws, ready, _, _ = await connect(client)
    _, frames = await ask(ws, "hello?")
    last_seen = [f for f in frames if f["type"] == "message"][-1]["id"]
    channel = client.app[keys.CHANNELS]["webchat"]
    with db(client) as conn:
        conv = conn.execute("SELECT public_id FROM conversations").fetchone()[0]
    # an agent types, then answers while the widget is open: pushed at once
    assert await channel.typing(Recipient(conv, ready["visitor"]), True) is True
    assert await receive(ws) == {"type": "typing", "on": True, "by": "agent"}
    result = await channel.deliver(Recipient(conv, ready["visitor"]), [Reply(text="An agent here.")])
    assert result.delivered and len(result.platform_message_ids) == 1
    pushed = await receive(ws)
    assert pushed["role"] == "agent" and pushed["text"] == "An agent here."
    last_seen = pushed["id"]
    await ws.close()
    # ... and while it is closed: stored, sent when it comes back
    result = await channel.deliver(Recipient(conv, ready["visitor"]), [Reply(text="Are you still there?")])
    assert not result.delivered and result.error == "offline" and result.platform_message_ids
    assert await channel.typing(Recipient(conv, ready["visitor"]), True) is False
    ws, _, history, _ = await connect(client, {"visitor": ready["visitor"], "last_seen": last_seen})
    assert history["resume"] is True
    assert [m["text"] for m in history["messages"]] == ["Are you still there?"]
    # a last_seen the server does not know gives the whole history again
    ws2, _, history, _ = await connect(client, {"visitor": ready["visitor"], "last_seen": "unknown"})
    assert history["resume"] is False and len(history["messages"]) == 5


async def test_a_message_left_unanswered_by_a_stop_is_answered_at_the_next_start(tmp_path, rasa):
    settings = make_settings(tmp_path, rasa.url)
    token = visitor()
    async with TestClient(TestServer(create_app(settings))) as c:
        accepted = await c.app[keys.ROUTER].accept(
            InboundMessage(channel="webchat", source_id=token, text="left behind",
                           platform_message_id=f"{token}:x1", language_hint="en"), inbound_status="received")
    assert not rasa.received
    async with TestClient(TestServer(create_app(settings))) as c:
        c.db_path = tmp_path / "gw.db"

        def status() -> str:
            with db(c) as conn:
                return conn.execute("SELECT delivery_status FROM messages WHERE public_id = ?",
                                    (accepted.message_id,)).fetchone()[0]

        await wait_until(lambda: status() == "processed", what="the message left behind to be answered")
        ws, _, history, _ = await connect(c, {"visitor": token})
        assert [m["text"] for m in history["messages"] if m["role"] == "customer"] == ["left behind"]
        await ask(ws, "still there?")  # answered in turn, after anything still queued for the visitor
        assert [b["message"] for b in rasa.received] == ["left behind", "still there?"]
        await ws.close()


# --- identity -----------------------------------------------------------------------------------

async def test_a_signed_user_id_is_verified_and_follows_the_user_to_another_browser(client):
    user = f"user-{uuid.uuid4().hex[:8]}"
    ws, ready, _, before = await connect(client, {"user_id": user, "user_hash": user_hash(SECRET, user)})
    assert not before and ready["identity"] == {"user_id": user, "verified": True}
    await ask(ws, "my order is late")
    # another browser (another visitor token), same signed user: same conversation
    ws2, ready2, history, _ = await connect(client, {"user_id": user, "user_hash": user_hash(SECRET, user).upper()})
    assert ready2["visitor"] != ready["visitor"]
    assert [m["role"] for m in history["messages"]] == ["customer", "bot", "bot"]
    with db(client) as conn:
        ident = conn.execute("SELECT contact_id, verified FROM contact_identities WHERE channel = 'webchat-user' "
                             "AND source_id = ?", (user,)).fetchone()
        tokens = conn.execute("SELECT contact_id FROM contact_identities WHERE channel = 'webchat' "
                              "AND source_id IN (?, ?)", (ready["visitor"], ready2["visitor"])).fetchall()
    assert ident["verified"] == 1
    assert {t[0] for t in tokens} == {ident["contact_id"]}
    # signed out, the same browser is a new anonymous visitor: the user's conversation stays private
    ws3, ready3, history, _ = await connect(client, {"visitor": ready["visitor"]})
    assert ready3["identity"] is None and ready3["visitor"] != ready["visitor"]
    assert history["messages"] == []


@pytest.mark.parametrize("hello", [
    {"user_id": "alice", "user_hash": "0" * 64},
    {"user_id": "alice", "user_hash": user_hash("another-secret", "alice")},
    {"user_id": "alice"},
    {"user_id": "", "user_hash": user_hash(SECRET, "")},
    {"user_id": 5, "user_hash": "x"},
])
async def test_an_unverifiable_identity_is_refused_and_never_trusted(client, hello):
    ws, ready, history, before = await connect(client, hello)
    assert [f["code"] for f in before] == ["identity_refused"]
    assert ready["identity"] is None
    await ask(ws, "who am I?")
    with db(client) as conn:
        assert conn.execute("SELECT count(*) FROM contact_identities WHERE channel = 'webchat-user'").fetchone()[0] == 0
        assert conn.execute("SELECT verified FROM contact_identities WHERE channel = 'webchat'").fetchone()[0] == 0


async def test_without_a_secret_every_signed_identity_is_refused(tmp_path, rasa):
    settings = make_settings(tmp_path, rasa.url, WIDGET_IDENTITY_SECRET="")
    async with TestClient(TestServer(create_app(settings))) as c:
        ws, ready, _, before = await connect(c, {"user_id": "alice", "user_hash": user_hash("", "alice")})
        assert before[0]["code"] == "identity_refused" and "not configured" in before[0]["message"]
        assert ready["identity"] is None


# --- the real stack -----------------------------------------------------------------------------

@pytest.mark.stack
async def test_the_real_assistant_answers_over_the_websocket(running_stack):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(running_stack.url + WS, origin=running_stack.url) as ws:
            await ws.send_json({"type": "hello", "visitor": visitor(), "language": "en"})
            await until(ws, lambda f: f["type"] == "history")
            await ws.send_json({"type": "message", "id": "q1", "text": "How do I reset my password?"})
            _, frames = await until(ws, lambda f: f["type"] == "typing" and f["on"] is False, timeout=60)
    bot = [f for f in frames if f.get("role") == "bot"]
    assert any("/help/en/reset-password" in (f["text"] or "") for f in bot), bot
    assert any({b["payload"] for b in f.get("buttons", [])} == {"/affirm", "/deny"} for f in bot)
