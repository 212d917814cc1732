"""The outgoing webhook: conversation events POSTed to OUTGOING_WEBHOOK_URL, signed.

Events are written to the ``webhook_outbox`` table in the transaction of the change they report
(``enqueue``), and a background task of the gateway sends them (``WebhookSender``): a request never
waits for the receiver, and a restart loses nothing (unsent events are sent after it).

Each POST carries the JSON body (UTF-8) and
  X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with OUTGOING_WEBHOOK_SECRET>
  X-Webhook-Timestamp: <unix seconds of this attempt>   (also in the signed body as "sent_at")
  X-Webhook-Id: <event id>   X-Webhook-Event: <event name>
A 2xx answer delivers the event; anything else (or no answer in 10 s) is retried with exponential
backoff (2 s, 4 s, 8 s ... at most 10 minutes apart) up to MAX_ATTEMPTS times, then the event is
marked failed. Receivers should check the signature with a constant-time comparison, refuse a
``sent_at`` older than a few minutes, and ignore an ``id`` they have seen (a retry after a lost
answer sends the same event again).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from datetime import datetime, timedelta, timezone

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import WebhookOutbox

log = logging.getLogger(__name__)

EVENTS = ("conversation.handed_off", "conversation.assigned", "conversation.handed_back", "conversation.resolved")
MAX_ATTEMPTS = 10
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
LEASE_SECONDS = 30.0  # a row being sent is leased, so two gateways never send it at once
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
POLL_SECONDS = 2.0
BATCH = 20


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does (the tests' receiver uses it)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header)


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)) * random.uniform(0.9, 1.1)


def enqueue(session: AsyncSession, url: str, event: str, payload: dict) -> WebhookOutbox | None:
    """Add an event to the outbox (in the caller's transaction); nothing when no URL is set."""
    if not url:
        return None
    assert event in EVENTS, event
    row = WebhookOutbox(event=event, payload=payload, attempts=0, next_attempt_at=utcnow())
    session.add(row)
    return row


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class WebhookSender:
    def __init__(self, sessionmaker: async_sessionmaker, url: str, secret: str):
        self.sessionmaker = sessionmaker
        self.url = url
        self.secret = secret
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if not self.enabled:
            return
        self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        self._task = asyncio.create_task(self._run(), name="outgoing-webhook")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the worker alive (the database may be busy)
                log.exception("outgoing webhook: sending failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass

    async def send_due(self) -> int:
        """Send what is due; returns how many were attempted."""
        now = utcnow()
        async with self.sessionmaker() as session:
            rows = (await session.execute(
                select(WebhookOutbox).where(WebhookOutbox.delivered_at.is_(None), WebhookOutbox.failed_at.is_(None),
                                            WebhookOutbox.next_attempt_at <= now)
                .order_by(WebhookOutbox.id).limit(BATCH)
            )).scalars().all()
            leased = []
            for row in rows:
                res = await session.execute(
                    update(WebhookOutbox).where(WebhookOutbox.id == row.id,
                                                WebhookOutbox.next_attempt_at == row.next_attempt_at,
                                                WebhookOutbox.delivered_at.is_(None))
                    .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS))
                    .execution_options(synchronize_session=False))
                if res.rowcount == 1:
                    leased.append((row.id, row.event_id, row.event, dict(row.payload), row.attempts, row.created_at))
            await session.commit()
        for row_id, event_id, event, payload, attempts, created_at in leased:
            if self._stopping:
                break
            await self._attempt(row_id, event_id, event, payload, attempts + 1, created_at)
        return len(leased)

    async def _attempt(self, row_id: int, event_id: str, event: str, payload: dict, attempt: int,
                       created_at: datetime) -> None:
        sent_at = utcnow()
        body = json.dumps({"id": event_id, "event": event, "created_at": _iso(created_at), "sent_at": _iso(sent_at),
                           "attempt": attempt, **payload}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "selfservice-assistant-webhook/1",
                   "X-Signature-256": sign(self.secret, body), "X-Webhook-Timestamp": str(int(sent_at.timestamp())),
                   "X-Webhook-Id": event_id, "X-Webhook-Event": event}
        error: str | None = None
        try:
            assert self._http is not None
            async with self._http.post(self.url, data=body, headers=headers) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        values: dict = {"attempts": attempt}
        if error is None:
            values["delivered_at"] = utcnow()
        elif attempt >= MAX_ATTEMPTS:
            values.update(failed_at=utcnow(), last_error=error)
            log.warning("outgoing webhook: giving up on %s %s after %d attempts: %s", event, event_id, attempt, error)
        else:
            values.update(next_attempt_at=utcnow() + timedelta(seconds=backoff(attempt)), last_error=error)
            log.info("outgoing webhook: %s %s attempt %d failed (%s); retrying", event, event_id, attempt, error)
        async with self.sessionmaker() as session:
            await session.execute(update(WebhookOutbox).where(WebhookOutbox.id == row_id).values(**values))
            await session.commit()
