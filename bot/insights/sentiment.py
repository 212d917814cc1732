"""Sentiment and severity of every customer message, tagged in the background.

After a customer's text message is stored, the gateway asks the action server (POST /kb/sentiment,
knowledge_base.sentiment: a classifier over the multilingual encoder, en/de/tr/ja and more) and stores
a ``sentiment`` conversation event ``{"message_id", "label", "p_negative", "p_positive", "severity"}``.
It is never on the answer's path: a slow or unreachable action server delays the tag, not the reply;
it is tried four times over about 15 s, and a message it still could not tag stays untagged (logged).
Messages are tagged in batches: one worker takes whatever has queued up meanwhile (up to
``BATCH_SIZE``), asks for all of them in one request and stores all their tags in one transaction,
so under load a message costs a fraction of a request and of a commit. The inbox shows a negative message's severity,
churn-risk scores count a high-severity one as anger (bot.insights.churn), the event stream carries every tag.
``SENTIMENT=off`` tags nothing.
"""
from __future__ import annotations

import asyncio
import logging

from ..store import repository as repo
from ..store.models import Conversation
from ..tasks import SpawnsTasks

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10
RETRY_PAUSES = (1.0, 3.0, 10.0)  # seconds before the second, third and fourth try
BATCH_SIZE = 32


class SentimentTagger(SpawnsTasks):
    _task_label = "sentiment"

    def __init__(self, sessionmaker, kb_client):
        self.sessionmaker = sessionmaker
        self.kb = kb_client
        self._tasks: set[asyncio.Task] = set()
        self._queue: list[tuple[int, str, str]] = []  # (conversation pk, message id, text)
        self._worker: asyncio.Task | None = None
        self._seen: dict[str, None] = {}  # recent message ids: a message answered again is not tagged again

    def tag(self, conversation_pk: int, message_id: str, text: str | None) -> None:
        text = (text or "").strip()
        if message_id in self._seen:
            return
        if text and not text.startswith("/"):  # button payloads carry no feeling
            self._seen[message_id] = None
            if len(self._seen) > 10_000:
                del self._seen[next(iter(self._seen))]
            self._queue.append((conversation_pk, message_id, text))
            if self._worker is None or self._worker.done():
                self._worker = self._spawn(self._work())

    async def _work(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:BATCH_SIZE], self._queue[BATCH_SIZE:]
            results = await self._classify([text for _, _, text in batch])
            if results is None:
                log.info("sentiment: %d message(s) not tagged: %s", len(batch), ", ".join(m for _, m, _ in batch))
                continue
            await self._store(list(zip(batch, results)))

    async def _classify(self, texts: list[str]) -> list[dict] | None:
        from ..editor.publishing import KbUnavailable

        for pause in RETRY_PAUSES + (None,):
            try:
                results = (await asyncio.wait_for(self.kb.sentiment(texts), TIMEOUT_SECONDS))["results"]
                if isinstance(results, list) and len(results) == len(texts) and all(isinstance(r, dict) for r in results):
                    return results
                raise TypeError("the action server answered a different number of results")
            except (KbUnavailable, asyncio.TimeoutError, KeyError, IndexError, TypeError) as exc:
                if pause is None or not _passing(exc):
                    log.info("sentiment: not tagged: %s", exc)
                    return None
                await asyncio.sleep(pause)  # the action server may be starting or loading its model
        return None  # pragma: no cover

    async def _store(self, tagged: list[tuple[tuple[int, str, str], dict]]) -> None:
        async with self.sessionmaker() as session:
            conversations: dict[int, Conversation | None] = {}
            for (conversation_pk, message_id, _), result in tagged:
                if conversation_pk not in conversations:
                    conversations[conversation_pk] = await session.get(Conversation, conversation_pk)
                conv = conversations[conversation_pk]
                if conv is None:  # deleted meanwhile
                    continue
                repo.add_event(session, conv, "sentiment", {"message_id": message_id, **{
                    k: result.get(k) for k in ("label", "p_negative", "p_positive", "severity")}})
            await session.commit()

    async def stop(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=0.5)
            for task in pending:  # untagged; the message itself is stored
                task.cancel()
        self._queue.clear()


def _passing(exc: Exception) -> bool:
    """Worth another try: the action server is starting, loading its model, or busy."""
    text = str(exc)
    return isinstance(exc, asyncio.TimeoutError) or "answered 503" in text or "unreachable" in text
