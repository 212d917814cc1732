"""The outgoing webhook: signed conversation events to a tiny local receiver, retried after a
failure, sent from the outbox by a background task (a restart loses none)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

from aiohttp import web

from bot.ops.stack import free_port

from .conftest import make_settings, start_gateway

SECRET = "whsec-test-1234"


class Receiver:
    def __init__(self, fail_first: int = 0):
        self.events: list[dict] = []
        self.raw: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        self.calls = 0
        self.answering = asyncio.Event()  # cleared: calls are held (a slow receiver)
        self.answering.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        await self.answering.wait()
        body = await request.read()
        self.raw.append((dict(request.headers), body))
        if self.calls <= self.fail_first:
            return web.Response(status=500)
        # what a receiver does: constant-time signature check over the raw body, then freshness
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Signature-256", "")):
            return web.Response(status=401)
        event = json.loads(body)
        if abs(time.time() - int(request.headers["X-Webhook-Timestamp"])) > 300:
            return web.Response(status=400)
        self.events.append(event)
        return web.Response(status=204)


async def serve(receiver: Receiver):
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook"


async def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_events_are_signed_retried_and_survive_a_restart(tmp_path, assistant):
    receiver = Receiver(fail_first=1)
    runner, url = await serve(receiver)
    settings = make_settings(tmp_path, assistant, OUTGOING_WEBHOOK_URL=url, OUTGOING_WEBHOOK_SECRET=SECRET)
    gw = await start_gateway(settings, tmp_path / "gw.db")
    try:
        await gw.add_agent("ada@example.com", "Ada", "admin")
        ada = gw.agent_client()
        await ada.login("ada@example.com")
        s = f"hook-{uuid.uuid4().hex[:6]}"
        receiver.answering.clear()  # the receiver holds the hand-off's event: the customer does not wait for it
        t0 = time.monotonic()
        assert (await asyncio.wait_for(gw.ask(s, "human with email"), 20))[0] == 200
        await wait_for(lambda: receiver.calls == 1)  # sent meanwhile, and held
        receiver.answering.set()
        _, q = await ada.get("/api/inbox/conversations?view=queue")
        cid = q["conversations"][0]["id"]
        await ada.post(f"/api/inbox/conversations/{cid}/claim")
        claimed_within = time.monotonic() - t0
        await ada.post(f"/api/inbox/conversations/{cid}/handback")
        await wait_for(lambda: len(receiver.events) == 3)
        # a retried event can arrive after later ones: receivers order by created_at
        events = sorted(receiver.events, key=lambda e: e["created_at"])
        assert [e["event"] for e in events] == ["conversation.handed_off", "conversation.assigned",
                                                "conversation.handed_back"]
        assert receiver.calls == 4, "the first attempt failed (500) and was retried"
        first = events[0]
        assert first["attempt"] == 2 and first["conversation"]["id"] == cid
        assert first["handoff"]["captured"] == {"name": "Cara Customer", "email": "cara@example.com"}
        assert first["conversation"]["contact"]["email"] == "cara@example.com"
        assert events[1]["agent"]["name"] == "Ada" and 0 <= events[1]["wait_seconds"] <= claimed_within
        headers, body = receiver.raw[-1]
        assert headers["X-Webhook-Event"] == json.loads(body)["event"]
        assert headers["X-Webhook-Id"] == json.loads(body)["id"]
        # a wrong secret would not verify
        assert headers["X-Signature-256"] != "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
        await ada.close()
    finally:
        await gw.close()

    # events written while the receiver is down are sent after a restart
    await runner.cleanup()
    gw = await start_gateway(settings, tmp_path / "gw.db")
    try:
        await gw.ask(f"hook-{uuid.uuid4().hex[:6]}", "I am angry")
    finally:
        await gw.close()
    receiver2 = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver2.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = int(url.split(":")[2].split("/")[0])
    await web.TCPSite(runner, "127.0.0.1", port).start()
    gw = await start_gateway(settings, tmp_path / "gw.db")
    try:
        await wait_for(lambda: len(receiver2.events) == 1, timeout=30)
        assert receiver2.events[0]["event"] == "conversation.handed_off"
        assert receiver2.events[0]["conversation"]["priority"] == 2
    finally:
        await gw.close()
        await runner.cleanup()
