"""The action server's shared state: the live knowledge base. Configured by actions.server at
start (or by tests), never at import time."""
from __future__ import annotations

from knowledge_base.config import KBSettings
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.search import Searcher


class KnowledgeBaseUnavailable(RuntimeError):
    pass


_state: dict = {"kb": None, "settings": None}


def configure(kb: LiveKnowledgeBase | None, settings: KBSettings | None = None) -> None:
    _state["kb"] = kb
    _state["settings"] = settings


def live() -> LiveKnowledgeBase | None:
    return _state["kb"]


def searcher() -> Searcher:
    kb = _state["kb"]
    s = kb.searcher if kb is not None else None
    if s is None:
        raise KnowledgeBaseUnavailable(getattr(kb, "last_error", None) or "knowledge base not loaded")
    return s


def supported_languages() -> tuple[str, ...]:
    import os

    raw = os.environ.get("BOT_LANGUAGES", "en,de,tr,ja")
    return tuple(x.strip() for x in raw.split(",") if x.strip())
