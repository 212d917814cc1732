"""One customer, many channels (bot/insights/identity.py) on the real gateway with WhatsApp (the simulator)
and the website widget (WebSocket): a proved website user id makes two devices one contact; an
address confirmed by an agent links a WhatsApp contact and a web contact, the bot then answers as
one customer and the agent sees both channels in one timeline; an admin undoes the merge and the
pair is not merged again; an address the customer merely typed links nothing."""
from __future__ import annotations

import sqlite3

import pytest

from bot.channels.webchat_frames import user_hash
from bot.staff import accounts
from bot.keys import SESSIONMAKER

from ..inbox.conftest import PASSWORD, AgentClient
from .test_webchat_protocol import SECRET, SITE, ask, connect
from .test_whatsapp_channel import wa, wait_until, whatsapp_gateway


@pytest.fixture
async def gw(tmp_path):
    async with whatsapp_gateway(tmp_path, widget_identity_secret=SECRET, widget_allowed_origins=(SITE,)) as gateway:
        yield gateway


async def staff(gw, role: str = "agent") -> AgentClient:
    email = f"{role}@example.com"
    async with gw.app[SESSIONMAKER]() as session:
        await accounts.create_agent(session, email, role.title(), role, accounts.hash_password(PASSWORD), "en")
    c = AgentClient(str(gw.client.make_url("")).rstrip("/"))
    assert (await c.login(email))[0] == 200
    return c


def conversation_of(gw, source_id: str) -> str:
    with gw.db() as db:
        return db.execute("SELECT c.public_id FROM conversations c JOIN contact_identities i ON i.contact_id = "
                          "c.contact_id AND i.channel = c.channel WHERE i.source_id = ? ORDER BY c.id DESC",
                          (source_id,)).fetchone()[0]


def contacts(gw) -> int:
    with gw.db() as db:
        return db.execute("SELECT count(*) FROM contacts").fetchone()[0]


async def test_a_proved_user_id_makes_two_devices_one_customer(gw):
    hello = {"user_id": "shop-42", "user_hash": user_hash(SECRET, "shop-42")}
    phone, ready, _, _ = await connect(gw.client, hello)
    await ask(phone, "Where is my parcel?")
    laptop, _, _, _ = await connect(gw.client, hello)  # another visitor id, the same proved user
    await ask(laptop, "And my invoice?")
    assert contacts(gw) == 1
    senders = {r["sender"] for r in gw.rasa.received}
    assert len(senders) == 1  # the bot talks to one customer
    with gw.db() as db:
        kinds = sorted(r[0] for r in db.execute("SELECT channel FROM contact_identities"))
    assert kinds == ["webchat", "webchat", "webchat-user"]
    # a visitor without the proof is somebody else
    stranger, _, _, _ = await connect(gw.client)
    await ask(stranger, "Hello")
    assert contacts(gw) == 2
    for ws in (phone, laptop, stranger):
        await ws.close()


async def test_a_confirmed_address_links_whatsapp_and_web_and_an_admin_can_undo_it(gw):
    agent, admin = await staff(gw), await staff(gw, "admin")
    user = wa()
    await gw.sim.send_text(user, "Wo ist meine Bestellung 1234?", name="Kim")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    wa_conv = conversation_of(gw, user)
    web, _, _, _ = await connect(gw.client)
    await ask(web, "My order 1234 is late")
    with gw.db() as db:
        web_conv = db.execute("SELECT public_id FROM conversations WHERE channel = 'webchat'").fetchone()[0]
    assert contacts(gw) == 2

    # a customer typing an address proves nothing: it is kept on the contact and links nothing
    await gw.sim.send_text(user, "my email is kim@example.com")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 4)
    status, out = await agent.post(f"/api/inbox/conversations/{web_conv}/confirm-email", {"email": "Kim@Example.com"})
    assert status == 200 and out["merged"] is None
    assert contacts(gw) == 2

    status, out = await agent.post(f"/api/inbox/conversations/{wa_conv}/confirm-email", {"email": "kim@example.com"})
    assert status == 200 and out["merged"]["reason"] == "confirmed_email" and out["merged"]["actor"].startswith("Agent")
    assert contacts(gw) == 1
    status, detail = await agent.get(f"/api/inbox/conversations/{web_conv}")
    assert {c["channel"] for c in detail["conversations"]} == {"whatsapp", "webchat"}
    texts = [i.get("text") for i in detail["timeline"] if i["kind"] == "message"]
    assert "Wo ist meine Bestellung 1234?" in texts and "My order 1234 is late" in texts
    assert detail["contact"]["name"] == "Kim" and detail["contact"]["email"] == "kim@example.com"
    # the bot now answers the web visitor as the WhatsApp customer (one Rasa conversation)
    await ask(web, "Any news?")
    wa_sender = next(r["sender"] for r in gw.rasa.received if r["message"] == "Wo ist meine Bestellung 1234?")
    assert next(r["sender"] for r in gw.rasa.received if r["message"] == "Any news?") == wa_sender

    assert (await agent.get("/api/admin/merges"))[0] == 403
    status, listed = await admin.get("/api/admin/merges")
    assert status == 200 and len(listed["merges"]) == 1 and listed["merges"][0]["conversations_moved"] == 1
    merge_id = listed["merges"][0]["id"]
    assert (await agent.post(f"/api/admin/merges/{merge_id}/undo"))[0] == 403
    status, undone = await admin.post(f"/api/admin/merges/{merge_id}/undo")
    assert status == 200 and undone["merge"]["undone_by"].startswith("Admin")
    assert contacts(gw) == 2
    _, detail = await agent.get(f"/api/inbox/conversations/{web_conv}")
    assert [c["channel"] for c in detail["conversations"]] == ["webchat"]
    assert (await admin.post(f"/api/admin/merges/{merge_id}/undo"))[0] == 409
    assert (await admin.post("/api/admin/merges/nope/undo"))[0] == 404
    # separated by an admin: confirming the address again does not merge them again
    status, out = await agent.post(f"/api/inbox/conversations/{web_conv}/confirm-email", {"email": "kim@example.com"})
    assert status == 200 and out["merged"] is None and contacts(gw) == 2
    for bad in ({"email": "not an address"}, {"email": 5}, {}):
        assert (await agent.post(f"/api/inbox/conversations/{web_conv}/confirm-email", bad))[0] == 400
    assert (await agent.post("/api/inbox/conversations/nope/confirm-email", {"email": "a@b.de"}))[0] == 404
    with sqlite3.connect(gw.db_path) as db:
        stream = [r[0] for r in db.execute("SELECT type FROM event_stream WHERE type LIKE 'contact.%' ORDER BY id")]
    assert stream == ["contact.merged", "contact.merge_undone"]
    await web.close()
    await agent.close()
    await admin.close()
