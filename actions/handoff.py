"""Hand-off to a human: a form captures what is not yet known (name, email, the order number when
the topic needs one; every field can be skipped), then one structured event tells the gateway, which
queues the conversation for an agent and stops forwarding it to the bot.

A person, once promised, is never lost: the promise is its own event (``handoff_requested``, when the
form starts), so the gateway finishes a form the customer left unanswered (bot.handoff.unfinished
sends ``/finish_handoff``), and leaving, insisting on a person or getting angry during the form hands
off at once with what was captured (data/rules/handoff.yml)."""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from . import runtime
from .events import emit

SKIPPED = "__skipped__"
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
ORDER_RE = re.compile(r"(?<![A-Za-z0-9])(?:BB-?)?(\d{6})(?!\d)", re.IGNORECASE)
ORDER_TAGS = {"orders", "shipping", "returns"}
ORDER_WORDS = re.compile(r"order|parcel|package|deliver|return|refund|bestell|paket|lieferung|rücksend|erstatt|"
                         r"sipariş|siparis|kargo|iade|注文|配送|返品|返金|荷物", re.IGNORECASE)
INTENT_REASONS = {"request_human": "customer_request", "complain": "frustration"}
# A question where a name, email or order number was asked: a question mark (also the full-width
# one), or a Japanese sentence ending in a question form.
QUESTION_RE = re.compile(r"[?？]|(?:ですか|ますか|でしょうか|ません)[。!！]*$")
# What the classifier calls a whole request rather than an answer to the form's question; a name
# alone is read as provide_name, or as a low-confidence guess.
SENTENCE_INTENTS = {"faq", "out_of_scope", "give_feedback", "bot_challenge", "ask_something_else", "ask_for_help",
                    "complain", "request_human"}
SENTENCE_CONFIDENCE = 0.8
CJK_RE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _customer_texts(tracker: Tracker, limit: int = 6) -> list[str]:
    texts = []
    for ev in reversed(tracker.events):
        if ev.get("event") != "user":
            continue
        intent = ((ev.get("parse_data") or {}).get("intent") or {}).get("name")
        text = (ev.get("text") or "").strip()
        if text and not text.startswith("/") and intent in ("faq", "nlu_fallback", "complain", "out_of_scope", None):
            texts.append(text[:300])
        if len(texts) >= limit:
            break
    return list(reversed(texts))


def _shown_titles(tracker: Tracker) -> list[str]:
    groups = list(tracker.get_slot("kb_shown") or [])
    try:
        searcher = runtime.searcher()
    except runtime.KnowledgeBaseUnavailable:
        return groups
    titles = []
    for g in groups:
        try:
            titles.append(searcher.pick_translation(g, "en")[0].title)
        except (KeyError, StopIteration):
            titles.append(g)
    return titles


def issue_summary(tracker: Tracker) -> str:
    """One or two sentences for the agent, built from the conversation (in English, for the team)."""
    texts = _customer_texts(tracker)
    parts = []
    if texts:
        parts.append(f'The customer asked: "{texts[-1]}"' if len(texts) == 1 else
                     f'The customer asked: "{texts[0]}", then: "{texts[-1]}"')
    else:
        parts.append("The customer asked for a person without a question yet")
    titles = _shown_titles(tracker)
    if titles:
        unhelpful = int(float(tracker.get_slot("unhelpful_count") or 0))
        verdict = " (marked not helpful)" if unhelpful else ""
        parts.append(f"Articles shown: {', '.join(titles)}{verdict}")
    order = tracker.get_slot("order_number")
    if order and order != SKIPPED:
        parts.append(f"Order {order}")
    return ". ".join(parts) + "."


def topic_needs_order_number(tracker: Tracker) -> bool:
    groups = list(tracker.get_slot("kb_shown") or []) + list(tracker.get_slot("kb_candidates") or [])
    try:
        searcher = runtime.searcher()
        for g in groups:
            art, _ = searcher.pick_translation(g, None)
            if ORDER_TAGS & set(art.tags):
                return True
    except (runtime.KnowledgeBaseUnavailable, KeyError, StopIteration):
        pass
    return any(ORDER_WORDS.search(t) for t in _customer_texts(tracker))


def name_suffix(name: str | None, lang: str | None) -> str:
    if not name or name == SKIPPED:
        return ""
    return f"、{name}様" if lang == "ja" else f", {name}"


def is_a_request(text: str, tracker: Tracker) -> bool:
    """Whether the customer asked something instead of answering the form's question."""
    if QUESTION_RE.search(text):
        return True
    if (tracker.latest_message.get("text") or "").strip() != text:
        return False  # the classifier's verdict is about another text
    intent = tracker.latest_message.get("intent") or {}
    sentence = len(text.split()) >= 3 or (CJK_RE.search(text) is not None and len(text) >= 10)  # no spaces there
    return sentence and intent.get("name") in SENTENCE_INTENTS and float(intent.get("confidence") or 0) >= SENTENCE_CONFIDENCE


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, sentiment: str = "neutral") -> list:
    lang = tracker.get_slot("language")
    dispatcher.utter_message(response="utter_handoff", name_suffix=name_suffix(tracker.get_slot("name"), lang))
    captured = {k: tracker.get_slot(k) for k in ("name", "email", "order_number")
                if tracker.get_slot(k) and tracker.get_slot(k) != SKIPPED}
    emit(dispatcher, "handoff",
         reason=reason,
         summary=issue_summary(tracker),
         articles_shown=list(tracker.get_slot("kb_shown") or []),
         captured=captured,
         skipped=list(tracker.get_slot("handoff_skipped") or []),
         language=lang,
         channel=tracker.get_slot("channel"),
         verified_user_id=tracker.get_slot("verified_user_id"),
         sentiment=sentiment)
    # The gateway's router pauses the bot for this conversation (it stops forwarding to Rasa while a
    # person has it), so the bot does not pause itself.
    return [SlotSet("kb_awaiting_feedback", False), SlotSet("human_offered", False), SlotSet("handoff_reason", None),
            SlotSet("unhelpful_count", 0.0), SlotSet("handoff_requested", False)]


def handoff_requested(dispatcher: CollectingDispatcher, reason: str) -> None:
    """Tell the gateway the customer is on the way to a person (the form starts): a conversation that
    stops here was not resolved by the bot, even if it never reaches the queue (bot/insights/metrics.py)."""
    emit(dispatcher, "handoff_requested", reason=reason)


def start_handoff(dispatcher: CollectingDispatcher, reason: str) -> list:
    """Events that make the next step the hand-off form (a rule reacts to handoff_requested)."""
    handoff_requested(dispatcher, reason)
    return [SlotSet("handoff_reason", reason), SlotSet("kb_awaiting_feedback", False),
            SlotSet("human_offered", False), SlotSet("handoff_requested", True)]


class ActionPrepareHandoff(Action):
    """Runs before the form: remembers why, and says sorry first when the customer is upset."""

    def name(self) -> str:
        return "action_prepare_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        reason = INTENT_REASONS.get(intent, "customer_request")
        if reason == "customer_request" and tracker.get_slot("human_offered") and tracker.get_slot("handoff_reason"):
            reason = tracker.get_slot("handoff_reason")  # accepting the bot's offer keeps the bot's reason
        if reason == "frustration":
            dispatcher.utter_message(response="utter_sorry_frustration")
        handoff_requested(dispatcher, reason)
        return [SlotSet("handoff_reason", reason), SlotSet("kb_awaiting_feedback", False),
                SlotSet("human_offered", False)]


class ValidateHandoffForm(FormValidationAction):
    def name(self) -> str:
        return "validate_handoff_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        skipped = set(tracker.get_slot("handoff_skipped") or [])
        wanted = ["name", "email"] + (["order_number"] if topic_needs_order_number(tracker) else [])
        return [s for s in wanted if s not in skipped]

    @staticmethod
    def _skip(tracker: Tracker, slot: str) -> dict:
        skipped = list(tracker.get_slot("handoff_skipped") or [])
        if slot not in skipped:
            skipped.append(slot)
        return {slot: None, "handoff_skipped": skipped}

    @staticmethod
    def _request_instead(slot: str, text: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict | None:
        """A question instead of an answer: say it is kept for the team (the hand-off summary quotes
        it) and let the form ask again; None when the text is an answer to check."""
        if not is_a_request(text, tracker):
            return None
        dispatcher.utter_message(response="utter_handoff_question_noted")
        return {slot: None}

    def validate_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        if value == SKIPPED:
            return self._skip(tracker, "name")
        raw = str(value or "").strip()
        refused = self._request_instead("name", raw, dispatcher, tracker)
        if refused is not None:
            return refused
        text = re.sub(r"^(my name is|i am|i'm|ich heiße|ich bin|mein name ist|adım|benim adım|ismim)\s+", "", raw,
                      flags=re.IGNORECASE).strip(" .!")
        text = re.sub(r"(です|と申します|といいます)$", "", text).strip()
        if not text or len(text) > 60 or len(text.split()) > 5 or re.search(r"[\d@/]", text):
            dispatcher.utter_message(response="utter_invalid_name", value=raw[:80])
            return {"name": None}
        return {"name": text}

    def validate_email(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        if value == SKIPPED:
            return self._skip(tracker, "email")
        text = str(value or "").strip()
        refused = self._request_instead("email", text, dispatcher, tracker)
        if refused is not None:
            return refused
        found = re.search(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text)
        candidate = found.group(0) if found else text
        if EMAIL_RE.match(candidate) and len(candidate) <= 254:
            return {"email": candidate.lower()}
        dispatcher.utter_message(response="utter_invalid_email", value=text[:80])
        return {"email": None}

    def validate_order_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> dict:
        if value == SKIPPED:
            return self._skip(tracker, "order_number")
        m = ORDER_RE.search(str(value or ""))
        if m:
            return {"order_number": f"BB-{m.group(1)}"}
        refused = self._request_instead("order_number", str(value or "").strip(), dispatcher, tracker)
        if refused is not None:
            return refused
        dispatcher.utter_message(response="utter_invalid_order_number")
        return {"order_number": None}


class ActionHandoff(Action):
    """Hands off with what was captured: after the form, or instead of its next question when the
    customer leaves, insists on a person or gets angry, or the gateway finishes a form left unanswered
    (then the form ends here too)."""

    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        reason = tracker.get_slot("handoff_reason") or "customer_request"
        if (tracker.latest_message.get("intent") or {}).get("name") == "complain" and reason != "frustration":
            dispatcher.utter_message(response="utter_sorry_frustration")
            reason = "frustration"
        events = hand_off(dispatcher, tracker, reason, "negative" if reason == "frustration" else "neutral")
        if tracker.active_loop.get("name"):
            events += [ActiveLoop(None), SlotSet("requested_slot", None)]
        return events
