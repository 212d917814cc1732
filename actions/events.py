"""Structured events the action server sends to the gateway.

They travel as Rasa ``json_message``s (``{"custom": {"event": ...}}`` on the REST channel); the
gateway stores them and never shows them to the customer.
"""
from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from knowledge_base.search import Hit


def emit(dispatcher: CollectingDispatcher, event: str, **data) -> None:
    dispatcher.utter_message(json_message={"event": event, **data})


def hit_summary(hit: Hit) -> dict:
    return {"article_id": hit.article_id, "group": hit.group, "locale": hit.locale, "title": hit.title,
            "score": round(hit.score, 4), "link": hit.link}
