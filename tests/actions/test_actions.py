"""Action tests: trackers loaded from JSON, a real Searcher over a small snapshot (built with a
deterministic encoder), assertions on the returned events and the dispatcher's messages."""
import json
from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import runtime
from actions.faq import ActionAnswerFromKB, ActionKBFeedback, choose_payload
from actions.handoff import ActionHandoff, ActionPrepareHandoff, ValidateHandoffForm
from knowledge_base.decision import DecisionPolicy
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.snapshot import build_snapshot

from ..fakes import HashingEncoder, article

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "trackers"

ARTS = [
    article("cancel-subscription-en", "How do I cancel my subscription?", "Go to Account > Subscription > Cancel.",
            questions=("cancel my plan",)),
    article("cancel-subscription-de", "Wie kann ich mein Abo kündigen?", "Konto > Abonnement > Abo kündigen.",
            locale="de", group="cancel-subscription", questions=("Abo kündigen",)),
    article("pause-subscription-en", "How do I pause my subscription?", "Account > Subscription > Pause.",
            questions=("pause my plan for a month",)),
    article("gift-subscription-en", "Gift subscriptions", "Gift boxes for 3, 6 or 12 months.",
            questions=("buy a subscription as a gift",)),
]


@pytest.fixture
def kb(tmp_path):
    enc = HashingEncoder()
    build_snapshot(tmp_path, ARTS, enc, DecisionPolicy(answer_threshold=0.5, clarify_margin=0.02))
    live = LiveKnowledgeBase(tmp_path, enc)
    live.refresh()
    runtime.configure(live)
    yield live
    runtime.configure(None)


def load_tracker(name: str, **overrides) -> Tracker:
    state = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    for key, value in overrides.items():
        if key == "slots":
            state["slots"].update(value)
        else:
            state[key] = value
    return Tracker.from_dict(state)


def message(text: str, intent: str, lang: str = "de", entities=None) -> dict:
    return {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or [],
            "metadata": {"channel": "rest", "language": lang}}


def slots(events) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def customs(d: CollectingDispatcher) -> list[dict]:
    return [m["custom"] for m in d.messages if m.get("custom")]


async def test_answer_in_the_customers_language_then_did_it_help(kb):
    d = CollectingDispatcher()
    events = await ActionAnswerFromKB().run(d, load_tracker("faq_question_de.json"), {})
    responses = [m.get("response") for m in d.messages if m.get("response")]
    assert responses == ["utter_kb_answer", "utter_did_that_help"]
    answer = next(m for m in d.messages if m.get("response") == "utter_kb_answer")
    assert answer["title"] == "Wie kann ich mein Abo kündigen?" and answer["link"] == "/help/de/cancel-subscription"
    s = slots(events)
    assert s["kb_awaiting_feedback"] is True and s["kb_shown"] == ["cancel-subscription"]
    assert s["kb_last_query"] == "Wie kann ich mein Abo kündigen?"
    ev = customs(d)[0]
    assert ev["event"] == "kb_answer" and ev["decision"] == "answer"
    assert ev["articles"][0]["article_id"] == "cancel-subscription-de"


async def test_an_english_only_article_is_answered_with_a_note(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("buy a subscription as a gift", "faq"))
    await ActionAnswerFromKB().run(d, t, {})
    responses = [m.get("response") for m in d.messages if m.get("response")]
    assert responses[:2] == ["utter_kb_answer_translated_note", "utter_kb_answer"]


async def test_nothing_good_enough_says_so_and_offers_a_person(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("xyzzy qwv plugh", "nlu_fallback"))
    events = await ActionAnswerFromKB().run(d, t, {})
    assert [m.get("response") for m in d.messages if m.get("response")] == ["utter_kb_dont_know"]
    assert customs(d)[0]["decision"] == "handoff"
    assert slots(events)["human_offered"] is True


async def test_close_candidates_are_offered_as_buttons(kb):
    searcher = runtime.searcher()
    object.__setattr__(searcher, "policy", DecisionPolicy(answer_threshold=0.1, clarify_margin=0.9))
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("subscription", "faq"))
    events = await ActionAnswerFromKB().run(d, t, {})
    clarify = next(m for m in d.messages if m.get("response") == "utter_kb_clarify")
    payloads = [b["payload"] for b in clarify["buttons"]]
    assert len(payloads) >= 3 and payloads[-1] == "/deny"
    assert all(p.startswith("/choose_article{") for p in payloads[:-1])
    from actions.texts import response_text

    assert clarify["buttons"][-1]["title"] == response_text("utter_kb_none_of_these", "de") != "None of these"
    offered = [json.loads(p[len("/choose_article"):])["article_group"] for p in payloads[:-1]]
    assert slots(events)["kb_candidates"] == offered  # what "none of these" and a choice are checked against


async def test_choosing_an_option_answers_that_article(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message(
        choose_payload("pause-subscription"), "choose_article",
        entities=[{"entity": "article_group", "value": "pause-subscription"}]))
    events = await ActionAnswerFromKB().run(d, t, {})
    answer = next(m for m in d.messages if m.get("response") == "utter_kb_answer")
    assert answer["link"] == "/help/en/pause-subscription"
    assert slots(events)["kb_shown"] == ["pause-subscription"]


async def test_not_helpful_offers_the_next_best_then_a_person(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("nein", "deny"),
                     slots={"kb_awaiting_feedback": True, "kb_shown": ["cancel-subscription"],
                            "kb_candidates": ["pause-subscription"], "unhelpful_count": 0})
    events = await ActionKBFeedback().run(d, t, {})
    responses = [m.get("response") for m in d.messages if m.get("response")]
    assert responses[0] == "utter_offer_next_or_human" and "utter_kb_answer" in responses
    s = slots(events)
    assert s["unhelpful_count"] == 1 and s["kb_shown"] == ["cancel-subscription", "pause-subscription"]

    d2 = CollectingDispatcher()
    t2 = load_tracker("faq_question_de.json", latest_message=message("nein", "deny"),
                      slots={"kb_awaiting_feedback": True, "kb_shown": s["kb_shown"], "kb_candidates": [],
                             "unhelpful_count": 1})
    events2 = await ActionKBFeedback().run(d2, t2, {})
    # the second unhelpful answer in a row starts the hand-off (a rule runs the form next)
    assert [m.get("response") for m in d2.messages if m.get("response")] == ["utter_sorry_not_helpful"]
    s2 = slots(events2)
    assert s2["handoff_requested"] is True and s2["handoff_reason"] == "not_helpful" and s2["unhelpful_count"] == 2
    # the gateway hears that a person is on the way (a form left unfinished is no success of the bot)
    assert {"event": "handoff_requested", "reason": "not_helpful"} in customs(d2)
    assert not any(c["event"] == "handoff_requested" for c in customs(d))  # the first "no" offered an article


async def test_no_with_nothing_else_to_offer_offers_a_person(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("nein", "deny"),
                     slots={"kb_awaiting_feedback": True, "kb_shown": ["cancel-subscription"], "kb_candidates": [],
                            "unhelpful_count": 0})
    events = await ActionKBFeedback().run(d, t, {})
    assert [m.get("response") for m in d.messages if m.get("response")] == ["utter_offer_human"]
    s = slots(events)
    assert s["human_offered"] is True and s["handoff_requested"] is False and s["handoff_reason"] == "not_helpful"
    assert not any(c["event"] == "handoff_requested" for c in customs(d))  # only offered, not accepted


async def test_yes_after_the_offer_of_a_person_starts_the_hand_off_with_the_bots_reason(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("ja", "affirm"),
                     slots={"human_offered": True, "handoff_reason": "kb_no_answer"})
    events = await ActionKBFeedback().run(d, t, {})
    s = slots(events)
    assert s["handoff_requested"] is True and s["handoff_reason"] == "kb_no_answer"
    assert customs(d) == [{"event": "handoff_requested", "reason": "kb_no_answer"}]
    assert [m for m in d.messages if m.get("response") or m.get("text")] == []  # the form speaks next


async def test_hand_off_event_carries_reason_summary_articles_and_captured_fields(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("/skip", "skip"),
                     slots={"kb_shown": ["cancel-subscription"], "email": "a@b.de", "name": "__skipped__",
                            "handoff_skipped": ["name"], "handoff_reason": "not_helpful", "unhelpful_count": 2},
                     events=[{"event": "user", "text": "Wie kann ich mein Abo kündigen?",
                              "parse_data": {"intent": {"name": "faq"}}},
                             {"event": "user", "text": "nein", "parse_data": {"intent": {"name": "deny"}}}])
    events = await ActionHandoff().run(d, t, {})
    handoff = next(c for c in customs(d) if c["event"] == "handoff")
    assert handoff["reason"] == "not_helpful" and handoff["language"] == "de" and handoff["sentiment"] == "neutral"
    assert handoff["articles_shown"] == ["cancel-subscription"]
    assert handoff["captured"] == {"email": "a@b.de"} and handoff["skipped"] == ["name"]
    assert handoff["summary"] == ('The customer asked: "Wie kann ich mein Abo kündigen?". '
                                  'Articles shown: How do I cancel my subscription? (marked not helpful).')
    answer = next(m for m in d.messages if m.get("response") == "utter_handoff")
    assert answer["name_suffix"] == ""
    assert slots(events)["handoff_requested"] is False


async def test_frustration_says_sorry_first_and_hands_off_with_negative_sentiment(kb):
    d = CollectingDispatcher()
    t = load_tracker("faq_question_de.json", latest_message=message("Das ist doch lächerlich!", "complain"))
    events = await ActionPrepareHandoff().run(d, t, {})
    assert [m.get("response") for m in d.messages if m.get("response")] == ["utter_sorry_frustration"]
    assert customs(d) == [{"event": "handoff_requested", "reason": "frustration"}]
    assert slots(events)["handoff_reason"] == "frustration"
    d2 = CollectingDispatcher()
    t2 = load_tracker("faq_question_de.json", latest_message=message("x", "complain"),
                      slots={"handoff_reason": "frustration", "name": "Jonas", "language": "ja"})
    await ActionHandoff().run(d2, t2, {})
    handoff = next(c for c in customs(d2) if c["event"] == "handoff")
    assert handoff["reason"] == "frustration" and handoff["sentiment"] == "negative"
    assert next(m for m in d2.messages if m.get("response"))["name_suffix"] == "、Jonas様"


def _form_tracker(**slots_):
    return load_tracker("faq_question_de.json", slots={"requested_slot": None, **slots_},
                        active_loop={"name": "handoff_form"})


async def test_form_asks_only_what_is_unknown_and_the_order_number_only_when_the_topic_needs_it(kb):
    form = ValidateHandoffForm()
    d = CollectingDispatcher()
    plans = await form.required_slots(["name", "email", "order_number"], d, _form_tracker(), {})
    assert plans == ["name", "email"]
    t = _form_tracker(handoff_skipped=["name"])
    t.events.append({"event": "user", "text": "Wo ist meine Bestellung?", "parse_data": {"intent": {"name": "faq"}}})
    assert await form.required_slots([], d, t, {}) == ["email", "order_number"]


@pytest.mark.parametrize("value,expected", [
    ("anna@example.com", "anna@example.com"), ("my email is Anna.K@Example.org", "anna.k@example.org"),
    ("メールはtaro@example.jpです", "taro@example.jp")])
async def test_form_accepts_valid_emails(kb, value, expected):
    d = CollectingDispatcher()
    assert ValidateHandoffForm().validate_email(value, d, _form_tracker(), {}) == {"email": expected}
    assert d.messages == []


async def test_form_rejects_an_invalid_email_with_a_message_and_asks_again(kb):
    d = CollectingDispatcher()
    assert ValidateHandoffForm().validate_email("anna at example", d, _form_tracker(), {}) == {"email": None}
    assert d.messages[0]["response"] == "utter_invalid_email" and d.messages[0]["value"] == "anna at example"


async def test_form_skip_records_the_field_as_skipped(kb):
    d = CollectingDispatcher()
    out = ValidateHandoffForm().validate_email("__skipped__", d, _form_tracker(handoff_skipped=["name"]), {})
    assert out == {"email": None, "handoff_skipped": ["name", "email"]}


@pytest.mark.parametrize("value,expected", [("BB-123456", "BB-123456"), ("bb123456", "BB-123456"),
                                            ("注文番号は482913です", "BB-482913"), ("12345", None)])
async def test_form_normalises_order_numbers(kb, value, expected):
    d = CollectingDispatcher()
    assert ValidateHandoffForm().validate_order_number(value, d, _form_tracker(), {}) == {"order_number": expected}
    assert bool(d.messages) == (expected is None)


@pytest.mark.parametrize("value,expected", [("Anna Schmidt", "Anna Schmidt"), ("my name is Anna", "Anna"),
                                            ("ich heiße Jonas Weber", "Jonas Weber"), ("山田花子です", "山田花子"),
                                            ("where is my order 123?", None)])
async def test_form_cleans_names_and_refuses_questions(kb, value, expected):
    d = CollectingDispatcher()
    assert ValidateHandoffForm().validate_name(value, d, _form_tracker(), {}) == {"name": expected}


def test_slot_events_that_change_nothing_are_left_out_until_another_kind_of_event():
    from actions.server import without_unchanged_slots

    def slot(name, value):
        return {"event": "slot", "timestamp": None, "name": name, "value": value}

    current = {"human_offered": False, "handoff_reason": None, "kb_shown": ["a"], "unhelpful_count": 1.0, "flag": 1}
    events = [slot("human_offered", False), slot("handoff_reason", None), slot("kb_shown", ["a"]),
              slot("kb_shown", ["a", "b"]), slot("kb_shown", ["a", "b"]), slot("unhelpful_count", 1),
              slot("flag", True), slot("new_slot", None)]
    kept = without_unchanged_slots(events, current)
    assert kept == [slot("kb_shown", ["a", "b"]), slot("unhelpful_count", 1), slot("flag", True), slot("new_slot", None)]
    # after a reset (or any other event) every slot event is kept: the values may have changed
    after = [slot("human_offered", False), {"event": "reset_slots", "timestamp": None}, slot("human_offered", False)]
    assert without_unchanged_slots(after, current) == after[1:]
    assert without_unchanged_slots([], current) == []
