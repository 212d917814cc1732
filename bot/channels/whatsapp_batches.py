"""Meta's batched webhooks (a mixin of WhatsAppChannel, bot/channels/whatsapp.py).

Meta puts up to 1000 updates (customer messages and statuses) into one POST and wants the 200 fast
(its webhook guidance: a median under 250 ms); storing 1000 updates one by one takes tens of seconds
(24 s on SQLite on this project's 2-core machine, bench/whatsapp_batch.py), and Meta would time out and
send the batch again. A notification with more than INLINE_UPDATES updates is therefore
stored whole, verified, in one write (``inbound_batches``) before the 200, and split into messages and
statuses in the background, one batch at a time in arrival order; the row is deleted once everything
in it is stored. A batch that a stop or crash interrupted is processed again at the next start: that
is safe because processing is idempotent (messages are deduplicated on their wamid, statuses never go
backwards), also when another gateway replica started meanwhile and processes it at the same time."""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from sqlalchemy import delete, select

from ..store.models import InboundBatch
from .whatsapp_api import NAME, parse_notification

log = logging.getLogger(__name__)

INLINE_UPDATES = 5  # a notification with more updates than this is stored whole and processed in the background
BATCH_ATTEMPTS = 5  # tries of a batch (with backoff) before it is left for the next start
PARSE_IN_THREAD_BYTES = 256 * 1024  # larger bodies are parsed off the event loop


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_json(raw: bytes):
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.get_running_loop().run_in_executor(None, _loads, raw)
    return _loads(raw)


def _loads(raw: bytes):
    return json.loads(raw.decode("utf-8"))


class WebhookBatches:
    """Needs from the channel: sessionmaker, settings, _spawn, _store_updates(messages, statuses) and
    _batch_lock (an asyncio.Lock)."""

    async def _accept_batch(self, raw: bytes) -> None:
        """Store the verified body in one write (raises if it cannot be stored: Meta delivers it again)
        and process it in the background."""
        async with self.sessionmaker() as session:
            batch = InboundBatch(channel=NAME, body=raw.decode("utf-8"))
            session.add(batch)
            await session.commit()
            batch_id = batch.id
        self._spawn(self._process_batch(batch_id))

    async def _process_batch(self, batch_id: int) -> None:
        async with self._batch_lock:
            for attempt in range(BATCH_ATTEMPTS):
                try:
                    async with self.sessionmaker() as session:
                        batch = await session.get(InboundBatch, batch_id)
                        if batch is None:  # done by another replica's start
                            return
                        body = await parse_json(batch.body.encode("utf-8"))
                    messages, statuses = parse_notification(body, self.settings.phone_number_id)
                    await self._store_updates(messages, statuses)
                    async with self.sessionmaker() as session:
                        await session.execute(delete(InboundBatch).where(InboundBatch.id == batch_id))
                        await session.commit()
                    log.info("whatsapp: batch %d stored (%d messages, %d statuses)", batch_id, len(messages),
                             len(statuses))
                    return
                except Exception:  # noqa: BLE001 - the store may be down: try again, keep the batch
                    log.exception("whatsapp: could not store batch %d (attempt %d)", batch_id, attempt + 1)
                    await asyncio.sleep(min(2.0 ** attempt, 30.0))
            log.error("whatsapp: batch %d not stored after %d attempts; it is kept and processed at the next "
                      "start", batch_id, BATCH_ATTEMPTS)

    async def _recover_batches(self) -> None:
        """Batches accepted before a stop or crash but not (completely) stored."""
        async with self.sessionmaker() as session:
            ids = list((await session.execute(
                select(InboundBatch.id).where(InboundBatch.channel == NAME).order_by(InboundBatch.id)
            )).scalars().all())
        if ids:
            log.info("whatsapp: storing %d batch(es) accepted before the restart", len(ids))
        for batch_id in ids:
            await self._process_batch(batch_id)
