"""Whole conversations through the real stack (gateway -> Rasa -> action server), in each language:
the hand-off form with validation and skipping, two unhelpful answers, frustration, context kept."""
from __future__ import annotations

import json
import uuid

import aiohttp
import pytest

from actions.texts import response_text

pytestmark = pytest.mark.stack

CASES = {
    "en": ("I want to talk to a person", "my name is Anna Schmidt", "Anna Schmidt", "anna.schmidt@example.com"),
    "de": ("Ich möchte mit einem Mitarbeiter sprechen", "ich heiße Jonas Weber", "Jonas Weber", "jonas@example.de"),
    "tr": ("bir müşteri temsilcisiyle görüşmek istiyorum", "adım Ayşe Yılmaz", "Ayşe Yılmaz", "ayse@example.com.tr"),
    "ja": ("オペレーターと話したいです", "山田花子です", "山田花子", "hanako@example.jp"),
}


def _texts(replies) -> list[str]:
    return [r.get("text") or "" for r in replies]


def _first_line(name: str, lang: str) -> str:
    return response_text(name, lang).split("{")[0][:25]


def _events(stack, sender, type_):
    with stack.db() as db:
        rows = db.execute("SELECT e.data FROM conversation_events e JOIN conversations c ON c.id = e.conversation_id "
                          "JOIN contact_identities i ON i.contact_id = c.contact_id WHERE i.source_id = ? "
                          "AND e.type = ? ORDER BY e.id", (sender, type_)).fetchall()
    return [json.loads(r["data"]) for r in rows]


@pytest.mark.parametrize("lang", list(CASES))
def test_explicit_hand_off_asks_name_and_email_validates_and_hands_off(running_stack, lang):
    ask, name_msg, name, email = CASES[lang]
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    _, r = running_stack.ask(sender, ask)
    assert any(t.startswith(_first_line("utter_ask_name", lang)) for t in _texts(r)), _texts(r)
    assert "/skip" in {b["payload"] for x in r for b in x.get("buttons") or []}
    _, r = running_stack.ask(sender, name_msg)
    assert any(t.startswith(_first_line("utter_ask_email", lang)) for t in _texts(r)), _texts(r)
    _, r = running_stack.ask(sender, "not-an-email")
    assert any("not-an-email" in t for t in _texts(r)), _texts(r)  # utter_invalid_email names the value
    _, r = running_stack.ask(sender, email)
    handoff_text = response_text("utter_handoff", lang).split("{")[0]
    assert any(t.startswith(handoff_text) for t in _texts(r)), _texts(r)
    [event] = _events(running_stack, sender, "handoff")
    assert event["reason"] == "customer_request" and event["language"] == lang and event["channel"] == "rest"
    assert event["captured"] == {"name": name, "email": email.lower()}


async def test_the_widgets_proved_user_id_and_channel_reach_the_hand_off(running_stack):
    # metadata -> rasa_addons.context_extractor's entities -> slots -> the hand-off event
    from bot.channels.webchat_frames import user_hash

    from .conftest import WIDGET_TEST_SECRET

    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(running_stack.url.replace("http", "ws", 1) + "/webhooks/webchat/ws",
                                   origin=running_stack.url)
        await ws.send_json({"type": "hello", "visitor": "v" + uuid.uuid4().hex, "language": "de",
                            "user_id": "shop-7", "user_hash": user_hash(WIDGET_TEST_SECRET, "shop-7")})
        for i, text in enumerate(("Ich möchte mit einem Mitarbeiter sprechen", "/skip", "/skip")):
            await ws.send_json({"type": "message", "id": f"m{i}", "text": text})
            while True:
                frame = json.loads((await ws.receive(timeout=60)).data)
                if frame["type"] == "typing" and frame["on"] is False:
                    break
        await ws.close()
    with running_stack.db() as db:
        rows = db.execute("SELECT e.data FROM conversation_events e JOIN conversations c ON c.id = e.conversation_id "
                          "WHERE c.channel = 'webchat' AND e.type = 'handoff'").fetchall()
    events = [json.loads(r["data"]) for r in rows]
    assert any(e["verified_user_id"] == "shop-7" and e["channel"] == "webchat" and e["language"] == "de"
               for e in events), events


def test_the_form_can_be_skipped_entirely(running_stack):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    running_stack.ask(sender, "Ich möchte mit einem Mitarbeiter sprechen")
    running_stack.ask(sender, "/skip")
    _, r = running_stack.ask(sender, "/skip")
    assert any(t.startswith(response_text("utter_handoff", "de").split("{")[0]) for t in _texts(r)), _texts(r)
    [event] = _events(running_stack, sender, "handoff")
    assert event["captured"] == {} and event["skipped"] == ["name", "email"]


def test_two_unhelpful_answers_hand_off_and_ask_for_the_order_number_on_order_topics(running_stack):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    _, r = running_stack.ask(sender, "My parcel says delivered but it's not here")
    assert any("/help/" in t for t in _texts(r))
    _, r = running_stack.ask(sender, "/deny")
    assert any("/help/" in t for t in _texts(r)), "the next best article is offered"
    _, r = running_stack.ask(sender, "/deny")
    texts = _texts(r)
    assert texts[0] == response_text("utter_sorry_not_helpful", "en")
    assert any(t.startswith(_first_line("utter_ask_name", "en")) for t in texts)
    running_stack.ask(sender, "/skip")
    _, r = running_stack.ask(sender, "/skip")
    assert any(t.startswith(_first_line("utter_ask_order_number", "en")) for t in _texts(r)), _texts(r)
    _, r = running_stack.ask(sender, "it is bb482913")
    [event] = _events(running_stack, sender, "handoff")
    assert event["reason"] == "not_helpful" and event["captured"] == {"order_number": "BB-482913"}
    assert "parcel" in event["summary"] and "Articles shown:" in event["summary"]
    assert len(event["articles_shown"]) == 2


def test_frustration_apologises_then_hands_off_with_negative_sentiment(running_stack):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    _, r = running_stack.ask(sender, "bu tam bir rezalet, hiçbir şey çalışmıyor")
    assert _texts(r)[0] == response_text("utter_sorry_frustration", "tr")
    running_stack.ask(sender, "/skip")
    running_stack.ask(sender, "/skip")
    [event] = _events(running_stack, sender, "handoff")
    assert event["reason"] == "frustration" and event["sentiment"] == "negative" and event["language"] == "tr"


def test_the_language_stays_stable_on_short_replies_and_follows_a_real_switch(running_stack):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    _, r = running_stack.ask(sender, "Wie kann ich mein Abo kündigen?")
    _, r = running_stack.ask(sender, "ok")
    assert _texts(r)[0] in (response_text("utter_glad_to_help", "de"), response_text("utter_ask_something_else", "de"),
                            response_text("utter_default", "de")) or "/help/de/" in " ".join(_texts(r))
    _, r = running_stack.ask(sender, "How do I track my order?")
    assert any("/help/en/track-order" in t for t in _texts(r)), _texts(r)
    with running_stack.db() as db:
        lang = db.execute("SELECT c.language FROM conversations c JOIN contact_identities i ON i.contact_id = c.contact_id "
                          "WHERE i.source_id = ?", (sender,)).fetchone()[0]
    assert lang == "en"


def _resolve_as_an_agent(stack, sender: str) -> None:
    """An agent resolves the customer's queued conversation in the inbox (the bot is silent until then)."""
    import subprocess
    import sys

    from knowledge_base.config import PROJECT_ROOT
    from tests.inbox.stack_helpers import PASSWORD, SyncAgent

    email = f"agent-{uuid.uuid4().hex[:6]}@example.com"
    p = subprocess.run([sys.executable, "-m", "bot", "agents", "add", email, "--name", "Test Agent"],
                       input=PASSWORD + "\n", env=stack.env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert p.returncode == 0, p.stderr
    agent = SyncAgent(stack.url)
    assert agent.login(email)[0] == 200
    with stack.db() as db:
        conv = db.execute("SELECT c.public_id FROM conversations c JOIN contact_identities i ON i.contact_id = "
                          "c.contact_id WHERE i.source_id = ? AND c.status = 'pending'", (sender,)).fetchone()[0]
    assert agent.post(f"/api/inbox/conversations/{conv}/resolve")[0] == 200


def test_captured_context_is_kept_for_the_next_hand_off(running_stack):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    running_stack.ask(sender, "I want to talk to a person")
    running_stack.ask(sender, "my name is Lea Park")
    running_stack.ask(sender, "lea@example.com")
    # while a person has the conversation the bot stays silent
    _, r = running_stack.ask(sender, "hello?")
    assert r == []
    _resolve_as_an_agent(running_stack, sender)
    # later the same customer asks again: nothing is asked twice
    _, r = running_stack.ask(sender, "I want to talk to a person")
    assert any(t.startswith("Thanks, Lea Park") for t in _texts(r)), _texts(r)
    events = _events(running_stack, sender, "handoff")
    assert len(events) == 2 and events[1]["captured"] == {"name": "Lea Park", "email": "lea@example.com"}


def test_faq_turns_store_only_the_slots_that_changed_and_keep_the_conversation_state(running_stack):
    """The FAQ actions do not return slot events that leave a slot as it is (actions.server): the
    tracker stays short, and the state Rasa rebuilds from it is the one the customer is in."""
    import sqlite3

    sender = f"slots-{uuid.uuid4().hex[:8]}"
    questions = ["How do I reset my password?", "How can I change my delivery address?", "Can I pay with PayPal?"]
    for q in questions:
        _, r = running_stack.ask(sender, q)
        assert any("/help/" in t for t in _texts(r)), (q, _texts(r))
    _, r = running_stack.ask(sender, "/affirm")
    assert _texts(r)[0] == response_text("utter_glad_to_help", "en")
    with running_stack.db() as db:
        [(public,)] = db.execute("SELECT c.public_id FROM contacts c JOIN contact_identities i ON i.contact_id = c.id "
                                 "WHERE i.source_id = ?", (sender,)).fetchall()
    tracker_db = running_stack.env["RASA_TRACKER_STORE_URL"].split("///", 1)[1]
    with sqlite3.connect(tracker_db) as db:
        rows = [json.loads(d) for (d,) in db.execute("SELECT data FROM events WHERE sender_id = ? ORDER BY id", (public,))]
    assert sum(e["event"] == "user" for e in rows) == len(questions) + 1
    value, after_faq_action, changed, unchanged = {}, False, 0, []
    for e in rows:
        if e["event"] == "action":
            after_faq_action = e["name"] in ("action_answer_from_kb", "action_kb_feedback")
        elif e["event"] == "slot":
            if after_faq_action and e["name"] in value and value[e["name"]] == e["value"]:
                unchanged.append(e["name"])
            changed += after_faq_action
            value[e["name"]] = e["value"]
    assert unchanged == [], unchanged
    assert changed >= len(questions), "the actions still set the slots that change (the query, the articles shown)"
    # the state at the end, replayed from the stored events: the last answer was confirmed
    assert value["kb_awaiting_feedback"] is False and value["kb_last_query"] == questions[-1]
    assert value["human_offered"] is False and len(value["kb_shown"]) == len(questions)


def _status(stack, sender) -> str:
    with stack.db() as db:
        return db.execute("SELECT c.status FROM conversations c JOIN contact_identities i ON i.contact_id = c.contact_id "
                          "WHERE i.source_id = ? ORDER BY c.id DESC", (sender,)).fetchone()[0]


@pytest.mark.parametrize("lang,question", [("en", "where is my order?"), ("de", "Wo bleibt meine Bestellung?"),
                                           ("tr", "siparişim nerede kaldı"), ("ja", "注文した商品はいつ届きますか")])
def test_a_question_is_not_taken_for_a_name_and_reaches_the_person(running_stack, lang, question):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    running_stack.ask(sender, CASES[lang][0])
    _, r = running_stack.ask(sender, question)
    texts = _texts(r)
    assert texts[0] == response_text("utter_handoff_question_noted", lang), texts
    assert any(t.startswith(_first_line("utter_ask_name", lang)) for t in texts), "asked again"
    _, r = running_stack.ask(sender, CASES[lang][1])
    assert any(t.startswith(_first_line("utter_ask_email", lang)) for t in _texts(r)), _texts(r)
    _, r = running_stack.ask(sender, "/skip")
    # the question was about an order, so the form asks for its number too
    assert any(t.startswith(_first_line("utter_ask_order_number", lang)) for t in _texts(r)), _texts(r)
    running_stack.ask(sender, "/skip")
    [event] = _events(running_stack, sender, "handoff")
    assert event["captured"] == {"name": CASES[lang][2]} and event["skipped"] == ["email", "order_number"]
    assert question in event["summary"], event["summary"]


def test_a_sentence_that_is_not_a_name_is_refused_with_a_reason(running_stack):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    running_stack.ask(sender, "Ich möchte mit einem Mitarbeiter sprechen")
    _, r = running_stack.ask(sender, "BB-123456")
    texts = _texts(r)
    assert texts[0] == response_text("utter_invalid_name", "de").replace("{value}", "BB-123456"), texts
    assert texts[-1].startswith(_first_line("utter_ask_name", "de"))


def test_a_customer_who_goes_quiet_during_the_form_is_queued_with_what_was_captured(running_stack):
    import time

    sender = f"conv-{uuid.uuid4().hex[:8]}"
    running_stack.ask(sender, "I want to talk to a person")
    _, r = running_stack.ask(sender, "my name is Mia Lopez")
    assert any(t.startswith(_first_line("utter_ask_email", "en")) for t in _texts(r))
    [promise] = _events(running_stack, sender, "handoff_requested")
    assert promise["reason"] == "customer_request" and _status(running_stack, sender) == "bot"
    # the customer says nothing more; HANDOFF_FORM_TIMEOUT_SECONDS (12 s in tests) later the gateway finishes
    deadline = time.time() + 60
    while _status(running_stack, sender) != "pending" and time.time() < deadline:
        time.sleep(1)
    assert _status(running_stack, sender) == "pending"
    [event] = _events(running_stack, sender, "handoff")
    assert event["reason"] == "customer_request" and event["captured"] == {"name": "Mia Lopez"}
    # the customer is told (a REST customer reads it with the next poll)
    with running_stack.db() as db:
        told = [row[0] for row in db.execute(
            "SELECT m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id JOIN contact_identities i "
            "ON i.contact_id = c.contact_id WHERE i.source_id = ? AND m.direction = 'out' ORDER BY m.id", (sender,))]
    assert told[-2].startswith("Thanks, Mia Lopez. I'm handing you over"), told[-3:]
    # and nothing is finished twice
    time.sleep(2)
    assert len(_events(running_stack, sender, "handoff")) == 1


@pytest.mark.parametrize("lang,leaving,reason", [("en", "bye", "customer_request"),
                                                 ("tr", "bir insanla görüşmek istiyorum dedim!", "customer_request"),
                                                 ("de", "Das ist doch lächerlich, ich bin stinksauer", "frustration")])
def test_leaving_or_insisting_during_the_form_hands_off_at_once(running_stack, lang, leaving, reason):
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    running_stack.ask(sender, CASES[lang][0])
    running_stack.ask(sender, CASES[lang][1])
    _, r = running_stack.ask(sender, leaving)
    assert any(t.startswith(response_text("utter_handoff", lang).split("{")[0]) for t in _texts(r)), _texts(r)
    assert _status(running_stack, sender) == "pending"
    [event] = _events(running_stack, sender, "handoff")
    assert event["reason"] == reason and event["captured"] == {"name": CASES[lang][2]}
