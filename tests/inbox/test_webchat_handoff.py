"""A widget customer is handed off: the hand-off notice reaches the widget, the agent's reply is
pushed to it through the webchat channel's deliver, and the bot stays silent meanwhile."""
from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3

import aiohttp

from bot.i18n import t

from ..conftest import wait_until
from .conftest import next_event


async def frames_until(ws, predicate, timeout=15.0) -> dict:
    async def read():
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame = json.loads(msg.data)
            if predicate(frame):
                return frame
    return await asyncio.wait_for(read(), timeout)


async def test_widget_customer_gets_the_agents_reply_in_real_time(gateway, assistant, agents):
    ben = agents["ben"]
    inbox = await ben.ws()
    await next_event(inbox, "hello")
    widget = await ben.http.ws_connect(gateway.url + "/webhooks/webchat/ws", headers={"Origin": gateway.url})
    await widget.send_json({"type": "hello", "visitor": secrets.token_urlsafe(24), "language": "de"})
    await frames_until(widget, lambda f: f.get("type") == "ready")
    await widget.send_json({"type": "message", "id": "m1", "text": "I need a human"})
    bot = await frames_until(widget, lambda f: f.get("type") == "message" and f.get("role") == "bot")
    assert "agent" not in bot  # the bot is never named as a person
    notice = await frames_until(widget, lambda f: f.get("type") == "message" and f.get("role") == "system")
    assert notice["text"].startswith(t("handoff_queue_position", "de", position=1))
    ev = await next_event(inbox, "conversation", where=lambda e: e["conversation"]["channel"] == "webchat")
    cid = ev["conversation"]["id"]
    assert (await ben.post(f"/api/inbox/conversations/{cid}/claim"))[0] == 200
    joined = await frames_until(widget, lambda f: f.get("type") == "message" and f.get("role") == "system")
    assert joined["text"] == t("handoff_agent_joined", "de", name="Ben Agent")

    n = len(assistant.received)
    await widget.send_json({"type": "message", "id": "m2", "text": "Hallo?"})
    ev = await next_event(inbox, "message", where=lambda e: e["conversation_id"] == cid
                          and e["message"]["sender_type"] == "customer")
    assert ev["message"]["text"] == "Hallo?"
    assert (await ben.post(f"/api/inbox/conversations/{cid}/reply", {"text": "Hallo, hier ist Ben."}))[0] == 201
    reply = await frames_until(widget, lambda f: f.get("type") == "message" and f.get("role") == "agent")
    assert reply["text"] == "Hallo, hier ist Ben."
    assert reply["agent"] == "Ben Agent"  # the account's display name, for the widget to show
    assert not set(reply) & {"agent_id", "email"}

    def handled() -> bool:  # the widget marks a customer message processed once it is done with it
        with sqlite3.connect(gateway.db_path) as db:
            return db.execute("SELECT delivery_status FROM messages WHERE direction = 'in' AND text = 'Hallo?'"
                              ).fetchone() == ("processed",)

    await wait_until(handled, what="the widget to be done with 'Hallo?'")
    assert len(assistant.received) == n, "the bot heard nothing while the agent had the conversation"
    await widget.close()
    await inbox.close()
