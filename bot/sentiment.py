"""Sentiment and severity of every customer message, tagged in the background.

After a customer's text message is stored, the gateway asks the action server (POST /kb/sentiment,
knowledge_base.sentiment: a classifier over the multilingual encoder, en/de/tr/ja and more) and stores
a ``sentiment`` conversation event ``{"message_id", "label", "p_negative", "p_positive", "severity"}``.
It is never on the answer's path: a slow or unreachable action server delays the tag, not the reply;
it is tried four times over about 15 s, and a message it still could not tag stays untagged (logged). The inbox shows a negative message's severity,
churn-risk scores count a high-severity one as anger (bot.churn), the event stream carries every tag.
``SENTIMENT=off`` tags nothing.
"""
from __future__ import annotations

import asyncio
import logging

from .store import repository as repo
from .store.models import Conversation
from .tasks import SpawnsTasks

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10
RETRY_PAUSES = (1.0, 3.0, 10.0)  # seconds before the second, third and fourth try


class SentimentTagger(SpawnsTasks):
    _task_label = "sentiment"

    def __init__(self, sessionmaker, kb_client):
        self.sessionmaker = sessionmaker
        self.kb = kb_client
        self._tasks: set[asyncio.Task] = set()

    def tag(self, conversation_pk: int, message_id: str, text: str | None) -> None:
        text = (text or "").strip()
        if text and not text.startswith("/"):  # button payloads carry no feeling
            self._spawn(self._tag(conversation_pk, message_id, text))

    async def _tag(self, conversation_pk: int, message_id: str, text: str) -> None:
        from .editor.publishing import KbUnavailable

        for pause in RETRY_PAUSES + (None,):
            try:
                result = (await asyncio.wait_for(self.kb.sentiment([text]), TIMEOUT_SECONDS))["results"][0]
                break
            except (KbUnavailable, asyncio.TimeoutError, KeyError, IndexError, TypeError) as exc:
                if pause is None or not _passing(exc):
                    log.info("sentiment: message %s not tagged: %s", message_id, exc)
                    return
                await asyncio.sleep(pause)  # the action server may be starting or loading its model
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conversation_pk)
            if conv is None:  # deleted meanwhile
                return
            repo.add_event(session, conv, "sentiment", {"message_id": message_id, **{
                k: result.get(k) for k in ("label", "p_negative", "p_positive", "severity")}})
            await session.commit()

    async def stop(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=0.5)
            for task in pending:  # untagged; the message itself is stored
                task.cancel()


def _passing(exc: Exception) -> bool:
    """Worth another try: the action server is starting, loading its model, or busy."""
    text = str(exc)
    return isinstance(exc, asyncio.TimeoutError) or "answered 503" in text or "unreachable" in text
