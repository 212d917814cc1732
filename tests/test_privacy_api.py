"""The admin's privacy API on the real gateway (WhatsApp through the simulator): export and delete one
contact over HTTP; agents are refused, an unknown contact is a 404 that says what to give."""
from __future__ import annotations

import pytest

from .channels.test_identity_linking import staff
from .channels.test_whatsapp_channel import wa, wait_until, whatsapp_gateway


@pytest.fixture
async def gw(tmp_path):
    async with whatsapp_gateway(tmp_path) as gateway:
        yield gateway


async def test_an_admin_exports_and_deletes_a_contact_over_http(gw):
    user = wa()
    await gw.sim.send_text(user, "Where is my parcel?", name="Kim")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, what="two replies")
    agent, admin = await staff(gw, "agent"), await staff(gw, "admin")
    path = f"/api/admin/contacts/whatsapp:{user}"

    assert (await agent.get(path + "/export"))[0] == 403
    status, data = await admin.get(path + "/export")
    assert status == 200 and data["identities"] == [{"channel": "whatsapp", "source_id": user, "verified": False}]
    assert "Where is my parcel?" in [m["text"] for c in data["conversations"] for m in c["messages"]]

    for status, body in [await admin.get("/api/admin/contacts/whatsapp:nobody/export"),
                         await admin.delete("/api/admin/contacts/nobody")]:
        assert status == 404 and "no contact" in body["error"] and "channel:source_id" in body["error"], body

    assert (await agent.delete(path))[0] == 403
    status, out = await admin.delete(path)
    assert status == 200 and out["deleted"] == data["contact"]["id"] and out["messages"] >= 3, out
    assert out["erased_whatsapp_ids"] == 1, out
    assert (await admin.get(path + "/export"))[0] == 404
    for c in (agent, admin):
        await c.close()
