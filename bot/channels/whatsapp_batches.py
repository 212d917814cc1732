"""Meta's batched webhooks (a mixin of WhatsAppChannel, bot/channels/whatsapp.py).

Meta puts up to 1000 updates (customer messages and statuses) into one POST and wants the 200 fast
(its webhook guidance: a median under 250 ms); storing 1000 updates one by one takes tens of seconds
(24 s on SQLite on this project's 2-core machine, bench/whatsapp_batch.py), and Meta would time out and
send the batch again. A notification with more than INLINE_UPDATES updates is therefore
stored whole, verified, in one write (``inbound_batches``) before the 200, and split into messages and
statuses in the background, one batch at a time in arrival order; the row is deleted once everything
in it is stored. A batch that a stop or crash interrupted is processed again at the next start: that
is safe because processing is idempotent (messages are deduplicated on their wamid, statuses never go
backwards), also when another gateway replica started meanwhile and processes it at the same time.
Deleting a contact (bot/insights/privacy.py) also takes that customer's updates out of the batches still waiting
(``scrub_batches``) and records an erasure (``record_erasure``): an update the customer sent before the
deletion that arrives only afterwards (in a batch being split at that moment, or delivered again by
Meta) is not stored (``erased_after``)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta, timezone

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import Erasure, InboundBatch
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


# --- privacy: a deleted customer's updates leave the waiting batches -------------------------------

# where Meta's notification names the customer (phone number id, or the business-scoped user id)
CUSTOMER_FIELDS = {"contacts": ("wa_id", "user_id"), "messages": ("from", "from_user_id"),
                   "statuses": ("recipient_id", "recipient_user_id")}


def without_customers(body: dict, ids: set[str]) -> tuple[int, bool]:
    """Remove, in place, the contacts, messages and statuses of these customers from one notification:
    (the number of messages and statuses removed, whether anything was removed)."""
    removed, changed = 0, False
    for entry in body.get("entry") or [] if isinstance(body, dict) else []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            for key, fields in CUSTOMER_FIELDS.items():
                items = value.get(key)
                if not isinstance(items, list):
                    continue
                kept = [x for x in items if not (isinstance(x, dict) and any(str(x.get(f)) in ids for f in fields
                                                                              if x.get(f) is not None))]
                if len(kept) != len(items):
                    removed += (len(items) - len(kept)) if key != "contacts" else 0
                    value[key], changed = kept, True
    return removed, changed


async def scrub_batches(session: AsyncSession, ids: set[str]) -> int:
    """Take these customers' updates out of the WhatsApp batches not yet stored (in the caller's
    transaction); the number of updates removed."""
    ids = {i for i in ids if i}
    if not ids:
        return 0
    removed = 0
    for batch in (await session.execute(select(InboundBatch).where(InboundBatch.channel == NAME))).scalars():
        if not any(i in batch.body for i in ids):
            continue
        body = await parse_json(batch.body.encode("utf-8"))
        n, changed = without_customers(body, ids)
        if changed:
            batch.body = json.dumps(body, ensure_ascii=False)
            removed += n
    return removed


# --- privacy: updates sent before a deletion and delivered after it are not stored ----------------

ERASURE_DAYS = 7  # Meta delivers a webhook again for up to 7 days; erasures older than that are removed


def erasure_digest(key: str, customer_id: str) -> str:
    """The customer id under HMAC-SHA256 with the app secret: a phone number's hash alone could be
    reversed by trying every number."""
    return hmac.new(key.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


async def record_erasure(session: AsyncSession, key: str, ids: set[str], now: datetime | None = None) -> int:
    """Record (in the caller's transaction) that these customer ids were deleted now; drop erasures
    older than ERASURE_DAYS. The number of ids recorded (none without a key: no WhatsApp number)."""
    ids = {i for i in ids if i}
    if not key or not ids:
        return 0
    now = now or datetime.now(timezone.utc)
    await session.execute(delete(Erasure).where(Erasure.erased_at < now - timedelta(days=ERASURE_DAYS)))
    session.add_all([Erasure(channel=NAME, digest=erasure_digest(key, i), erased_at=now) for i in sorted(ids)])
    return len(ids)


async def erased_after(session: AsyncSession, key: str, ids: list[str | None], sent_at: int | None) -> bool:
    """Whether one of these customer ids was deleted after ``sent_at`` (Meta's timestamp of the update,
    Unix seconds): the update belongs to the deleted contact and must not be stored. An update without
    a timestamp counts as sent now."""
    digests = [erasure_digest(key, i) for i in {i for i in ids if i}] if key else []
    if not digests:
        return False
    latest = (await session.execute(select(Erasure.erased_at).where(
        Erasure.channel == NAME, Erasure.digest.in_(digests)).order_by(Erasure.erased_at.desc()).limit(1))).scalar()
    if latest is None:
        return False
    if latest.tzinfo is None:  # SQLite gives naive UTC
        latest = latest.replace(tzinfo=timezone.utc)
    sent = datetime.fromtimestamp(sent_at, timezone.utc) if sent_at else datetime.now(timezone.utc)
    return sent <= latest
