"""Answering from the knowledge base: answer, clarify or admit not knowing; then "did this help?"."""
from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from knowledge_base.decision import ANSWER, CLARIFY
from knowledge_base.search import Hit, Searcher

from . import runtime
from .events import emit, hit_summary
from .handoff import start_handoff
from .texts import response_text

MAX_QUERY_CHARS = 1000
# action_kb_feedback always says whether it hands off, so the rules can tell the two outcomes apart.
NO_HANDOFF = SlotSet("handoff_requested", False)


def choose_payload(group: str) -> str:
    return "/choose_article" + json.dumps({"article_group": group}, separators=(",", ":"))


def send_answer(dispatcher: CollectingDispatcher, hit: Hit) -> None:
    if hit.other_language:
        dispatcher.utter_message(response="utter_kb_answer_translated_note")
    dispatcher.utter_message(response="utter_kb_answer", answer=hit.answer, title=hit.title, link=hit.link)
    dispatcher.utter_message(response="utter_did_that_help")


def answered_events(tracker: Tracker, hit: Hit, candidates: list[str]) -> list:
    shown = list(tracker.get_slot("kb_shown") or [])
    if hit.group not in shown:
        shown.append(hit.group)
    return [SlotSet("kb_awaiting_feedback", True), SlotSet("kb_shown", shown[-20:]),
            SlotSet("kb_candidates", [c for c in candidates if c not in shown][:3]),
            SlotSet("human_offered", False), SlotSet("handoff_reason", None)]


def hit_for_group(searcher: Searcher, group: str, lang: str | None, score: float = 1.0) -> Hit | None:
    try:
        art, other = searcher.pick_translation(group, lang)
    except (KeyError, StopIteration):
        return None
    return Hit(art.id, group, art.title, art.locale, score, art.link, art.short_answer, other)


class ActionAnswerFromKB(Action):
    def name(self) -> str:
        return "action_answer_from_kb"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        lang = tracker.get_slot("language")
        try:
            searcher = runtime.searcher()
        except runtime.KnowledgeBaseUnavailable as exc:
            dispatcher.utter_message(response="utter_kb_unavailable")
            emit(dispatcher, "kb_unavailable", reason=str(exc))
            return []
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "choose_article":
            group = next((e.get("value") for e in tracker.latest_message.get("entities") or []
                          if e.get("entity") == "article_group"), None)
            hit = hit_for_group(searcher, group, lang) if isinstance(group, str) else None
            if hit is not None:
                send_answer(dispatcher, hit)
                emit(dispatcher, "kb_answer", decision="chosen", query=tracker.get_slot("kb_last_query"),
                     articles=[hit_summary(hit)], version=searcher.version)
                return answered_events(tracker, hit, list(tracker.get_slot("kb_candidates") or []))
            # an unknown option (stale button): fall through and search the text as usual

        text = (tracker.latest_message.get("text") or "").strip()[:MAX_QUERY_CHARS]
        if intent == "choose_article" or not text or text.startswith("/"):
            text = tracker.get_slot("kb_last_query") or text
        result = searcher.search(text, lang=lang, k=5)
        summaries = [hit_summary(h) for h in result.hits[:5]]
        events = [SlotSet("kb_last_query", text)]
        if result.decision == ANSWER:
            best = result.hits[0]
            send_answer(dispatcher, best)
            emit(dispatcher, "kb_answer", decision=ANSWER, query=text, articles=summaries, version=result.version)
            return events + answered_events(tracker, best, [h.group for h in result.next_best])
        if result.decision == CLARIFY:
            options = result.hits[:result.n_decided]
            buttons = [{"title": h.title, "payload": choose_payload(h.group)} for h in options]
            buttons.append({"title": response_text("utter_kb_none_of_these", lang), "payload": "/deny"})
            dispatcher.utter_message(response="utter_kb_clarify", buttons=buttons)
            emit(dispatcher, "kb_answer", decision=CLARIFY, query=text, articles=summaries, version=result.version)
            return events + [SlotSet("kb_awaiting_feedback", True),
                             SlotSet("kb_candidates", [h.group for h in options])]
        dispatcher.utter_message(response="utter_kb_dont_know")
        emit(dispatcher, "kb_answer", decision="handoff", query=text, articles=summaries, version=result.version)
        return events + [SlotSet("kb_awaiting_feedback", False), SlotSet("kb_candidates", []),
                         SlotSet("human_offered", True), SlotSet("handoff_reason", "kb_no_answer")]


class ActionKBFeedback(Action):
    """Yes or no, read against the question that is open.

    After "Did this help?": yes ends the question as self-served; no offers the next best article,
    and after a second unhelpful answer, a person. After the offer of a person: yes hands over,
    no asks what else we can do. With no open question: a friendly prompt.
    """

    def name(self) -> str:
        return "action_kb_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        yes = intent == "affirm"
        if tracker.get_slot("human_offered"):
            if yes:
                return start_handoff(dispatcher, tracker.get_slot("handoff_reason") or "customer_request")
            dispatcher.utter_message(response="utter_ask_something_else")
            return [SlotSet("human_offered", False), SlotSet("handoff_reason", None), NO_HANDOFF]
        if not tracker.get_slot("kb_awaiting_feedback"):
            dispatcher.utter_message(response="utter_glad_to_help" if yes else "utter_ask_something_else")
            return [NO_HANDOFF]
        shown = list(tracker.get_slot("kb_shown") or [])
        last = shown[-1] if shown else None
        if yes:
            dispatcher.utter_message(response="utter_glad_to_help")
            emit(dispatcher, "kb_feedback", helpful=True, group=last)
            return [SlotSet("kb_awaiting_feedback", False), SlotSet("unhelpful_count", 0.0),
                    SlotSet("kb_candidates", []), NO_HANDOFF]
        unhelpful = float(tracker.get_slot("unhelpful_count") or 0) + 1
        emit(dispatcher, "kb_feedback", helpful=False, group=last)
        events = [SlotSet("unhelpful_count", unhelpful), NO_HANDOFF]
        candidates = [c for c in (tracker.get_slot("kb_candidates") or []) if c not in shown]
        if unhelpful < 2 and candidates:
            try:
                searcher = runtime.searcher()
            except runtime.KnowledgeBaseUnavailable:
                searcher = None
            hit = hit_for_group(searcher, candidates[0], tracker.get_slot("language")) if searcher else None
            if hit is not None:
                dispatcher.utter_message(response="utter_offer_next_or_human")
                send_answer(dispatcher, hit)
                emit(dispatcher, "kb_answer", decision="next_best", query=tracker.get_slot("kb_last_query"),
                     articles=[hit_summary(hit)], version=searcher.version)
                return events + answered_events(tracker, hit, candidates[1:])
        if unhelpful >= 2:
            # Two unhelpful answers in a row: stop guessing and bring in a person.
            dispatcher.utter_message(response="utter_sorry_not_helpful")
            return [SlotSet("unhelpful_count", unhelpful), SlotSet("kb_candidates", [])] + start_handoff(dispatcher, "not_helpful")
        dispatcher.utter_message(response="utter_offer_human")
        return events + [SlotSet("kb_awaiting_feedback", False), SlotSet("kb_candidates", []),
                         SlotSet("human_offered", True), SlotSet("handoff_reason", "not_helpful")]
