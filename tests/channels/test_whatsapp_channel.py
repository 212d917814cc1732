"""The WhatsApp channel in-process: the real gateway app (create_app, SQLite, the real router and
channel) between the WhatsApp simulator and a scripted stand-in for Rasa, so the delivery
machinery (retries, timeouts, the 24-hour window, statuses, restarts) is tested quickly and
deterministically. tests/channels/test_whatsapp_stack.py runs the same contract against the real stack."""
from __future__ import annotations

import asyncio
import json
import contextlib
import dataclasses
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import keys
from bot.app import create_app
from bot.channels.whatsapp import WEBHOOK_PATH, WhatsAppChannel
from bot.messages import Recipient, Reply
from bot.settings import Settings
from bot.ops.stack import free_port
from tests.conftest import wait_until
from tests.whatsapp_sim import WhatsAppSimulator

SECRET, TOKEN, PHONE_ID, VERIFY = "in-proc-secret", "in-proc-token", "555000111", "in-proc-verify"


class FakeRasa:
    """Rasa's REST channel, scripted: a question gets an answer and "Did that help?" with buttons. It
    also answers the action server's status route (the gateway asks it when Rasa is silent and
    before answering deferred messages)."""

    def __init__(self):
        self.received: list[dict] = []
        self.scripted: dict[str, list[dict]] = {}  # a question -> the bot's messages for it
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def start(self):
        app = web.Application()
        app.router.add_get("/webhooks/rest/", self.health)
        app.router.add_get("/status", self.status)
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self):
        await self.runner.cleanup()

    async def health(self, request):
        return web.json_response({"status": "ok"})

    async def status(self, request):  # the action server's: up since long ago
        return web.json_response({"status": "ok", "started_at": 0})

    async def webhook(self, request):
        body = await request.json()
        self.received.append(body)
        sender, text = body["sender"], body["message"]
        if text in self.scripted:
            return web.json_response([{"recipient_id": sender, **m} for m in self.scripted[text]])
        if text.startswith("/"):
            return web.json_response([{"recipient_id": sender, "text": f"payload {text} received"}])
        return web.json_response([
            {"recipient_id": sender, "text": f"Answer to: {text}"},
            {"recipient_id": sender, "custom": {"event": "kb_answer", "decision": "answer"}},
            {"recipient_id": sender, "text": "Did that help?",
             "buttons": [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]},
        ])

    def messages_from(self, text: str) -> list[dict]:
        return [r for r in self.received if r["message"] == text]


class Gateway:
    def __init__(self, tmp_path: Path, rasa: FakeRasa, sim: WhatsAppSimulator):
        self.db_path = tmp_path / "gw.db"
        self.rasa, self.sim = rasa, sim
        self.client: TestClient | None = None
        self.port = free_port()
        self.settings = Settings.from_env({
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}", "RASA_URL": f"http://127.0.0.1:{rasa.port}",
            "ACTION_SERVER_URL": f"http://127.0.0.1:{rasa.port}", "RASA_RETRIES": "0",
            "WHATSAPP_VERIFY_TOKEN": VERIFY, "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_ACCESS_TOKEN": TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": PHONE_ID, "WHATSAPP_API_BASE_URL": sim.base_url,
        })

    async def start(self):
        self.client = TestClient(TestServer(create_app(self.settings), port=self.port))
        await self.client.start_server()
        self.sim.webhook_url = str(self.client.make_url(WEBHOOK_PATH))

    async def stop(self):
        await self.client.close()

    @property
    def app(self):
        return self.client.server.app

    @property
    def channel(self) -> WhatsAppChannel:
        return self.app[keys.CHANNELS]["whatsapp"]

    def db(self):
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        return conn

    def rows(self, wa_id: str, direction: str | None = None) -> list[sqlite3.Row]:
        with self.db() as db:
            q = ("SELECT m.* FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                 "JOIN contact_identities i ON i.contact_id = c.contact_id WHERE i.source_id = ?")
            args = [wa_id]
            if direction:
                q += " AND m.direction = ?"
                args.append(direction)
            return db.execute(q + " ORDER BY m.id", args).fetchall()


async def wait_idle(gw, what: str = "the channel's work in flight"):
    """Until the channel has nothing in flight (answers, sends, notices): from then on nothing more
    happens unless a notification comes in, so "nothing else was sent" can be asserted at once."""
    await wait_until(lambda: not gw.channel._tasks, what=what)


@contextlib.asynccontextmanager
async def whatsapp_gateway(tmp_path, whatsapp: dict | None = None, **settings):
    """The gateway between the simulator and the scripted Rasa; ``settings`` replace Settings fields,
    ``whatsapp`` fields of its WhatsAppSettings."""
    rasa = FakeRasa()
    await rasa.start()
    sim = WhatsAppSimulator(webhook_url="http://127.0.0.1:1/unset", app_secret=SECRET, access_token=TOKEN,
                            phone_number_id=PHONE_ID, verify_token=VERIFY)
    await sim.start()
    gateway = Gateway(tmp_path, rasa, sim)
    if settings:
        gateway.settings = dataclasses.replace(gateway.settings, **settings)
    if whatsapp:
        gateway.settings = dataclasses.replace(gateway.settings,
                                               whatsapp=dataclasses.replace(gateway.settings.whatsapp, **whatsapp))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
        await sim.stop()
        await rasa.stop()


@pytest.fixture
async def gw(tmp_path):
    async with whatsapp_gateway(tmp_path) as gateway:
        yield gateway


def wa() -> str:
    return "49151" + str(uuid.uuid4().int)[:8]


def sent_texts(sim, wa_id) -> list[str]:
    out = []
    for m in sim.messages_to(wa_id):
        p = m["payload"]
        out.append(p["text"]["body"] if p["type"] == "text" else p["interactive"]["body"]["text"])
    return out


async def test_a_message_is_acknowledged_answered_read_and_its_statuses_recorded(gw):
    user = wa()
    wamid, statuses = await gw.sim.send_text(user, "Where is my parcel?", name="Ada")
    assert statuses == [200]
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, what="two replies")
    first, second = gw.sim.messages_to(user)
    assert first["payload"]["type"] == "text" and first["payload"]["text"]["body"] == "Answer to: Where is my parcel?"
    assert second["payload"]["interactive"]["type"] == "button"
    assert gw.sim.reads_of(wamid) and gw.sim.reads_of(wamid)[0]["typing"]
    # statuses: sent then delivered (the simulator's automatic receipts)
    await wait_until(lambda: all(r["delivery_status"] == "delivered" for r in gw.rows(user, "out")), what="delivered")
    inbound, *outbound = gw.rows(user)
    assert inbound["platform_message_id"] == wamid and inbound["delivery_status"] == "processed"
    assert [r["platform_message_id"] for r in outbound] == [first["id"], second["id"]]
    with gw.db() as db:
        contact = db.execute("SELECT c.name, c.phone, c.attributes FROM contacts c JOIN contact_identities i "
                             "ON i.contact_id = c.id WHERE i.source_id = ?", (user,)).fetchone()
        events = db.execute("SELECT type FROM conversation_events").fetchall()
    assert contact["name"] == "Ada" and contact["phone"] == "+" + user
    assert [e["type"] for e in events] == ["kb_answer"]
    assert gw.rasa.messages_from("Where is my parcel?")[0]["metadata"]["channel"] == "whatsapp"


async def test_contacts_are_keyed_on_the_business_scoped_user_id_and_linked_to_the_phone_number(gw):
    user = wa()
    await gw.sim.send_text(user, "first, old payload without user id")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    gw.sim.user(user).user_id = "DE.8172635"
    await gw.sim.send_text(user, "second, with a user id", user_id="DE.8172635")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 4)
    with gw.db() as db:
        ids = db.execute("SELECT contact_id, source_id FROM contact_identities WHERE channel = 'whatsapp'").fetchall()
        convs = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
    assert {r["source_id"] for r in ids} == {user, "DE.8172635"} and len({r["contact_id"] for r in ids}) == 1
    assert convs == 1
    # a username-only customer (no phone number): answered through the "recipient" field
    await gw.sim.send_text(None, "hello from a username", user_id="US.5550001", name="Bo")
    await wait_until(lambda: len(gw.sim.messages_to("US.5550001")) == 2)
    assert gw.sim.messages_to("US.5550001")[0]["payload"]["recipient"] == "US.5550001"


async def test_a_duplicate_wamid_is_processed_once_even_after_a_restart(gw):
    user = wa()
    wamid, body = gw.sim.message_notification(user, {"type": "text", "text": {"body": "Is it on time?"}})
    results = await asyncio.gather(gw.sim.deliver(body), gw.sim.deliver(body))  # at once
    assert [s for s, _ in results] == [200, 200]
    assert (await gw.sim.deliver(body))[0] == 200  # and later
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    await gw.stop()
    await gw.start()
    assert (await gw.sim.deliver(body))[0] == 200
    await wait_idle(gw)
    assert len(gw.rasa.messages_from("Is it on time?")) == 1
    assert len(gw.sim.messages_to(user)) == 2
    assert len(gw.rows(user, "in")) == 1


async def test_a_message_accepted_before_a_crash_is_answered_at_the_next_start(gw, monkeypatch):
    user = wa()
    monkeypatch.setattr(WhatsAppChannel, "_schedule", lambda self, mid: None)  # "crash" right after the 200
    assert (await gw.sim.send_text(user, "Do you ship to Austria?"))[1] == [200]
    assert gw.rows(user, "in")[0]["delivery_status"] == "received"
    assert gw.sim.messages_to(user) == []
    monkeypatch.undo()
    await gw.stop()
    await gw.start()
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, what="the recovered answer")
    # the message is marked processed once its answer is out (just after the send completes)
    await wait_until(lambda: gw.rows(user, "in")[0]["delivery_status"] == "processed", what="processed")


async def test_button_list_and_template_replies_reach_rasa_as_payloads(gw):
    user = wa()
    await gw.sim.send_text(user, "Can I pause my subscription?")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    buttons_msg = gw.sim.messages_to(user)[1]
    reply = buttons_msg["payload"]["interactive"]["action"]["buttons"][0]["reply"]
    await gw.sim.press_button(user, reply["id"], reply["title"], context=buttons_msg["id"])
    await wait_until(lambda: gw.rasa.messages_from("/affirm"), what="/affirm at Rasa")
    await gw.sim.choose_row(user, '/choose_article{"article_group":"pause-subscription"}', "Pause", context=None)
    await wait_until(lambda: gw.rasa.messages_from('/choose_article{"article_group":"pause-subscription"}'))
    await gw.sim.template_button(user, "/request_human", "Talk to a person")
    await wait_until(lambda: gw.rasa.messages_from("/request_human"))
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 5)
    stored = [(r["text"], r["meta"]) for r in gw.rows(user, "in")]
    assert stored[1][0] == "/affirm" and '"reply_title": "Yes"' in stored[1][1]
    # what the customer pressed, in its words, kept for the agents (who never see a payload)
    assert [json.loads(meta).get("title") for _, meta in stored] == [None, "Yes", "Pause", "Talk to a person"]


async def test_unsupported_messages_get_a_polite_reply_in_the_customers_language(gw):
    turkish = "90532" + str(uuid.uuid4().int)[:7]
    await gw.sim.send_media(turkish, "image", caption="kargom")
    await wait_until(lambda: gw.sim.messages_to(turkish))
    assert sent_texts(gw.sim, turkish) == ["Üzgünüm, burada yalnızca yazılı mesajları okuyabiliyorum. Lütfen sorunuzu "
                                           "yazın, memnuniyetle yardımcı olurum."]
    german = wa()
    await gw.sim.send_text(german, "Wie kann ich mein Abo kündigen?")
    await wait_until(lambda: len(gw.sim.messages_to(german)) == 2)
    for kind in ("sticker", "audio", "location", "unsupported"):
        await gw.sim.send_media(german, kind)
    await wait_until(lambda: len(gw.sim.messages_to(german)) == 6)
    assert all(t.startswith("Entschuldigung, ich kann hier nur Textnachrichten") for t in sent_texts(gw.sim, german)[2:])
    assert not gw.rasa.messages_from("")


async def test_500_and_429_are_retried_with_backoff_and_sent_once(gw):
    user = wa()
    gw.sim.fail_next(1, "500")
    gw.sim.fail_next(1, "429")
    await gw.sim.send_text(user, "Retry me")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, timeout=30)
    attempts = [r["status"] for r in gw.sim.requests_to(user)]
    assert attempts == [500, 429, 200, 200]
    assert sent_texts(gw.sim, user) == ["Answer to: Retry me", "Did that help?"]
    first = gw.rows(user, "out")[0]
    assert '"attempts": 3' in first["meta"]


async def test_a_400_is_not_retried_and_is_recorded(gw):
    user = wa()
    gw.sim.fail_next(1, "400")
    await gw.sim.send_text(user, "Break me")
    await wait_until(lambda: len(gw.sim.requests_to(user)) == 2)
    await wait_until(lambda: gw.rows(user, "in")[0]["delivery_status"] == "processed")
    assert [r["status"] for r in gw.sim.requests_to(user)] == [400, 200]
    first, second = gw.rows(user, "out")
    assert first["delivery_status"] == "failed" and '"error": "invalid_request"' in first["meta"]
    assert second["delivery_status"] in ("sent", "delivered")


@pytest.mark.slow
async def test_a_send_that_times_out_but_went_through_is_not_sent_again(gw):
    user = wa()
    gw.sim.fail_next(1, "timeout", delay=10.5)  # beyond the channel's 10 s timeout; carried out anyway
    await gw.sim.send_text(user, "Slow Meta")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, timeout=40)
    await wait_idle(gw, "the answer to be done, a (wrong) retry included")
    assert sent_texts(gw.sim, user) == ["Answer to: Slow Meta", "Did that help?"]
    first = gw.rows(user, "out")[0]
    assert first["platform_message_id"] == gw.sim.messages_to(user)[0]["id"]
    assert first["delivery_status"] in ("sent", "delivered")


async def test_131047_from_the_graph_api_fails_the_batch_as_outside_the_window(gw):
    user = wa()
    gw.sim.user(user).window_closed = True  # Meta thinks the window is closed
    await gw.sim.send_text(user, "Window?")
    await wait_until(lambda: gw.rows(user, "in") and gw.rows(user, "in")[0]["delivery_status"] == "processed")
    assert [r["status"] for r in gw.sim.requests_to(user)] == [400]  # not retried; the second not tried
    outs = gw.rows(user, "out")
    assert [r["delivery_status"] for r in outs] == ["failed", "failed"]
    assert all('"error": "outside_24h_window"' in r["meta"] for r in outs)
    assert '131047' in outs[0]["meta"]


async def test_a_late_message_older_than_24_hours_is_answered_but_nothing_is_sent(gw):
    user = wa()
    await gw.sim.send_text(user, "Hello from yesterday", timestamp=time.time() - 25 * 3600)
    await wait_until(lambda: gw.rows(user, "in") and gw.rows(user, "in")[0]["delivery_status"] == "processed")
    assert gw.sim.requests_to(user) == []
    outs = gw.rows(user, "out")
    assert len(outs) == 2 and all(r["delivery_status"] == "failed" for r in outs)
    assert all('"error": "outside_24h_window"' in r["meta"] for r in outs)


async def test_deliver_sends_within_the_window_and_refuses_outside_it(gw):
    user, old = wa(), wa()
    await gw.sim.send_text(user, "I need a person")
    await gw.sim.send_text(old, "I needed a person", timestamp=time.time() - 30 * 3600)
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    await wait_until(lambda: gw.rows(old, "in") and gw.rows(old, "in")[0]["delivery_status"] == "processed")
    with gw.db() as db:
        conv = {src: db.execute("SELECT c.public_id, c.language FROM conversations c JOIN contact_identities i ON "
                                "i.contact_id = c.contact_id WHERE i.source_id = ?", (src,)).fetchone()
                for src in (user, old)}
    ok = await gw.channel.deliver(Recipient(conv[user]["public_id"], user), [Reply("Hi, this is Sam from support.")])
    assert ok.delivered and ok.error is None and len(ok.platform_message_ids) == 1
    assert gw.sim.messages_to(user)[-1]["payload"]["text"]["body"] == "Hi, this is Sam from support."
    row = gw.rows(user, "out")[-1]
    assert row["sender_type"] == "agent" and row["platform_message_id"] == ok.platform_message_ids[0]
    refused = await gw.channel.deliver(Recipient(conv[old]["public_id"], old), [Reply("Hi, this is Sam.")])
    assert not refused.delivered and refused.error == "outside_24h_window"
    row = gw.rows(old, "out")[-1]
    assert row["text"] == "Hi, this is Sam." and row["delivery_status"] == "failed"
    assert '"error": "outside_24h_window"' in row["meta"]
    assert gw.sim.requests_to(old) == []


async def test_statuses_never_go_backwards_and_failures_are_recorded(gw):
    user = wa()
    gw.sim.user(user).auto_statuses = ()
    await gw.sim.send_text(user, "Statuses please")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    await wait_until(lambda: all(r["delivery_status"] == "sent" for r in gw.rows(user, "out")))
    first, second = [m["id"] for m in gw.sim.messages_to(user)]
    assert await gw.sim.send_statuses(first, ["read", "delivered", "sent"]) == [200, 200, 200]
    err = [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."}}]
    await gw.sim.send_statuses(second, ["failed"], errors=err)
    await gw.sim.send_statuses(second, ["sent"])
    a, b = gw.rows(user, "out")
    assert a["delivery_status"] == "read"
    assert all(f'"{s}"' in a["meta"] for s in ("read", "delivered", "sent"))
    assert b["delivery_status"] == "failed" and '"error": "undeliverable"' in b["meta"] and "131026" in b["meta"]
    # a status for a message nobody knows is acknowledged and ignored
    assert await gw.sim.send_statuses("wamid.unknown", ["delivered"]) == [200]
