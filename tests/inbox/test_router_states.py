"""The router's state machine with the real gateway (in-process, SQLite) and a scripted assistant:
the bot never hears a conversation a person has; resolving returns it to the bot with a fresh
conversation and the history kept; handing back lets the bot answer again."""
from __future__ import annotations

import asyncio
import sqlite3
import uuid

from bot.i18n import t

from .conftest import next_event


def sender() -> str:
    return f"cust-{uuid.uuid4().hex[:8]}"


def status_of(gateway, conversation_id: str) -> str:
    with sqlite3.connect(gateway.db_path) as db:
        return db.execute("SELECT status FROM conversations WHERE public_id = ?", (conversation_id,)).fetchone()[0]


async def conversation_of(agent, view="queue") -> dict:
    _, data = await agent.get(f"/api/inbox/conversations?view={view}")
    return data["conversations"]


async def test_hand_off_queues_and_the_bot_stays_silent_until_resolved(gateway, assistant, agents):
    ben = agents["ben"]
    ws = await ben.ws()
    await next_event(ws, "hello")
    s = sender()
    status, replies = await gateway.ask(s, "How do I cancel?")
    assert status == 200 and replies[0]["text"] == "bot: How do I cancel?"

    status, replies = await gateway.ask(s, "I want a human")
    texts = [r["text"] for r in replies]
    assert texts[0] == "[en] handing over"
    # an agent is online (Ben's socket) and the hours are "always": queue position and honest wait
    assert texts[1] == " ".join([t("handoff_queue_position", "en", position=1), t("handoff_wait_unknown", "en")])
    ev = await next_event(ws, "conversation", where=lambda e: e["conversation"]["status"] == "pending")
    conv = ev["conversation"]
    assert conv["handoff"]["reason"] == "customer_request" and conv["position"] == 1
    assert conv["handoff"]["articles"][0]["title"] == "Cancel your subscription"
    cid = conv["id"]

    forwarded = len(assistant.received)
    status, replies = await gateway.ask(s, "hello? anyone?")
    assert status == 200 and replies == []
    ev = await next_event(ws, "message", where=lambda e: e["conversation_id"] == cid)
    assert ev["message"]["text"] == "hello? anyone?" and ev["message"]["sender_type"] == "customer"

    status, body = await ben.post(f"/api/inbox/conversations/{cid}/claim")
    assert status == 200 and body["conversation"]["status"] == "open"
    await gateway.ask(s, "thanks for taking this")
    assert len(assistant.received) == forwarded, "nothing reaches the bot while pending or open"
    assert status_of(gateway, cid) == "open"

    status, body = await ben.post(f"/api/inbox/conversations/{cid}/resolve")
    assert status == 200 and body["conversation"]["status"] == "resolved"
    status, replies = await gateway.ask(s, "one more question")
    assert replies[0]["text"] == "bot: one more question"
    assert len(assistant.received) == forwarded + 1
    with sqlite3.connect(gateway.db_path) as db:
        rows = db.execute("SELECT c.public_id, c.status FROM conversations c JOIN contact_identities i "
                          "ON i.contact_id = c.contact_id WHERE i.source_id = ? ORDER BY c.id", (s,)).fetchall()
    assert [r[1] for r in rows] == ["resolved", "bot"] and rows[0][0] == cid
    # the history is kept: the new conversation's view shows both
    _, detail = await ben.get(f"/api/inbox/conversations/{rows[1][0]}")
    texts = [x.get("text") for x in detail["timeline"] if x["kind"] == "message"]
    assert "hello? anyone?" in texts and "one more question" in texts
    assert {c["id"] for c in detail["conversations"]} == {rows[0][0], rows[1][0]}
    await ws.close()


async def test_hand_back_lets_the_bot_answer_again_in_the_same_conversation(gateway, assistant, agents):
    ben = agents["ben"]
    s = sender()
    await gateway.ask(s, "human please")
    [conv] = await conversation_of(ben)
    await ben.post(f"/api/inbox/conversations/{conv['id']}/claim")
    n = len(assistant.received)
    _, replies = await gateway.ask(s, "are you there?")
    assert replies == [] and len(assistant.received) == n
    status, body = await ben.post(f"/api/inbox/conversations/{conv['id']}/handback")
    assert status == 200 and body["conversation"]["status"] == "bot"
    _, polled = await gateway.poll(s)
    assert polled["messages"][-1]["text"] == t("handoff_handed_back", "en")
    _, replies = await gateway.ask(s, "where is my parcel?")
    assert replies[0]["text"] == "bot: where is my parcel?" and len(assistant.received) == n + 1
    assert status_of(gateway, conv["id"]) == "bot"


async def test_a_message_handed_off_meanwhile_is_not_answered_by_the_bot(gateway, assistant, agents):
    """Two messages of one customer at once: the second was stored while the bot still had the
    conversation, but the first handed it off before the second was processed."""
    from bot.keys import ROUTER
    from bot.messages import InboundMessage

    router = gateway.app[ROUTER]
    s = sender()
    a = await router.accept(InboundMessage("rest", s, "I need a human"))
    b = await router.accept(InboundMessage("rest", s, "please hurry"))
    assert a.status == b.status == "bot"
    await router.process(a)
    n = len(assistant.received)
    result = await router.process(b)
    assert result.replies == [] and result.status == "pending" and len(assistant.received) == n


async def test_queue_order_is_priority_then_longest_wait(gateway, agents):
    ben = agents["ben"]
    calm1, angry, calm2, unhelped = sender(), sender(), sender(), sender()
    await gateway.ask(calm1, "human")
    await asyncio.sleep(0.01)
    await gateway.ask(angry, "I am angry")
    await asyncio.sleep(0.01)
    await gateway.ask(calm2, "human")
    await asyncio.sleep(0.01)
    _, replies = await gateway.ask(unhelped, "this was not helpful")
    queue = await conversation_of(ben)
    assert [c["priority"] for c in queue] == [2, 1, 0, 0]
    assert [c["position"] for c in queue] == [1, 2, 3, 4]
    # the customer was told their place at the time: the unhelped one came last but is second
    # (nobody has the inbox open: the "no one online" text, with the position)
    assert t("handoff_no_agent", "en", position=2) in replies[-1]["text"]
    assert queue[2]["queued_at"] < queue[3]["queued_at"]


async def test_claim_race_exactly_one_agent_wins(gateway, agents):
    ben, cleo = agents["ben"], agents["cleo"]
    for _ in range(5):
        await gateway.ask(sender(), "human")
    queue = await conversation_of(ben)
    assert len(queue) == 5  # (the race below is run for each of them)
    for conv in queue:
        results = await asyncio.gather(ben.post(f"/api/inbox/conversations/{conv['id']}/claim"),
                                       cleo.post(f"/api/inbox/conversations/{conv['id']}/claim"))
        statuses = sorted(r[0] for r in results)
        assert statuses == [200, 409], results
        winner = next(r[1] for r in results if r[0] == 200)["conversation"]["assignee"]
        loser = next(r[1] for r in results if r[0] == 409)
        assert loser["assignee"]["name"] == winner["name"] and "has this conversation" in loser["error"]
        with sqlite3.connect(gateway.db_path) as db:
            n = db.execute("SELECT count(*) FROM conversation_events e JOIN conversations c ON c.id = "
                           "e.conversation_id WHERE c.public_id = ? AND e.type = 'assigned'", (conv["id"],)).fetchone()[0]
        assert n == 1
