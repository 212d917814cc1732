"""The event stream: every conversation event, in order, for a company's warehouse.

Every stored message, every structured event (knowledge-base answers, feedback, hand-offs, status
changes, surveys, ...) and every new conversation is also written to the ``event_stream`` table, in
the same transaction as the change itself (``repository.add_message``/``add_event`` call
``bot.store.event_stream.record``), so the stream never misses or invents one. Read it:

- from the table, ``GET /api/admin/events?after=<id>&limit=<n>`` (admins), in id order; or
- from a RabbitMQ queue: with ``EVENT_BROKER_URL=amqp://user:pass@host:5672/`` a background worker
  publishes each row, persistent and with publisher confirms, to ``EVENT_BROKER_QUEUE`` (default
  ``support_events``) and marks it published. A broker outage delays publishing, loses nothing;
  after a crash between publish and mark a row is published again: consumers deduplicate on the
  AMQP ``message_id`` (= the event's ``event_id``). Rasa's own tracker events go to
  ``RASA_EVENT_QUEUE`` through Rasa's pika event broker (bot.ops.stack writes it into endpoints.yml).

An event: ``{"id": 17, "event_id": "...", "type": "message.in", "conversation_id": "...",
"contact_id": "...", "created_at": "...", "payload": {...}}``. Types: ``conversation.created``,
``message.in``, ``message.out``, ``event.<type>`` for the conversation's structured events
(``event.kb_answer``, ``event.status``, ``event.handoff``, ``event.survey``, ...), and a contact's
``contact.merged`` / ``contact.merge_undone`` (bot.insights.identity).
"""
from __future__ import annotations

import asyncio
import json
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from .store.event_stream import as_dict
from .store.models import EventStreamEntry, utcnow
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

PUBLISH_BATCH = 200
IDLE_SECONDS = 1.0
RETRY_SECONDS = 5.0


class BrokerPublisher:
    """Publishes unpublished rows of the event stream to a RabbitMQ queue, oldest first."""

    def __init__(self, sessionmaker: async_sessionmaker, url: str, queue: str):
        self.sessionmaker = sessionmaker
        self.url = url
        self.queue = queue
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._connection = None
        self._channel = None
        self.published = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-stream publisher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._disconnect()

    def wake(self) -> None:
        self._wake.set()

    async def _connect(self):
        import aio_pika

        if self._channel is None or self._channel.is_closed:
            self._connection = await aio_pika.connect(self.url, timeout=10)
            self._channel = await self._connection.channel(publisher_confirms=True)
            await self._channel.declare_queue(self.queue, durable=True)
        return self._channel

    async def _disconnect(self) -> None:
        conn, self._connection, self._channel = self._connection, None, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def publish_pending(self) -> int:
        """Publish one batch; the number published (0: nothing was waiting)."""
        import aio_pika

        async with self.sessionmaker() as session:
            rows = (await session.execute(select(EventStreamEntry).where(EventStreamEntry.published_at.is_(None))
                                          .order_by(EventStreamEntry.id).limit(PUBLISH_BATCH))).scalars().all()
            events = [as_dict(e) for e in rows]
        if not events:
            return 0
        channel = await self._connect()
        done: list[int] = []
        try:
            for ev in events:
                await channel.default_exchange.publish(
                    aio_pika.Message(json.dumps(ev, ensure_ascii=False).encode(), content_type="application/json",
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=ev["event_id"],
                                     type=ev["type"]),
                    routing_key=self.queue)
                done.append(ev["id"])
        finally:
            if done:
                async with self.sessionmaker() as session:
                    await session.execute(update(EventStreamEntry).where(EventStreamEntry.id.in_(done))
                                          .values(published_at=utcnow()))
                    await session.commit()
                self.published += len(done)
        return len(done)

    async def _run(self) -> None:
        while True:
            try:
                n = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the rows wait; try again
                log.warning("event stream: publishing to the broker failed (%s); retrying in %.0f s",
                            type(exc).__name__, RETRY_SECONDS)
                await self._disconnect()
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if n < PUBLISH_BATCH:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
                except asyncio.TimeoutError:
                    pass


async def broker_ctx(app):
    """aiohttp cleanup context: the publisher runs while the gateway does (EVENT_BROKER_URL set)."""
    from . import keys

    settings = app[keys.SETTINGS]
    publisher = None
    if settings.event_broker_url:
        publisher = BrokerPublisher(app[keys.SESSIONMAKER], settings.event_broker_url, settings.event_broker_queue)
        await publisher.start()
    app[keys.EVENT_PUBLISHER] = publisher
    yield
    if publisher is not None:
        await publisher.stop()
