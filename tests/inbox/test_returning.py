"""Greeting a returning customer with what was open last time (bot/insights/returning.py), through the real
gateway in every language: the topic and order number of the previous conversation, "yes" asks the bot
that question again, "no" invites a new one; no greeting for a first message that is itself a question,
for a previous conversation older than RETURNING_DAYS, or with RETURNING_DAYS=0."""
from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from bot.i18n import t
from bot.insights.returning import payload

from .conftest import make_settings, start_gateway

HELLO = {"en": "hi", "de": "hallo", "tr": "merhaba", "ja": "こんにちは"}
QUESTION = {"en": "refund for my parcel", "de": "Erstattung für mein Paket", "tr": "kargom için para iadesi",
            "ja": "荷物の返金について"}


@pytest.fixture
async def gw(tmp_path, assistant):
    gw = await start_gateway(make_settings(tmp_path, assistant, SURVEY="off"), tmp_path / "gw.db")
    await gw.add_agent("ben@example.com", "Ben")
    gw.ben = gw.agent_client()
    await gw.ben.login("ben@example.com")
    yield gw
    await gw.ben.close()
    await gw.close()


async def earlier_conversation(gw, lang: str, *, order: bool = True) -> str:
    """A question, a hand-off (capturing order 1234 when ``order``), resolved by an agent."""
    s = f"cust-{uuid.uuid4().hex[:8]}"
    await gw.ask(s, QUESTION[lang], language=lang)
    await gw.ask(s, "human please" + (", order 1234" if order else ""), language=lang)
    conv = (await gw.ben.get("/api/inbox/conversations?view=queue"))[1]["conversations"][0]["id"]
    assert (await gw.ben.post(f"/api/inbox/conversations/{conv}/resolve"))[0] == 200
    return s


@pytest.mark.parametrize("lang", ["en", "de", "tr", "ja"])
async def test_a_returning_customer_is_asked_about_the_earlier_topic_and_yes_asks_it_again(gw, assistant, lang):
    s = await earlier_conversation(gw, lang)
    status, replies = await gw.ask(s, HELLO[lang], language=lang)
    assert status == 200
    assert [r["text"] for r in replies] == [
        f"[{lang}] Hello! How can I help?",
        t("returning_greeting_order", lang, topic=QUESTION[lang], order="1234")]
    assert [b["payload"] for b in replies[1]["buttons"]] == [payload(True), payload(False)]
    assert [b["title"] for b in replies[1]["buttons"]] == [t("returning_yes", lang), t("returning_no", lang)]
    status, replies = await gw.ask(s, payload(True))
    assert [r["text"] for r in replies] == [f"bot: {QUESTION[lang]}"]  # the bot was asked the earlier question
    assert assistant.received[-1]["message"] == QUESTION[lang]


async def test_no_means_something_new_and_is_answered_without_the_bot(gw, assistant):
    s = await earlier_conversation(gw, "en", order=False)
    _, replies = await gw.ask(s, "hi")
    assert replies[-1]["text"] == t("returning_greeting", "en", topic=QUESTION["en"])
    n = len(assistant.received)
    _, replies = await gw.ask(s, payload(False))
    assert [r["text"] for r in replies] == [t("returning_new", "en")] and len(assistant.received) == n
    # a stray "yes" later, with no greeting in this conversation, asks nothing either
    _, replies = await gw.ask(f"new-{uuid.uuid4().hex[:6]}", payload(True))
    assert [r["text"] for r in replies] == [t("returning_new", "en")]


async def test_no_greeting_for_a_question_an_old_conversation_or_when_off(gw, tmp_path, assistant):
    s = await earlier_conversation(gw, "en")
    _, replies = await gw.ask(s, "how do I change my address")  # a question: just the answer
    assert [r["text"] for r in replies] == ["bot: how do I change my address"]

    s = await earlier_conversation(gw, "en")
    with sqlite3.connect(gw.db_path) as db:
        old = (datetime.now(timezone.utc) - timedelta(days=31)).isoformat(sep=" ")
        db.execute("UPDATE conversations SET last_message_at = ?", (old,))
    _, replies = await gw.ask(s, "hi")
    assert [r["text"] for r in replies] == ["[en] Hello! How can I help?"]

    off = await start_gateway(make_settings(tmp_path / "off", assistant, SURVEY="off", RETURNING_DAYS="0"),
                              tmp_path / "off" / "gw.db")
    try:
        await off.add_agent("ben@example.com", "Ben")
        off.ben = off.agent_client()
        await off.ben.login("ben@example.com")
        s = await earlier_conversation(off, "en")
        _, replies = await off.ask(s, "hi")
        assert [r["text"] for r in replies] == ["[en] Hello! How can I help?"]
        await off.ben.close()
    finally:
        await off.close()
