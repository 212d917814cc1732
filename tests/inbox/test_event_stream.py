"""The event stream (bot/events.py) with the real gateway: every stored message and structured event
is in the event_stream table exactly once, in order, readable by admins page by page; with
EVENT_BROKER_URL the same events reach a RabbitMQ queue (the machine's, on 5672, a queue of the
test's own), a broker outage loses nothing, and deleting a contact removes its stream rows."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid

import pytest

from bot.settings import Settings
from bot.ops.stack import free_port, write_rasa_config

from ..conftest import require_service, wait_until
from .conftest import make_settings, start_gateway

RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


async def one_full_conversation(gateway, agents) -> tuple[str, str]:
    """A bot answer, a hand-off, a claim, an agent's reply, a resolve and a CSAT answer."""
    ben = agents["ben"]
    s = f"cust-{uuid.uuid4().hex[:8]}"
    await gateway.ask(s, "where is my parcel")
    await gateway.ask(s, "human please")
    conv = (await ben.get("/api/inbox/conversations?view=queue"))[1]["conversations"][0]["id"]
    assert (await ben.post(f"/api/inbox/conversations/{conv}/claim"))[0] == 200
    assert (await ben.post(f"/api/inbox/conversations/{conv}/reply", {"text": "On its way!"}))[0] == 201
    assert (await ben.post(f"/api/inbox/conversations/{conv}/resolve"))[0] == 200
    await gateway.ask(s, "5")
    return s, conv


def stored(gateway) -> tuple[list[str], list[str]]:
    with sqlite3.connect(gateway.db_path) as db:
        messages = [r[0] for r in db.execute("SELECT public_id FROM messages ORDER BY id")]
        events = [r[0] for r in db.execute("SELECT type FROM conversation_events ORDER BY id")]
    return messages, events


async def all_events(client, limit=7) -> list[dict]:
    out, after = [], 0
    while True:
        status, page = await client.get(f"/api/admin/events?after={after}&limit={limit}")
        assert status == 200
        out += page["events"]
        if not page["events"]:
            return out
        after = page["next_after"]


async def test_every_message_and_event_is_in_the_stream_once_in_order(gateway, agents):
    _, conv = await one_full_conversation(gateway, agents)
    stream = await all_events(agents["ada"])
    messages, events = stored(gateway)
    ids = [e["id"] for e in stream]
    assert ids == sorted(ids) and len(set(e["event_id"] for e in stream)) == len(stream)
    assert [e["payload"]["message_id"] for e in stream if e["type"].startswith("message.")] == messages
    assert [e["type"][len("event."):] for e in stream if e["type"].startswith("event.")] == events
    assert stream[0]["type"] == "conversation.created" and stream[0]["contact_id"]
    assert {e["conversation_id"] for e in stream} == {conv}
    kinds = [e["type"] for e in stream]
    for needed in ("message.in", "message.out", "event.kb_answer", "event.handoff", "event.status", "event.assigned",
                   "event.survey"):
        assert needed in kinds, needed
    reply = next(e for e in stream if e["type"] == "message.out" and e["payload"]["text"] == "On its way!")
    assert reply["payload"]["sender_type"] == "agent"
    survey = next(e for e in stream if e["type"] == "event.survey")
    assert survey["payload"]["csat"] == 5


async def test_the_stream_is_for_admins_and_checks_its_parameters(gateway, agents):
    assert (await agents["ben"].get("/api/admin/events"))[0] == 403
    for query in ("after=x", "after=-1", "limit=0", "limit=1001"):
        status, body = await agents["ada"].get(f"/api/admin/events?{query}")
        assert status == 400 and "after" in body["error"]


async def test_deleting_a_contact_deletes_its_stream_rows(gateway, agents):
    s, conv = await one_full_conversation(gateway, agents)
    await gateway.ask("someone-else", "hello")
    ada = agents["ada"]
    before = await all_events(ada)
    async with ada.http.delete(gateway.url + f"/api/admin/contacts/rest:{s}", headers={"X-CSRF-Token": ada.csrf}) as r:
        body = await r.json()
        assert r.status == 200 and body["event_stream_rows"] == sum(e["conversation_id"] == conv for e in before)
    left = await all_events(ada)
    assert [e["id"] for e in left] == [e["id"] for e in before if e["conversation_id"] != conv]  # the other's stay
    assert left and all(e["payload"].get("text") != "where is my parcel" for e in left)
    assert {e["type"] for e in left} == {"conversation.created", "message.in", "message.out", "event.kb_answer"}


async def consume(queue_name: str, n: int, timeout: float = 20.0) -> list[dict]:
    import aio_pika

    conn = await aio_pika.connect(RABBIT)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(queue_name, durable=True)
        out = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < n and asyncio.get_running_loop().time() < deadline:
            msg = await q.get(no_ack=False, fail=False)
            if msg is None:
                await asyncio.sleep(0.1)
                continue
            out.append({"body": json.loads(msg.body), "message_id": msg.message_id, "persistent": msg.delivery_mode})
            await msg.ack()
        await q.delete(if_unused=False, if_empty=False)
        return out
    finally:
        await conn.close()


@pytest.fixture
async def rabbit():
    import aio_pika

    with require_service("RabbitMQ", "127.0.0.1:5672"):
        conn = await aio_pika.connect(RABBIT, timeout=3)
        await conn.close()


async def test_with_a_broker_every_event_reaches_the_queue_and_an_outage_loses_none(tmp_path, assistant, rabbit,
                                                                                     caplog):
    queue = f"test_events_{uuid.uuid4().hex[:8]}"
    down = make_settings(tmp_path, assistant, EVENT_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
                         EVENT_BROKER_QUEUE=queue)
    gw = await start_gateway(down, tmp_path / "gw.db")
    try:  # the broker is unreachable: the customer is answered, the events wait in the table
        status, replies = await gw.ask("cust-a", "where is my parcel")
        assert status == 200 and replies[0]["text"] == "bot: where is my parcel"
        await wait_until(lambda: any("publishing to the broker failed" in r.getMessage() for r in caplog.records),
                         what="the publisher to try the unreachable broker")
    finally:
        await gw.close()
    with sqlite3.connect(tmp_path / "gw.db") as db:
        waiting = db.execute("SELECT count(*) FROM event_stream WHERE published_at IS NULL").fetchone()[0]
    assert waiting == 4  # conversation.created, message.in, message.out, event.kb_answer

    up = make_settings(tmp_path, assistant, EVENT_BROKER_URL=RABBIT, EVENT_BROKER_QUEUE=queue)
    gw = await start_gateway(up, tmp_path / "gw.db")
    try:
        await gw.ask("cust-b", "and my invoice")
        got = await consume(queue, 8)
    finally:
        await gw.close()
    with sqlite3.connect(tmp_path / "gw.db") as db:
        rows = db.execute("SELECT id, event_id, type, published_at FROM event_stream ORDER BY id").fetchall()
    assert [g["body"]["id"] for g in got] == [r[0] for r in rows]  # all eight, in order, once
    assert [g["message_id"] for g in got] == [r[1] for r in rows]
    assert all(r[3] is not None for r in rows) and all(int(g["persistent"]) == 2 for g in got)
    texts = [g["body"]["payload"].get("text") for g in got if g["body"]["type"] == "message.in"]
    assert texts == ["where is my parcel", "and my invoice"]


def test_rasa_gets_its_own_pika_event_broker_from_the_same_setting(tmp_path):
    import yaml

    s = Settings.from_env({"EVENT_BROKER_URL": "amqp://bus%40user:p%3Ass@mq.internal:5673/",
                           "RASA_EVENT_QUEUE": "tracker_events", "VAR_DIR": str(tmp_path)})
    endpoints, _ = write_rasa_config(s, tmp_path)
    broker = yaml.safe_load(endpoints.read_text())["event_broker"]
    assert broker == {"type": "pika", "url": "mq.internal", "port": 5673, "username": "bus@user",
                      "password": "p:ss", "queues": ["tracker_events"]}
    off = Settings.from_env({"VAR_DIR": str(tmp_path)})
    endpoints, _ = write_rasa_config(off, tmp_path)
    assert "event_broker" not in yaml.safe_load(endpoints.read_text())


def test_a_bad_broker_url_is_refused():
    from knowledge_base.config import SettingsError

    with pytest.raises(SettingsError, match="EVENT_BROKER_URL must be"):
        Settings.from_env({"EVENT_BROKER_URL": "http://rabbit:5672"})
