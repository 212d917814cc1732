"""Rasa unreachable, then back, under the WhatsApp channel and the website widget (the gateway in-process
in front of a stand-in for Rasa that the test stops and starts on the same port): a message sent during
the outage is stored and the customer is told "One moment, please ..." in its language rather than
nothing; after the restart the conversation simply continues."""
from __future__ import annotations

import aiohttp

from bot.i18n import t

from ..channels.test_webchat_protocol import SITE, until
from ..channels.test_whatsapp_channel import wa, wait_until, whatsapp_gateway


async def test_rasa_down_then_back_on_whatsapp_and_the_widget(tmp_path):
    async with whatsapp_gateway(tmp_path, widget_allowed_origins=(SITE,)) as gw:
        user = wa()
        await gw.sim.send_text(user, "Where is my parcel?")
        await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, what="the first answer")

        await gw.rasa.stop()  # Rasa goes away
        await gw.sim.send_text(user, "Hallo, wo ist meine Rechnung bitte?")
        notice = t("assistant_unavailable", "de")
        await wait_until(lambda: any(m["payload"].get("text", {}).get("body") == notice
                                     for m in gw.sim.messages_to(user)), timeout=30, what="the one-moment notice")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(str(gw.client.make_url("/webhooks/webchat/ws")), origin=SITE)
            await ws.send_json({"type": "hello", "visitor": "v-fault-1", "language": "en"})
            await until(ws, lambda f: f["type"] == "history")
            await ws.send_json({"type": "message", "id": "w1", "text": "Is anyone there?"})
            frame, _ = await until(ws, lambda f: f["type"] == "message" and f.get("role") != "customer", timeout=30)
            assert frame["text"] == t("assistant_unavailable", "en")

            await gw.rasa.start()  # back, on the same port
            await gw.sim.send_text(user, "And now?")
            await wait_until(lambda: any((m["payload"].get("text") or {}).get("body") == "Answer to: And now?"
                                         for m in gw.sim.messages_to(user)), timeout=30, what="an answer after the restart")
            await ws.send_json({"type": "message", "id": "w2", "text": "Hello again"})
            frame, _ = await until(ws, lambda f: f["type"] == "message" and f.get("role") == "bot", timeout=30)
            assert "Hello again" in frame["text"]
            await ws.close()
        with gw.db() as db:
            stored = [r[0] for r in db.execute("SELECT text FROM messages WHERE direction = 'in' ORDER BY id")]
        assert stored == ["Where is my parcel?", "Hallo, wo ist meine Rechnung bitte?", "Is anyone there?",
                          "And now?", "Hello again"]  # nothing lost, nothing doubled
