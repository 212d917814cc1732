"""Faults under load, on the real stack (Rasa trained on the real data, the action server with the real
index, the gateway on SQLite): while REST and widget customers send FAQ questions back to back, the
action server is killed (SIGKILL) and started again, then one of the two Rasa servers. Nothing
accepted is lost or stored twice, nobody meets silence (REST callers get 503 and retry with the same
message_id; widget customers are told "One moment, please ..." and get their answer when the
assistant is back), and every conversation goes on afterwards."""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid

import aiohttp
import pytest

from bot.i18n import t
from bot.ops.stack import http_ok

pytestmark = [pytest.mark.stack, pytest.mark.slow]

QUESTIONS = ["How do I reset my password?", "Wie kann ich mein Abo kündigen?", "Siparişimi nasıl iade ederim?",
             "請求書はどこでダウンロードできますか", "Can I pause my subscription?", "Which payment methods do you accept?"]
FINAL = "How do I reset my password?"


class Record:
    def __init__(self):
        self.errors: list[str] = []
        self.rest_ids: dict[str, list] = {}  # message_id -> replies of the 200 it finally got
        self.rest_503 = 0
        self.ws_ids: list[str] = []
        self.ws_notices = 0


def kill(child) -> None:
    os.killpg(child.proc.pid, signal.SIGKILL)
    child.proc.wait(30)


async def start_and_wait(child, *urls: str, timeout: float = 240) -> None:
    # started from this (the main) thread: a child dies with the thread that started it (PDEATHSIG)
    child.start()
    deadline = time.time() + timeout
    loop = asyncio.get_running_loop()
    for url in (child.ready_url, *urls):
        while not await loop.run_in_executor(None, http_ok, url):
            assert child.alive(), f"{child.name} died while starting:\n{child.tail()}"
            assert time.time() < deadline, f"{child.name} not ready at {url}"
            await asyncio.sleep(0.5)


async def rest_customer(http, url: str, name: str, rec: Record, stop: asyncio.Event, rng: random.Random) -> None:
    k = 0
    while not stop.is_set():
        mid = uuid.uuid4().hex
        # a new customer every 10 messages: one sender may send RATE_LIMIT_SENDER_PER_MINUTE (30) a minute
        body = {"sender": f"{name}-{k // 10}", "message": rng.choice(QUESTIONS), "metadata": {"message_id": mid}}
        k += 1
        for _ in range(240):  # a client retries a 503 with the same message_id
            async with http.post(url + "/webhooks/rest/webhook", json=body) as resp:
                raw = await resp.read()
                try:
                    payload = json.loads(raw)
                except ValueError:
                    rec.errors.append(f"REST {resp.status} not JSON: {raw[:100]!r}")
                    break
                if resp.status == 503:
                    rec.rest_503 += 1
                    await asyncio.sleep(0.5)
                    continue
                if resp.status != 200:
                    rec.errors.append(f"REST {resp.status}: {payload}")
                elif not payload:
                    rec.errors.append(f"REST silence for {body['message']!r}")
                rec.rest_ids[mid] = payload
                break
        else:
            rec.errors.append(f"REST message {mid} never answered")


async def ws_turn(ws, cid: str, text: str) -> list[dict]:
    await ws.send_json({"type": "message", "id": cid, "text": text})
    frames: list[dict] = []
    deadline = time.monotonic() + 90
    while True:
        frame = json.loads((await ws.receive(timeout=max(1.0, deadline - time.monotonic()))).data)
        frames.append(frame)
        if frame["type"] == "error":
            raise AssertionError(f"the widget refused message {cid}: {frame}")
        if frame["type"] == "typing" and frame["on"] is False and any(f["type"] == "ack" for f in frames):
            return frames


async def ws_customer(http, url: str, visitor: str, rec: Record, stop: asyncio.Event, rng: random.Random) -> None:
    ws = await http.ws_connect(url.replace("http", "ws", 1) + "/webhooks/webchat/ws", origin=url)
    await ws.send_json({"type": "hello", "visitor": visitor, "language": "en"})
    k = 0
    try:
        while not stop.is_set():
            cid = f"{visitor[:8]}-{k}"
            k += 1
            frames = await ws_turn(ws, cid, rng.choice(QUESTIONS))
            rec.ws_ids.append(cid)
            said = [f for f in frames if f["type"] == "message" and f.get("role") != "customer"]
            rec.ws_notices += sum(1 for f in said if f.get("text") in {t("assistant_unavailable", x)
                                                                      for x in ("en", "de", "tr", "ja")})
            if not said:
                rec.errors.append(f"widget silence for message {cid}")
            await asyncio.sleep(0.3)  # a person reads (the widget takes at most 5 frames a second)
    finally:
        await ws.close()


async def test_killing_the_action_server_and_a_rasa_server_under_load_loses_nothing(running_stack):
    stack = running_stack
    actions, rasa2 = stack.child("action server"), stack.child("rasa 2")
    rec, stop = Record(), asyncio.Event()
    tag = uuid.uuid4().hex[:6]

    async def faults() -> None:
        await asyncio.sleep(2)
        kill(actions)
        await asyncio.sleep(3)
        await start_and_wait(actions, stack.action_url + "/ready")
        await asyncio.sleep(2)
        kill(rasa2)  # its customers go to the other Rasa server meanwhile
        await asyncio.sleep(3)
        await start_and_wait(rasa2)
        await asyncio.sleep(2)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        rng = random.Random(3)
        customers = [rest_customer(http, stack.url, f"load-{tag}-r{i}", rec, stop, rng) for i in range(5)]
        customers += [ws_customer(http, stack.url, f"v{tag}w{i}" + uuid.uuid4().hex[:10], rec, stop, rng)
                      for i in range(3)]
        running = [asyncio.ensure_future(c) for c in customers]
        try:
            await faults()
        finally:
            stop.set()
            await asyncio.gather(*running)

        # the widget's deferred messages of this test are answered within a few rounds of bot.deferred
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with stack.db() as db:
                waiting = db.execute("SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                                     "JOIN contact_identities i ON i.contact_id = c.contact_id WHERE m.direction = 'in' "
                                     "AND m.channel = 'webchat' AND m.delivery_status IN ('deferred', 'received') "
                                     "AND i.source_id LIKE ?", (f"v{tag}w%",)).fetchone()[0]
            if not waiting:
                break
            await asyncio.sleep(1)

        # and every conversation goes on
        async with http.post(stack.url + "/webhooks/rest/webhook",
                             json={"sender": f"load-{tag}-final", "message": FINAL}) as resp:
            assert resp.status == 200 and any("/help/" in (m.get("text") or "") for m in await resp.json())
        ws = await http.ws_connect(stack.url.replace("http", "ws", 1) + "/webhooks/webchat/ws", origin=stack.url)
        await ws.send_json({"type": "hello", "visitor": f"v{tag}final" + uuid.uuid4().hex[:8], "language": "en"})
        frames = await ws_turn(ws, "final", FINAL)
        await ws.close()
        assert any("/help/" in (f.get("text") or "") for f in frames if f["type"] == "message")

    assert rec.errors == []
    assert rec.rest_503 + rec.ws_notices > 0, "the outage was never felt: the test exercised nothing"
    assert len(rec.rest_ids) >= 10 and len(rec.ws_ids) >= 6
    with stack.db() as db:
        stored_ids = [r[0].split(":", 1)[1] for r in db.execute(  # the REST channel stores "sender:message_id"
            "SELECT platform_message_id FROM messages WHERE channel = 'rest' AND direction = 'in' AND "
            "platform_message_id LIKE ?", (f"load-{tag}-%",))]
        ws_rows = db.execute("SELECT m.public_id, m.delivery_status, m.platform_message_id FROM messages m "
                             "JOIN conversations c ON c.id = m.conversation_id JOIN contact_identities i "
                             "ON i.contact_id = c.contact_id WHERE m.channel = 'webchat' AND m.direction = 'in' "
                             "AND i.source_id LIKE ?", (f"v{tag}w%",)).fetchall()
        unanswered = [r["public_id"] for r in ws_rows if r["delivery_status"] == "processed" and not [
            x for x in db.execute("SELECT meta FROM messages WHERE direction = 'out' AND conversation_id = "
                                  "(SELECT conversation_id FROM messages WHERE public_id = ?)", (r["public_id"],))
            if json.loads(x["meta"] or "{}").get("in_reply_to") == r["public_id"]
            and json.loads(x["meta"] or "{}").get("text_key") != "assistant_unavailable"]]
    assert sorted(stored_ids) == sorted(rec.rest_ids)  # every REST message stored, once
    assert len(ws_rows) == len(rec.ws_ids)  # every widget message stored once
    assert all(r["delivery_status"] in ("processed", "superseded") for r in ws_rows), [tuple(r) for r in ws_rows]
    assert unanswered == []  # answered, not only told to wait
