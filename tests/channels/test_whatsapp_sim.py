"""The WhatsApp Cloud API simulator itself: the Graph API contract it plays (auth, validation,
error shapes, the 24-hour window, injected failures, success body), the notifications it signs
and sends, its HTTP control endpoints and its command line."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from aiohttp import web

from bot.ops.stack import free_port
from knowledge_base.config import PROJECT_ROOT
from tests.conftest import wait_until
from tests.whatsapp_sim import WhatsAppSimulator

TOKEN, SECRET, PHONE_ID = "tok", "sec", "4242"


class Receiver:
    """A stand-in webhook that checks Meta's signature and keeps what it got."""

    def __init__(self):
        self.got: list[dict] = []
        self.raw: list[bytes] = []
        self.port = free_port()

    async def handle(self, request):
        raw = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if request.headers.get("X-Hub-Signature-256") != expected:
            return web.Response(status=403)
        self.got.append(json.loads(raw))
        self.raw.append(raw)
        return web.Response(text="OK")

    async def verify(self, request):
        q = request.query
        if q.get("hub.mode") == "subscribe" and q.get("hub.verify_token") == "vt":
            return web.Response(text=q["hub.challenge"])
        return web.Response(status=403)


@pytest.fixture
async def sim():
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    app.router.add_get("/hook", receiver.verify)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    s = WhatsAppSimulator(webhook_url=f"http://127.0.0.1:{receiver.port}/hook", app_secret=SECRET,
                          access_token=TOKEN, phone_number_id=PHONE_ID, verify_token="vt", status_delay=0.01)
    await s.start()
    s.receiver = receiver
    async with aiohttp.ClientSession() as http:
        s.http = http
        yield s
    await s.stop()
    await runner.cleanup()


async def graph(s, body, token=TOKEN, phone_id=PHONE_ID):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with s.http.post(f"{s.base_url}/v23.0/{phone_id}/messages", json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def text(to, body="hi", **extra):
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
            "text": {"body": body}, **extra}


async def test_notifications_are_meta_shaped_and_signed(sim):
    wamid, statuses = await sim.send_text("4915100000001", "Hallo", name="Ada", user_id="DE.77")
    assert statuses == [200]
    [note] = sim.receiver.got
    assert note["object"] == "whatsapp_business_account"
    value = note["entry"][0]["changes"][0]["value"]
    assert note["entry"][0]["changes"][0]["field"] == "messages"
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": "15550001234", "phone_number_id": PHONE_ID}
    assert value["contacts"] == [{"profile": {"name": "Ada"}, "wa_id": "4915100000001", "user_id": "DE.77"}]
    [msg] = value["messages"]
    assert msg["id"] == wamid and wamid.startswith("wamid.") and msg["from"] == "4915100000001"
    assert msg["type"] == "text" and msg["text"] == {"body": "Hallo"} and msg["timestamp"].isdigit()
    # duplicates: Meta delivers at least once
    _, statuses = await sim.send_text("4915100000001", "again", copies=2)
    assert statuses == [200, 200] and sim.receiver.got[-1] == sim.receiver.got[-2]
    assert (await sim.verify_webhook())["verified"]
    assert not (await sim.verify_webhook("wrong"))["verified"]


async def wait_for_notifications(sim, n: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(sim.receiver.got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return sim.receiver.got


def statuses_in(notes: list[dict]) -> list[dict]:
    return [st for n in notes for e in n["entry"] for c in e["changes"] for st in c["value"].get("statuses") or []]


async def test_notifications_are_signed_over_metas_escaped_unicode_json(sim):
    text = "Grüße aus Köln 😀 – siehe https://example.com/a?b=1"
    await sim.send_text("4915100000010", text, name="Jürgen")
    [raw] = sim.receiver.raw  # the receiver checked the signature over exactly these bytes
    assert raw.isascii() and b"\\u00fc" in raw and b"\\ud83d\\ude00" in raw and b"https:\\/\\/example.com" in raw
    assert b": " not in raw and b", " not in raw  # compact, as Meta sends it
    value = sim.receiver.got[0]["entry"][0]["changes"][0]["value"]
    assert value["messages"][0]["text"]["body"] == text and value["contacts"][0]["profile"]["name"] == "Jürgen"


async def test_many_messages_and_statuses_arrive_in_one_batched_post(sim):
    for n in range(3):
        await sim.send_text(f"491510000002{n}", "hello")
    sim.receiver.got.clear()
    sim.batch_window = 0.3
    sent = [await graph(sim, text(f"491510000002{n}")) for n in range(3)]  # their statuses follow, batched
    answers = await asyncio.gather(*(sim.send_text(f"491510000002{n}", f"question {n}") for n in range(3)))
    assert [s for _, s in answers] == [[200]] * 3
    await wait_for_notifications(sim, 2)
    await asyncio.sleep(0.5)
    sizes = [(len([m for e in n["entry"] for c in e["changes"] for m in c["value"].get("messages") or []]),
              len(statuses_in([n]))) for n in sim.receiver.got]
    assert sum(m for m, _ in sizes) == 3 and sum(s for _, s in sizes) == 6  # sent + delivered of each send
    assert any(m and s for m, s in sizes), sizes  # messages and statuses together in one POST
    assert len(sim.receiver.got) <= 3
    assert {st["id"] for st in statuses_in(sim.receiver.got)} == {b["messages"][0]["id"] for _, b in sent}
    # merged into one change's lists, the other shape Meta uses
    notes = [sim.message_notification(f"4915100000{n:03d}", {"type": "text", "text": {"body": "x"}})[1]
             for n in range(40, 45)]
    merged = sim.batch(notes, one_value=True)
    [change] = merged["entry"][0]["changes"]
    assert len(change["value"]["messages"]) == 5 and len(change["value"]["contacts"]) == 5


async def test_131047_can_come_in_a_failed_status_after_the_send_was_accepted(sim):
    await sim.send_text("4915100000030", "hi", timestamp=time.time() - 25 * 3600)
    sim.user("4915100000030").reengagement_via = "status"
    sim.receiver.got.clear()
    status, body = await graph(sim, text("4915100000030", biz_opaque_callback_data="m:x:0"))
    assert status == 200 and body["messages"][0]["id"].startswith("wamid.")  # accepted ...
    await wait_for_notifications(sim, 1)
    [failed] = statuses_in(sim.receiver.got)  # ... then refused
    assert failed["status"] == "failed" and failed["id"] == body["messages"][0]["id"]
    assert failed["errors"][0]["code"] == 131047 and failed["errors"][0]["title"] == "Re-engagement message"
    assert failed["biz_opaque_callback_data"] == "m:x:0" and "pricing" not in failed and "conversation" not in failed
    assert "contacts" not in sim.receiver.got[0]["entry"][0]["changes"][0]["value"]
    assert sim.messages_to("4915100000030") == []  # the customer got nothing


async def test_status_payloads_carry_only_the_fields_meta_sends(sim):
    sim.user("4915100000031").auto_statuses = ("sent", "delivered", "read")
    await sim.send_text("4915100000031", "hi")
    sim.receiver.got.clear()
    await graph(sim, text("4915100000031"))
    sent, delivered, read = statuses_in(await wait_for_notifications(sim, 3))
    assert sent["conversation"]["expiration_timestamp"] and sent["pricing"]["pricing_model"] == "PMP"
    assert "expiration_timestamp" not in delivered["conversation"] and delivered["pricing"]
    assert "pricing" not in read and "conversation" not in read  # only with "sent" and one of delivered/read
    assert "biz_opaque_callback_data" not in sent and "errors" not in sent
    sim.receiver.got.clear()  # Graph API v24.0 on: no conversation object at all
    async with sim.http.post(f"{sim.base_url}/v24.0/{PHONE_ID}/messages", json=text("4915100000031"),
                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
    sent, delivered, read = statuses_in(await wait_for_notifications(sim, 3))
    assert all("conversation" not in st for st in (sent, delivered, read)) and sent["pricing"] and delivered["pricing"]


async def test_a_send_within_the_window_succeeds_with_metas_body_and_statuses_follow(sim):
    await sim.send_text("4915100000002", "Hallo")
    status, body = await graph(sim, text("4915100000002", biz_opaque_callback_data="m:x:0"))
    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "4915100000002", "wa_id": "4915100000002"}]
    assert body["messages"][0]["id"].startswith("wamid.")
    deadline = time.monotonic() + 5
    while len(sim.receiver.got) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    statuses = [n["entry"][0]["changes"][0]["value"]["statuses"][0] for n in sim.receiver.got[1:]]
    assert [s["status"] for s in statuses] == ["sent", "delivered"]
    assert all(s["id"] == body["messages"][0]["id"] and s["biz_opaque_callback_data"] == "m:x:0" for s in statuses)
    assert sim.messages_to("4915100000002")[0]["payload"]["text"]["body"] == "hi"


@pytest.mark.parametrize("body,token,phone_id,status,code", [
    (text("1"), "wrong", PHONE_ID, 401, 190),
    (text("1"), None, PHONE_ID, 400, 104),
    (text("1"), TOKEN, "999", 400, 100),
    ({"to": "1", "type": "text", "text": {"body": "x"}}, TOKEN, PHONE_ID, 400, 100),
    (text("1", "x" * 4097), TOKEN, PHONE_ID, 400, 100),
    ({**text("1"), "text": {}}, TOKEN, PHONE_ID, 400, 100),
    ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, TOKEN, PHONE_ID, 400, 100),
    ({"messaging_product": "whatsapp", "to": "1", "type": "interactive", "interactive": {
        "type": "button", "body": {"text": "x"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]}}}, TOKEN, PHONE_ID, 400, 100),
    ({"messaging_product": "whatsapp", "to": "1", "type": "interactive", "interactive": {
        "type": "button", "body": {"text": "x"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "b", "title": "x" * 21}}]}}}, TOKEN, PHONE_ID, 400, 100),
    ({"messaging_product": "whatsapp", "to": "1", "type": "interactive", "interactive": {
        "type": "list", "body": {"text": "x"}, "action": {"button": "Go", "sections": [{"rows": [
            {"id": f"r{i}", "title": "t"} for i in range(11)]}]}}}, TOKEN, PHONE_ID, 400, 100),
    ({"messaging_product": "whatsapp", "to": "1", "type": "interactive", "interactive": {
        "type": "list", "body": {"text": "x"}, "action": {"button": "Go", "sections": [{"rows": [
            {"id": "r", "title": "y" * 25}]}]}}}, TOKEN, PHONE_ID, 400, 100),
    ({"messaging_product": "whatsapp", "to": "1", "type": "interactive", "interactive": {
        "type": "button", "body": {"text": "z" * 1025}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "b", "title": "ok"}}]}}}, TOKEN, PHONE_ID, 400, 100),
])
async def test_bad_calls_get_metas_errors(sim, body, token, phone_id, status, code):
    await sim.send_text("1", "open the window")
    got_status, got = await graph(sim, body, token=token, phone_id=phone_id)
    assert (got_status, got["error"]["code"]) == (status, code)
    assert got["error"]["type"] == "OAuthException" and got["error"]["fbtrace_id"] and got["error"]["message"]
    if code == 100 and "details" in got["error"].get("error_data", {}):
        assert got["error"]["error_data"]["details"]
    assert sim.messages_to("1") == []


async def test_the_24_hour_window_is_enforced_with_131047(sim):
    status, body = await graph(sim, text("4915100000003"))  # never wrote
    assert status == 400 and body["error"]["code"] == 131047
    await sim.send_text("4915100000003", "hi", timestamp=time.time() - 24 * 3600 - 60)  # wrote 24 h ago
    assert (await graph(sim, text("4915100000003")))[1]["error"]["code"] == 131047
    await sim.send_text("4915100000003", "hi again")
    assert (await graph(sim, text("4915100000003")))[0] == 200
    sim.user("4915100000003").window_closed = True
    assert (await graph(sim, text("4915100000003")))[1]["error"]["code"] == 131047
    template = {"messaging_product": "whatsapp", "to": "4915100000003", "type": "template",
                "template": {"name": "hello_world", "language": {"code": "en_US"}}}
    assert (await graph(sim, template))[0] == 200  # templates are allowed outside the window


async def test_injected_failures_then_success(sim):
    await sim.send_text("4915100000004", "hi")
    sim.fail_next(1, "500")
    sim.fail_next(1, "429")
    sim.fail_next(1, "pair_rate_limit")
    results = [await graph(sim, text("4915100000004")) for _ in range(4)]
    assert [(s, b.get("error", {}).get("code")) for s, b in results] == [(500, 131000), (429, 130429), (400, 131056),
                                                                          (200, None)]
    assert len(sim.messages_to("4915100000004")) == 1
    # a delay beyond the client's timeout; the request is carried out after it (accept=True)
    sim.fail_next(1, "timeout", delay=0.5)
    with pytest.raises(asyncio.TimeoutError):
        async with sim.http.post(f"{sim.base_url}/v23.0/{PHONE_ID}/messages", json=text("4915100000004"),
                                 headers={"Authorization": f"Bearer {TOKEN}"},
                                 timeout=aiohttp.ClientTimeout(total=0.2)) as resp:
            await resp.read()
    await wait_until(lambda: len(sim.messages_to("4915100000004")) == 2, timeout=5,
                     what="the request to be carried out after its delay")


async def test_mark_as_read_with_typing_indicator(sim):
    wamid, _ = await sim.send_text("4915100000005", "hi")
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid, "typing_indicator": {"type": "text"}}
    assert await graph(sim, body) == (200, {"success": True})
    assert sim.reads_of(wamid)[0]["typing"] is True
    status, err = await graph(sim, {**body, "message_id": "wamid.nope"})
    assert status == 400 and err["error"]["code"] == 100


async def test_the_http_control_endpoints(sim):
    async with sim.http.post(f"{sim.base_url}/_sim/inbound", json={"from": "4915100000006", "text": "Hallo"}) as r:
        got = await r.json()
    assert got["webhook_statuses"] == [200] and got["message_id"].startswith("wamid.")
    async with sim.http.post(f"{sim.base_url}/_sim/fail", json={"count": 1, "kind": "500"}) as r:
        assert r.status == 200
    assert (await graph(sim, text("4915100000006")))[0] == 500
    assert (await graph(sim, text("4915100000006")))[0] == 200
    async with sim.http.get(f"{sim.base_url}/_sim/messages", params={"to": "4915100000006"}) as r:
        sent = await r.json()
    assert len(sent) == 1 and sent[0]["payload"]["text"]["body"] == "hi"
    async with sim.http.get(f"{sim.base_url}/_sim/requests") as r:
        assert [q["status"] for q in await r.json()] == [500, 200]
    async with sim.http.post(f"{sim.base_url}/_sim/fail", json={"kind": "nonsense"}) as r:
        assert r.status == 400


def test_the_command_line_runs_the_simulator():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.whatsapp_sim", "--port", str(port), "--app-secret", "s",
                             "--access-token", "t", "--phone-number-id", "1", "--webhook", "http://127.0.0.1:9/x"],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/", timeout=2) as resp:
                    assert json.loads(resp.read())["status"] == "ok"
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "simulator" in proc.stdout.read()
