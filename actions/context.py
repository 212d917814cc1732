"""Context captured on every turn: language, channel and verified identity.

Runs as the custom slot mapping of those slots (Rasa calls it from action_extract_slots after
each user message), so responses in the same turn are already in the right language.
"""
from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from knowledge_base.language import detect

from .runtime import supported_languages


def message_metadata(tracker: Tracker) -> dict:
    meta = tracker.latest_message.get("metadata") or {}
    return meta if isinstance(meta, dict) else {}


class ActionCaptureContext(Action):
    def name(self) -> str:
        return "action_capture_context"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        meta = message_metadata(tracker)
        text = tracker.latest_message.get("text") or ""
        supported = supported_languages()
        previous = tracker.get_slot("language")
        decided = meta.get("language_detected")  # the gateway already decided, with the conversation's history
        if isinstance(decided, str) and decided in supported:
            lang = decided
        else:
            lang = detect(text, previous=previous, hint=meta.get("language"), supported=supported).lang
        events = []
        if lang != previous:
            events.append(SlotSet("language", lang))
        channel = meta.get("channel")
        if isinstance(channel, str) and channel and channel != tracker.get_slot("channel"):
            events.append(SlotSet("channel", channel[:32]))
        verified = meta.get("verified_user_id")
        if isinstance(verified, str) and verified and verified != tracker.get_slot("verified_user_id"):
            events.append(SlotSet("verified_user_id", verified[:128]))
        return events
