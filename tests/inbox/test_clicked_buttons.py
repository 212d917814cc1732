"""A customer's button click reads as the button's title for agents, never as its payload: through the
real gateway and store (REST channel; the widget and WhatsApp in their own tests), in the inbox API,
its live events and the inbox page in Chromium. The title comes from the channel (REST
``metadata.title``, the widget's ``title``, WhatsApp's reply) or, when the channel gives none, from the
buttons the gateway sent before."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot.keys import SESSIONMAKER
from bot.store.models import Message

from ..conftest import ARTIFACTS, playwright_api
from .browser import signed_in_page
from .conftest import make_settings, next_event, start_gateway
from .scripted_bot import SKIP, answer, clarify, converse, feedback, form_starts, handed_off

CHOOSE = '/choose_article{"article_group":"pause"}'
PAYLOADS = ("/choose_article", "/deny", "/affirm", "/skip", "/request_human")
# the customer's side: a question, then only clicks (one title sent by the client, the rest found
# among the buttons the bot had sent)
TURNS = [("subscription", clarify("subscription")),
         (CHOOSE, answer("subscription", "chosen")),
         ("/deny", feedback(False)),
         ("/request_human", form_starts("not_helpful")),
         ("/skip", [{"text": "What email address can our team reach you at?", "buttons": SKIP}]),
         ("/skip", handed_off("not_helpful"))]
SEEN = ["subscription", "Pause your subscription", "No", "Talk to a person", "Skip", "Skip"]


@pytest.fixture
async def gw(tmp_path, scripted):
    gw = await start_gateway(make_settings(tmp_path, scripted), tmp_path / "gw.db")
    await gw.add_agent("ben@example.com", "Ben Agent")
    yield gw
    await gw.close()


async def hand_off_by_clicks(gw, scripted) -> str:
    sender = await converse(gw, scripted, TURNS[:3])
    # "Talk to a person" was not among the buttons just sent: the client names what it showed
    await converse(gw, scripted, TURNS[3:4], sender=sender, title="Talk to a person")
    return await converse(gw, scripted, TURNS[4:], sender=sender)


async def test_agents_read_the_titles_of_the_buttons_clicked_and_no_payload(gw, scripted):
    sender = await hand_off_by_clicks(gw, scripted)
    ben = gw.agent_client()
    await ben.login("ben@example.com")
    [conv] = (await ben.get("/api/inbox/conversations?view=queue"))[1]["conversations"]
    status, detail = await ben.get(f"/api/inbox/conversations/{conv['id']}")
    assert status == 200
    customer = [m for m in detail["timeline"] if m.get("sender_type") == "customer"]
    assert [m["text"] for m in customer] == SEEN
    assert [m.get("clicked", False) for m in customer] == [False, True, True, True, True, True]
    bot_buttons = [b for m in detail["timeline"] for b in m.get("buttons") or []]
    assert {b["title"] for b in bot_buttons} >= {"Pause your subscription", "None of these", "Yes", "No", "Skip"}
    everything = json.dumps(detail)
    assert not [p for p in PAYLOADS if p in everything], "a payload reached the agents' view"

    # live: a click while the agent has the conversation reaches the inbox as its title at once
    inbox = await ben.ws()
    await next_event(inbox, "hello")
    assert (await ben.post(f"/api/inbox/conversations/{conv['id']}/claim"))[0] == 200
    await gw.ask(sender, "/affirm")  # "Yes" of the earlier "Did that answer your question?"
    ev = await next_event(inbox, "message", where=lambda e: e["message"]["sender_type"] == "customer")
    assert (ev["message"]["text"], ev["message"].get("clicked")) == ("Yes", True)
    await inbox.close()
    await ben.close()


async def test_a_title_never_replaces_typed_words_and_a_bad_one_is_refused_and_nothing_stored(gw, scripted):
    sender = await converse(gw, scripted, [("How do I pause?", answer("How do I pause?"))])
    await converse(gw, scripted, [("hello there", feedback(True))], sender=sender, title="Yes")
    async with gw.app[SESSIONMAKER]() as session:
        before = (await session.execute(select(func.count()).select_from(Message))).scalar()
    for bad, why in (("x" * 201, "at most 200"), (5, "a string"), ("Ye\x00s", "at most 200")):
        status, body = await gw.ask(sender, "/affirm", title=bad)
        assert status == 400 and "'metadata.title'" in body["error"] and why in body["error"], (bad, body)
    async with gw.app[SESSIONMAKER]() as session:
        assert (await session.execute(select(func.count()).select_from(Message))).scalar() == before
        typed = (await session.execute(select(Message).where(Message.text == "hello there"))).scalar_one()
    from bot.handoff.common import message_dict

    shown = message_dict(typed)
    assert (shown["text"], shown.get("clicked")) == ("hello there", None)


async def test_the_inbox_page_shows_the_clicked_titles(gw, scripted):
    expect = playwright_api("async").expect

    await hand_off_by_clicks(gw, scripted)
    async with signed_in_page(gw.url, "/inbox", "ben@example.com", {"width": 1280, "height": 1000}) as page:
        await page.locator("#conversation-list .conv").first.click()
        clicked = page.locator("#timeline .msg.customer .text.clicked")
        await expect(clicked).to_have_count(5)
        await expect(clicked.locator(".chip")).to_have_text(SEEN[1:])
        await expect(clicked.first).to_contain_text("clicked a button")
        timeline = await page.locator("#timeline").inner_text()
        assert not [p for p in PAYLOADS if p in timeline], timeline
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "inbox-clicked-buttons.png"), full_page=True)
