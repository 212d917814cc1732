"""The satisfaction survey on WhatsApp (bot/insights/surveys.py), through the simulator and the real gateway:
CSAT as an interactive list in the customer's language, NPS typed (WhatsApp lists hold ten rows),
the comment, and nothing sent to the bot."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from bot import keys
from bot.staff.actor import Actor
from bot.i18n import t
from bot.staff import accounts
from bot.store.models import Conversation
from bot.insights.surveys import payload

from .test_whatsapp_channel import wa, wait_until, whatsapp_gateway


@pytest.fixture
async def gw(tmp_path):
    async with whatsapp_gateway(tmp_path, survey="csat,nps") as gateway:
        yield gateway


async def resolve(gw, user: str) -> None:
    """An agent takes the customer's conversation and resolves it."""
    router = gw.app[keys.ROUTER]
    async with gw.app[keys.SESSIONMAKER]() as session:
        agent = await accounts.create_agent(session, f"a{user}@example.com", "Ana", "agent",
                                            accounts.hash_password("correct horse battery"), "en")
    with gw.db() as db:
        conv = db.execute("SELECT c.public_id FROM conversations c JOIN contact_identities i ON i.contact_id = "
                          "c.contact_id WHERE i.source_id = ?", (user,)).fetchone()[0]
    async with gw.app[keys.SESSIONMAKER]() as session:  # queued for a person (through the app's own engine)
        await session.execute(update(Conversation).where(Conversation.public_id == conv).values(status="pending"))
        await session.commit()
    await router.desk.claim(conv, Actor.of(agent))
    await router.desk.resolve(conv, Actor.of(agent))


async def test_csat_as_a_list_nps_typed_and_a_comment_in_german(gw):
    assert gw.settings.survey == "csat,nps"
    user = wa()
    await gw.sim.send_text(user, "Guten Tag, wo ist mein Paket? Ich warte schon seit einer Woche darauf.", name="Ada")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    with gw.db() as db:
        assert db.execute("SELECT language FROM conversations").fetchone()[0] == "de"
    await resolve(gw, user)  # the customer is told an agent joined, then that the conversation is closed
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 5, what="notices and the CSAT question")
    notice, question = [m["payload"] for m in gw.sim.messages_to(user)[3:]]
    assert notice["text"]["body"] == t("handoff_resolved", "de")
    inter = question["interactive"]
    assert inter["type"] == "list" and inter["body"]["text"] == t("survey_csat", "de")
    rows = inter["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == ["★★★★★ 5", "★★★★ 4", "★★★ 3", "★★ 2", "★ 1"]
    assert inter["action"]["button"] == t("list_button", "de")

    sent_id = gw.sim.messages_to(user)[4]["id"]
    await gw.sim.choose_row(user, rows[1]["id"], rows[1]["title"], context=sent_id)
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 6, what="the NPS question")
    nps = gw.sim.messages_to(user)[5]["payload"]
    assert nps["type"] == "text" and nps["text"]["body"] == t("survey_nps", "de") + "\n" + t("survey_nps_type", "de")

    await gw.sim.send_text(user, "8")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 7, what="the comment question")
    comment_q = gw.sim.messages_to(user)[6]["payload"]["interactive"]
    assert comment_q["type"] == "button" and comment_q["action"]["buttons"][0]["reply"]["title"] == t("survey_skip", "de")

    await gw.sim.send_text(user, "Schnelle Hilfe, danke!")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 8, what="thanks")
    assert gw.sim.messages_to(user)[7]["payload"]["text"]["body"] == t("survey_thanks", "de")

    with gw.db() as db:
        row = db.execute("SELECT csat, nps, comment, stage, channel, language FROM survey_responses").fetchone()
        n_conv = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
    assert tuple(row) == (4, 8, "Schnelle Hilfe, danke!", "done", "whatsapp", "de") and n_conv == 1
    assert [r["message"] for r in gw.rasa.received] == ["Guten Tag, wo ist mein Paket? Ich warte schon seit einer Woche darauf."]
    # the stored inbound answer is the button's payload, not its title
    inbound = [r["text"] for r in gw.rows(user, "in")]
    assert inbound[1:] == [payload("csat", 4), "8", "Schnelle Hilfe, danke!"]
    assert json.loads(inbound[1][len("/survey"):]) == {"q": "csat", "score": 4}
