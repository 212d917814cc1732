"""A person promised but the hand-off form left unanswered (bot.handoff.unfinished), with the real
gateway (in-process, SQLite) and a scripted assistant: queued once the customer has been quiet for
the timeout, told so, and never twice; not while the customer is being answered or after the
hand-off happened."""
from __future__ import annotations

import uuid

from sqlalchemy import update

from bot import keys
from bot.handoff.unfinished import UnfinishedHandoffs
from bot.store.models import Message


def sender() -> str:
    return f"cust-{uuid.uuid4().hex[:8]}"


def finishing(assistant) -> list[dict]:
    return [b for b in assistant.received if b["message"] == "/finish_handoff"]


async def test_a_form_left_unanswered_is_queued_after_the_timeout_once(gateway, assistant):
    s = sender()
    _, replies = await gateway.ask(s, "promise me a person")
    assert replies[0]["text"] == "[en] your name, please?"
    rounds = UnfinishedHandoffs(gateway.app, timeout_seconds=3600)
    assert await rounds.run_once() == 0 and finishing(assistant) == []  # still within the timeout
    rounds.timeout_seconds = 0
    assert await rounds.run_once() == 1
    [sent] = finishing(assistant)
    assert sent["sender"] and sent["metadata"]["language"] == "en"
    _, body = await gateway.poll(s)
    texts = [m["text"] for m in body["messages"]]
    assert texts[-2] == "[en] handing over" and body["status"] == "pending"
    assert await rounds.run_once() == 0 and len(finishing(assistant)) == 1


async def test_no_finishing_while_the_customer_waits_for_an_answer_or_after_the_hand_off(gateway, assistant):
    rounds = UnfinishedHandoffs(gateway.app, timeout_seconds=0)
    waiting, handed_off = sender(), sender()
    await gateway.ask(waiting, "promise me a person")
    await gateway.ask(handed_off, "promise me a person")
    await gateway.ask(handed_off, "I want a human")
    # the customer's answer is stored and still being answered: the bot did not speak last
    async with gateway.app[keys.SESSIONMAKER]() as session:
        await session.execute(update(Message).where(Message.direction == "out", Message.text == "[en] your name, please?")
                              .values(direction="in"))
        await session.commit()
    assert await rounds.run_once() == 0 and finishing(assistant) == []
