"""What counts as resolved by the bot (bot/insights/metrics.py, README "Dashboard"): conversations built through
the real gateway and store (REST channel -> router -> database, on SQLite and PostgreSQL), answered by
a scripted assistant that sends what the real bot sends (texts, buttons and the action server's
structured events: kb_answer, kb_feedback, handoff_requested, handoff, kb_unavailable). A hand-off
asked for but not finished, an "I don't know", an answer the customer rejected or no answer at all is
never "contained"; the unanswered count and the table of unanswered questions always agree."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from bot.keys import SESSIONMAKER
from bot.insights.metrics import TOP_UNANSWERED
from bot.store.models import Contact, ContactIdentity, Conversation

from ..conftest import ARTIFACTS, playwright_api
from ..editor.conftest import database_url  # noqa: F401  (fixture: sqlite and postgresql)
from .browser import signed_in_page
from .conftest import make_settings, start_gateway
from .scripted_bot import KB_DOWN, SKIP, SMALL_TALK, answer, clarify, converse, dont_know, feedback, form_starts, \
    handed_off

# conversation -> its turns (the customer's message, the bot's answer) and the outcome it must get
SCENARIOS = {
    "answered": ([("How do I pause?", answer("How do I pause?"))], "contained"),
    "answered, it helped": ([("How do I pause?", answer("How do I pause?")), ("/affirm", feedback(True))],
                            "contained"),
    "answered, it did not help, left": ([("How do I pause?", answer("How do I pause?")),
                                         ("/deny", feedback(False))], "misfired"),
    "did not help, the next best helped": ([("How do I pause?", answer("How do I pause?")),
                                            ("/deny", feedback(False) + answer("How do I pause?", "next_best")),
                                            ("/affirm", feedback(True))], "contained"),
    "only I don't know": ([("Do you sell teapots?", dont_know("Do you sell teapots?"))], "misfired"),
    "I don't know, then answered": ([("Do you sell teapots?", dont_know("Do you sell teapots?")),
                                     ("/ask_something_else", SMALL_TALK),
                                     ("How do I pause?", answer("How do I pause?"))], "contained"),
    "answered, then I don't know": ([("How do I pause?", answer("How do I pause?")),
                                     ("Do you sell teapots?", dont_know("Do you sell teapots?"))], "misfired"),
    "asked for a person, left the form": ([("I want a person", form_starts("customer_request"))],
                                          "handoff_abandoned"),
    "answered, then asked for a person, left": ([("How do I pause?", answer("How do I pause?")),
                                                 ("/affirm", feedback(True)),
                                                 ("/request_human", form_starts("customer_request"))],
                                                "handoff_abandoned"),
    "offered a person, accepted, left": ([("Do you sell teapots?", dont_know("Do you sell teapots?")),
                                          ("/request_human", form_starts("kb_no_answer"))], "handoff_abandoned"),
    "asked for a person, finished the form": ([("I want a person", form_starts("customer_request")),
                                               ("/skip", [{"text": "Your email?", "buttons": SKIP}]),
                                               ("/skip", handed_off("customer_request"))], "handed_off"),
    "greeting only": ([("hello", SMALL_TALK)], "no_answer"),
    "clarification, left": ([("subscription", clarify("subscription"))], "no_answer"),
    "clarification, chosen": ([("subscription", clarify("subscription")),
                               ('/choose_article{"article_group":"pause"}', answer("subscription", "chosen"))],
                              "contained"),
    "knowledge base down": ([("How do I pause?", KB_DOWN)], "misfired"),
}


@pytest.fixture
async def dashboard(tmp_path, scripted, database_url):  # noqa: F811
    gw = await start_gateway(make_settings(tmp_path, scripted, DATABASE_URL=database_url), tmp_path / "gw.db")
    await gw.add_agent("ada@example.com", "Ada Admin", "admin")
    ada = gw.agent_client()
    await ada.login("ada@example.com")
    yield gw, scripted, ada
    await ada.close()
    await gw.close()


async def conversation_of(gw, sender: str) -> str:
    async with gw.app[SESSIONMAKER]() as session:
        return (await session.execute(
            select(Conversation.public_id).join(Contact, Contact.id == Conversation.contact_id)
            .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.source_id == sender))).scalar_one()


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


async def test_only_an_answer_that_stood_without_a_hand_off_counts_as_contained(dashboard):
    gw, scripted, ada = dashboard
    ids = {}
    for name, (turns, _) in SCENARIOS.items():
        ids[name] = await conversation_of(gw, await converse(gw, scripted, turns))
    async with ada.http.get(gw.url + f"/api/admin/metrics.csv?from={today()}&to={today()}&table=conversations") as r:
        rows = {row["conversation"]: row for row in csv.DictReader(io.StringIO(await r.text()))}
    got = {name: rows[cid]["outcome"] for name, cid in ids.items()}
    assert got == {name: outcome for name, (_, outcome) in SCENARIOS.items()}

    status, m = await ada.get(f"/api/admin/metrics?from={today()}&to={today()}")
    assert status == 200
    expected = {o: sum(1 for _, want in SCENARIOS.values() if want == o) for o in
                ("contained", "handed_off", "handoff_abandoned", "misfired", "no_answer")}
    assert expected == {"contained": 5, "handed_off": 1, "handoff_abandoned": 3, "misfired": 4, "no_answer": 2}
    assert m["outcomes"] == expected and sum(m["outcomes"].values()) == m["conversations"] == 15
    assert (m["contained"], m["containment_rate"]) == (5, round(5 / 15, 4))
    assert m["handed_off"] == 1
    # first-contact resolution: the contained ones (nobody came back); the handed-off one is not resolved yet
    assert m["first_contact_resolved"] == 5
    assert [(d["contained"], d["handed_off"], d["not_resolved"]) for d in m["daily"]] == [(5, 1, 9)]


async def test_the_unanswered_count_and_the_table_agree_for_every_filter(dashboard):
    gw, scripted, ada = dashboard
    # 24 distinct unanswered questions in English (one asked three times, in different cases), 2 in
    # German, an answered one, and 3 unanswered ones from before the period
    for i in range(24):
        q = f"Do you sell teapot model {i}?"
        turns = [(q, dont_know(q))]
        if i == 0:
            turns += [(q.upper(), dont_know(q.upper())), (q.lower(), dont_know(q.lower()))]
        await converse(gw, scripted, turns, language="en")
    for q in ("Verkaufen Sie Teekannen?", "Gibt es Teekannen aus Glas?"):
        await converse(gw, scripted, [(q, dont_know(q))], language="de")
    await converse(gw, scripted, [("How do I pause?", answer("How do I pause?"))], language="en")
    old = []
    for i in range(3):
        old.append(await conversation_of(gw, await converse(gw, scripted, [("Old teapot?", dont_know("Old teapot?"))],
                                                            language="en")))
    last_week = datetime.now(timezone.utc) - timedelta(days=7)
    async with gw.app[SESSIONMAKER]() as session:
        await session.execute(update(Conversation).where(Conversation.public_id.in_(old)).values(created_at=last_week))
        await session.commit()

    day = today()
    # filter -> (unanswered questions, all questions), worked out from the conversations above
    cases = {f"from={day}&to={day}": (28, 29), f"from={day}&to={day}&language=de": (2, 2),
             f"from={day}&to={day}&language=en": (26, 27), f"from={day}&to={day}&channel=webchat": (0, 0),
             f"from={last_week.date()}&to={day}": (31, 32), f"from={last_week.date()}&to={last_week.date()}": (3, 3)}
    for query, (n_unanswered, n_questions) in cases.items():
        status, m = await ada.get("/api/admin/metrics?" + query)
        assert status == 200
        table = sum(x["count"] for x in m["top_unanswered"]) + m["unanswered_other"]["count"]
        assert (m["unanswered"], table, m["questions"]) == (n_unanswered, n_unanswered, n_questions), query
        assert len(m["top_unanswered"]) <= TOP_UNANSWERED
        assert len({x["question"] for x in m["top_unanswered"]}) == len(m["top_unanswered"])  # one row a question
    status, m = await ada.get(f"/api/admin/metrics?from={day}&to={day}")
    # the question asked three times (case-folded) leads the table; 26 distinct: 20 rows and 6 in "other"
    assert m["top_unanswered"][0] == {"question": "do you sell teapot model 0?", "count": 3}
    assert m["unanswered_other"] == {"questions": 6, "count": 6}
    assert m["unanswered_rate"] == round(28 / 29, 4)


async def test_the_page_shows_the_outcomes_and_an_unanswered_count_its_table_adds_up_to(tmp_path, scripted):
    expect = playwright_api("async").expect

    gw = await start_gateway(make_settings(tmp_path, scripted), tmp_path / "gw.db")
    try:
        await gw.add_agent("ada@example.com", "Ada Admin", "admin")
        for i in range(22):  # 22 distinct unanswered questions, the first asked twice
            q = f"Do you sell teapot model {i}?"
            await converse(gw, scripted, [(q, dont_know(q))] + ([(q, dont_know(q))] if i == 0 else []))
        for turns, _ in (SCENARIOS["answered, it helped"], SCENARIOS["asked for a person, left the form"]):
            await converse(gw, scripted, turns)
        async with signed_in_page(gw.url, "/dashboard", "ada@example.com", {"width": 1280, "height": 1400}) as page:
            await expect(page.locator('[data-kpi="conversations"] .value')).to_have_text("24")
            # 1 of 24 contained: the one whose answer helped; the abandoned hand-off is not
            await expect(page.locator('[data-kpi="containment"] .value')).to_have_text("4.2 %")
            outcomes = page.locator("#outcomes")
            await expect(outcomes.locator("tr", has_text="Resolved by the bot")).to_contain_text("1")
            await expect(outcomes.locator("tr", has_text="hand-off not finished")).to_contain_text("1")
            await expect(outcomes.locator("tr", has_text="did not know")).to_contain_text("22")
            await expect(page.locator('[data-kpi="unanswered"] .sub')).to_have_text("23 of 24 questions")
            rows = page.locator("#unanswered tr")
            await expect(rows).to_have_count(1 + 20 + 1)  # the head, the 20 most frequent, "2 other questions"
            await expect(rows.last).to_contain_text("2 other questions")
            counts = [int(c) for c in await page.locator("#unanswered td.num").all_inner_texts()]
            assert sum(counts) == 23 and counts[0] == 2
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-outcomes.png"), full_page=True)
    finally:
        await gw.close()
