"""Satisfaction surveys after an agent resolves a conversation (bot/insights/surveys.py), through the real
gateway: the REST customer's flow in each language, NPS, skipping, abandoning, the time window, and
answers parsed from buttons and typed numbers. (The WhatsApp flow: tests/channels/test_whatsapp_surveys.py.)"""
from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from bot.i18n import t
from bot.insights.surveys import parse_answer, payload

from .conftest import make_settings, start_gateway


async def resolved_conversation(gateway, agent, lang="en") -> tuple[str, str, str]:
    """A customer handed off, claimed and resolved by ``agent``: (sender, conversation id, poll cursor)."""
    s = f"cust-{uuid.uuid4().hex[:8]}"
    await gateway.ask(s, "human please", language=lang)
    conv = next(c for c in (await agent.get("/api/inbox/conversations?view=queue"))[1]["conversations"])
    assert (await agent.post(f"/api/inbox/conversations/{conv['id']}/claim"))[0] == 200
    _, before = await gateway.poll(s)
    cursor = before["messages"][-1]["id"]
    assert (await agent.post(f"/api/inbox/conversations/{conv['id']}/resolve"))[0] == 200
    return s, conv["id"], cursor


def survey_row(gateway) -> dict:
    with sqlite3.connect(gateway.db_path) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM survey_responses ORDER BY id DESC LIMIT 1").fetchone())


@pytest.mark.parametrize("lang", ["en", "de", "tr", "ja"])
async def test_after_resolve_the_customer_rates_and_comments_in_their_language(gateway, agents, assistant, lang):
    s, conv_id, cursor = await resolved_conversation(gateway, agents["ben"], lang)
    _, polled = await gateway.poll(s, after=cursor)
    texts = [m.get("text") for m in polled["messages"]]
    assert texts[:2] == [t("handoff_resolved", lang), t("survey_csat", lang)]
    question = polled["messages"][1]
    assert [b["payload"] for b in question["buttons"]] == [payload("csat", n) for n in (5, 4, 3, 2, 1)]

    status, replies = await gateway.ask(s, payload("csat", 2))
    assert status == 200 and [r["text"] for r in replies] == [t("survey_comment", lang)]
    assert replies[0]["buttons"] == [{"title": t("survey_skip", lang), "payload": payload("skip")}]
    status, replies = await gateway.ask(s, "The wait was long, but Ben was kind.")
    assert [r["text"] for r in replies] == [t("survey_thanks", lang)]

    row = survey_row(gateway)
    assert (row["csat"], row["nps"], row["comment"], row["stage"]) == (2, None, "The wait was long, but Ben was kind.", "done")
    with sqlite3.connect(gateway.db_path) as db:
        # the answers are stored in the resolved conversation; none went to the bot, none opened another
        n_conv = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
        answers = db.execute("SELECT m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                             "WHERE c.public_id = ? AND m.direction = 'in' ORDER BY m.id", (conv_id,)).fetchall()
    assert n_conv == 1 and [a[0] for a in answers][-2:] == [payload("csat", 2), "The wait was long, but Ben was kind."]
    assert not any(body["message"].startswith("/survey") for body in assistant.received)

    # the next message is a new conversation with the bot
    status, replies = await gateway.ask(s, "where is my parcel")
    assert replies[0]["text"] == "bot: where is my parcel"


async def test_nps_typed_and_skip(tmp_path, assistant):
    gw = await start_gateway(make_settings(tmp_path, assistant, SURVEY="csat, nps"), tmp_path / "gw.db")
    try:
        await gw.add_agent("ben@example.com", "Ben")
        ben = gw.agent_client()
        await ben.login("ben@example.com")
        s, _, _ = await resolved_conversation(gw, ben, "de")
        _, replies = await gw.ask(s, "５")  # a full-width digit, typed
        assert replies[0]["text"] == t("survey_nps", "de")
        assert [b["title"] for b in replies[0]["buttons"]] == [str(n) for n in range(11)]
        _, replies = await gw.ask(s, "11")  # not on the scale: the survey ends, the bot answers
        assert replies[0]["text"] == "bot: 11"
        assert survey_row(gw)["stage"] == "abandoned" and survey_row(gw)["csat"] == 5

        s, _, _ = await resolved_conversation(gw, ben, "en")
        await gw.ask(s, "4/5")
        _, replies = await gw.ask(s, payload("nps", 9))
        assert replies[0]["text"] == t("survey_comment", "en")
        _, replies = await gw.ask(s, payload("skip"))
        assert replies[0]["text"] == t("survey_thanks", "en")
        row = survey_row(gw)
        assert (row["csat"], row["nps"], row["comment"], row["stage"]) == (4, 9, None, "done")
        await ben.close()
    finally:
        await gw.close()


async def test_a_question_instead_of_a_rating_goes_to_the_bot_and_old_buttons_are_quiet(gateway, agents, assistant):
    s, _, _ = await resolved_conversation(gateway, agents["ben"])
    _, replies = await gateway.ask(s, "how do I change my address")
    assert replies[0]["text"] == "bot: how do I change my address"
    assert survey_row(gateway)["stage"] == "abandoned"
    n_before = len(assistant.received)
    status, replies = await gateway.ask(s, payload("csat", 5))  # a late tap on the old question
    assert status == 200 and replies == [] and len(assistant.received) == n_before
    assert survey_row(gateway)["csat"] is None


async def test_an_answer_after_the_window_goes_to_the_bot(gateway, agents):
    s, _, _ = await resolved_conversation(gateway, agents["ben"])
    with sqlite3.connect(gateway.db_path) as db:
        old = (datetime.now(timezone.utc) - timedelta(hours=25)).isoformat(sep=" ")
        db.execute("UPDATE survey_responses SET asked_at = ?", (old,))
    _, replies = await gateway.ask(s, "4")
    assert replies[0]["text"] == "bot: 4"
    assert survey_row(gateway)["csat"] is None


async def test_survey_off_asks_nothing(tmp_path, assistant):
    gw = await start_gateway(make_settings(tmp_path, assistant, SURVEY="off"), tmp_path / "gw.db")
    try:
        await gw.add_agent("ben@example.com", "Ben")
        ben = gw.agent_client()
        await ben.login("ben@example.com")
        s, _, cursor = await resolved_conversation(gw, ben)
        _, polled = await gw.poll(s, after=cursor)
        assert [m["text"] for m in polled["messages"]] == [t("handoff_resolved", "en")]
        await ben.close()
    finally:
        await gw.close()


def test_bad_survey_settings_are_refused(tmp_path, assistant):
    from knowledge_base.config import SettingsError

    with pytest.raises(SettingsError, match="SURVEY must be one of"):
        make_settings(tmp_path, assistant, SURVEY="nps")
    with pytest.raises(SettingsError, match="SURVEY_HOURS"):
        make_settings(tmp_path, assistant, SURVEY_HOURS="0")


@pytest.mark.parametrize("stage,text,expected", [
    ("csat", "5", 5), ("csat", " 3. ", 3), ("csat", "４", 4), ("csat", "2/5", 2), ("csat", "0", None),
    ("csat", "6", None), ("csat", "5 stars but slow", None), ("csat", payload("nps", 3), None),
    ("csat", '/survey{"q":"csat","score":true}', None), ("csat", '/survey{"q":"csat","score":"5"}', None),
    ("nps", "0", 0), ("nps", "10", 10), ("nps", "10/10", 10), ("nps", "11", None), ("nps", payload("nps", 7), 7),
    ("comment", "fine", "fine"), ("comment", payload("skip"), "skip"), ("comment", payload("csat", 4), None),
    ("comment", "  ", None),
])
def test_answers_are_parsed_strictly(stage, text, expected):
    assert parse_answer(stage, text) == expected


async def test_a_contacts_survey_is_exported_and_deleted_with_it(gateway, agents):
    s, conv_id, _ = await resolved_conversation(gateway, agents["ben"])
    await gateway.ask(s, "4")
    await gateway.ask(s, "Quick and friendly")
    ada = agents["ada"]
    status, data = await ada.get(f"/api/admin/contacts/rest:{s}/export")
    assert status == 200
    conv = next(c for c in data["conversations"] if c["id"] == conv_id)
    assert conv["survey"] == {"csat": 4, "nps": None, "comment": "Quick and friendly", "stage": "done"}
    async with ada.http.delete(gateway.url + f"/api/admin/contacts/rest:{s}", headers={"X-CSRF-Token": ada.csrf}) as r:
        assert r.status == 200
    with sqlite3.connect(gateway.db_path) as db:
        assert db.execute("SELECT count(*) FROM survey_responses").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM event_stream WHERE payload LIKE '%Quick and friendly%'").fetchone()[0] == 0
