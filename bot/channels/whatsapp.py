"""The WhatsApp channel: Meta's WhatsApp Cloud API, inbound webhooks and outbound Graph API calls.

Inbound (``/webhooks/whatsapp/webhook``)
  GET   the verification handshake: ``hub.mode=subscribe`` with the configured verify token is
        answered with ``hub.challenge`` (text/plain); anything else 403.
  POST  every notification, signed by Meta: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
        raw body with the app secret>`` (Meta signs its escaped-unicode JSON: the raw bytes are
        checked, never a re-serialisation). Missing 401, mismatch 403 (checked before the body is
        parsed), non-JSON 400, over WHATSAPP_WEBHOOK_MAX_BYTES 413 (this route's own limit: Meta
        batches up to 1000 updates in one POST). Customer messages are stored (deduplicated on their
        ``wamid``, also across restarts) *before* the 200 is sent, and answered in tracked
        background tasks (bounded concurrency, one at a time per customer, in order); a batch of more
        than a few updates is stored whole before the 200 and split in the background
        (whatsapp_batches.py). Statuses (sent, delivered, read, failed) are recorded on the outbound
        message; they never go backwards. An accepted message a crash left unanswered is answered at
        the next start. Reactions are not answered, but open the 24-hour window.

Outbound (``POST {base}/{version}/{phone_number_id}/messages``, Bearer token; whatsapp_send.py)
  Text (split at paragraph, line, sentence or word boundaries above 4096 characters), the bot's
  buttons as reply buttons (up to 3; titles shortened to 20 characters; ids unique within the
  message) or as a list (4 to 10 rows in one titled section; whatsapp_render.py), mark-as-read with a
  typing indicator while the bot works on an answer (not in a conversation a person has). Rate limits
  are waited out as Meta advises, until WHATSAPP_RATE_LIMIT_RETRY_SECONDS: 131056 (pair rate limit)
  after 4^X seconds, then the customer's next messages 6 s apart; throughput limits (429, 130429,
  ...) with doubling waits. 5xx, timeouts and dropped connections are retried 3 times with
  exponential backoff; other 4xx are final. Every send carries ``biz_opaque_callback_data``
  (the message's id and part), which Meta echoes in status webhooks: before retrying a send whose
  outcome is unknown (timeout, dropped connection, 5xx), the channel waits briefly and checks
  whether a status for it arrived, so an accepted message is not sent twice.

  Free-form messages are only possible within 24 hours of the customer's last message (or
  reaction): outside that window nothing is sent and the message is marked
  ``delivery_status = "failed"`` with ``meta.error = "outside_24h_window"``. When Meta refuses a
  message with 131047 (in its answer or in a failed status), the same is recorded, and nothing more
  is sent to the customer until they write again.

Message states (``Message.delivery_status``)
  inbound:  "received" (stored, not answered yet) -> "processed"
  outbound: NULL (not sent yet) -> "sent" -> "delivered" -> "read", or "failed" (``meta.error``
            names the kind, ``meta.error_detail`` holds the Graph error). The WhatsApp id of an
            outbound message is its ``platform_message_id`` (of the last part when it was split;
            every part's id is in ``meta.wa_parts``).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time

import aiohttp
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from .. import keys
from ..i18n import t
from ..payloads import button_title
from ..deferred import DEFERRED
from ..messages import Accepted, AssistantUnavailable, InboundMessage, Recipient, Reply, RouteResult
from ..store import repository as repo
from ..store.models import Contact, Conversation, Message
from ..tasks import KeyedLocks, SpawnsTasks
from .base import Channel

from .whatsapp_api import (
    BACKOFF_SECONDS,
    GraphClient,
    INBOUND_PROCESSED, INBOUND_RATE_LIMITED,
    INBOUND_RECEIVED,
    MAX_CONCURRENT_CONVERSATIONS,
    NAME,
    READ_TIMEOUT,
    RECOVERY_WAIT_FOR_RASA_SECONDS,
    STOP_TIMEOUT_SECONDS,
    WEBHOOK_PATH,
    WaMessage,
    _int,
    country_language,
    parse_notification,
    verify_signature,
)
from .whatsapp_batches import INLINE_UPDATES, WebhookBatches, erased_after, parse_json, read_body
from .whatsapp_render import payload_for_reply
from .whatsapp_send import WhatsAppSending

log = logging.getLogger(__name__)


# --- the channel ----------------------------------------------------------------------------

class WhatsAppChannel(WhatsAppSending, WebhookBatches, SpawnsTasks, Channel):
    _task_label = "whatsapp"
    name = NAME

    @classmethod
    def enabled(cls, settings) -> bool:
        return settings.whatsapp is not None

    def __init__(self, app: web.Application):
        super().__init__(app)
        self.settings = app[keys.SETTINGS].whatsapp
        self.http: aiohttp.ClientSession | None = None
        self.api: GraphClient | None = None
        self._tasks: set[asyncio.Task] = set()
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_CONVERSATIONS)
        self._customer_locks = KeyedLocks()
        self._message_locks = KeyedLocks()
        self._scheduled: set[str] = set()  # inbound message ids queued or being processed
        self._pair_pacing: dict[str, tuple[float, float]] = {}  # whatsapp_send.py
        self._batch_lock = asyncio.Lock()  # whatsapp_batches.py: one batch at a time, in order
        self._again: set[str] = set()  # scheduled while being processed: looked at once more afterwards
        self._stopping = False

    # lifecycle

    def routes(self) -> list[web.RouteDef]:
        return [web.get(WEBHOOK_PATH, self.verify), web.post(WEBHOOK_PATH, self.webhook),
                web.get("/webhooks/whatsapp/", self.health)]

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50))
        self.api = GraphClient(self.settings, self.http)
        self._stopping = False
        self._spawn(self._recover())

    async def stop(self) -> None:
        """Let work in flight finish (up to STOP_TIMEOUT_SECONDS); what is cancelled stays stored as
        "received" and is answered at the next start."""
        self._stopping = True
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        pending = set(self._tasks)
        if pending:
            log.warning("whatsapp: %d task(s) still in progress at shutdown; unanswered messages are answered "
                        "at the next start", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
            self.http = None


    @property
    def sessionmaker(self):
        return self.app[keys.SESSIONMAKER]

    # HTTP handlers

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query
        mode, token, challenge = q.get("hub.mode"), q.get("hub.verify_token", ""), q.get("hub.challenge")
        if mode == "subscribe" and challenge is not None and hmac.compare_digest(
                token.encode(), self.settings.verify_token.encode()):
            return web.Response(text=challenge, content_type="text/plain")
        return web.Response(status=403, text="verification failed", content_type="text/plain")

    async def webhook(self, request: web.Request) -> web.Response:
        signature = request.headers.get("X-Hub-Signature-256")
        if not signature:
            return web.json_response({"error": "missing X-Hub-Signature-256"}, status=401)
        raw = await read_body(request, self.settings.webhook_max_bytes)
        if raw is None:
            return web.json_response({"error": f"the body is larger than {self.settings.webhook_max_bytes} bytes "
                                               "(WHATSAPP_WEBHOOK_MAX_BYTES)"}, status=413)
        if not verify_signature(self.settings.app_secret, raw, signature):
            return web.json_response({"error": "invalid signature"}, status=403)
        try:
            body = await parse_json(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return web.json_response({"error": "the body is not valid JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            messages, statuses = parse_notification(body, self.settings.phone_number_id)
        except Exception:  # noqa: BLE001 - a shape we do not understand: nothing to store
            log.exception("whatsapp: could not parse a notification; acknowledged and ignored")
            return web.Response(text="OK", content_type="text/plain")
        try:
            if len(messages) + len(statuses) > INLINE_UPDATES:
                await self._accept_batch(raw)
            else:
                await self._store_updates(messages, statuses)
        except Exception:  # noqa: BLE001 - not stored: let Meta deliver it again
            log.exception("whatsapp: could not store a notification")
            return web.json_response({"error": "temporarily unable to store the notification"}, status=500)
        return web.Response(text="OK", content_type="text/plain")

    async def _store_updates(self, messages: list[WaMessage], statuses: list[dict]) -> None:
        for st in statuses:
            await self._on_status(st)
        for m in messages:
            await (self._on_activity(m) if m.window_only else self._on_message(m))

    # inbound messages

    async def _on_message(self, m: WaMessage) -> None:
        """Store the customer's message (deduplicated on its wamid); answer it in the background."""
        async with self.sessionmaker() as session:
            existing = await repo.find_message_by_platform_id(session, NAME, m.wamid)
            if existing is not None:
                log.info("whatsapp: duplicate delivery of %s ignored", m.wamid)
                return
            if await self._sent_before_erasure(session, m):
                return
            await self._update_contact(session, m)
            text, meta = m.text, dict(m.meta)
            if m.reply_id:
                buttons = None
                if m.context_id:
                    ctx = await repo.find_message_by_platform_id(session, NAME, m.context_id)
                    buttons = ctx.buttons if ctx is not None else None
                text = payload_for_reply(m.reply_id, m.reply_title, buttons)
                # the button's whole title (WhatsApp shortens what it shows to 20 characters)
                meta["title"] = button_title(buttons, text) or m.reply_title
            elif m.meta.get("wa_reply_type") == "template_button":
                meta["title"] = m.meta.get("reply_title")
        max_chars = self.app[keys.SETTINGS].max_message_chars
        if len(text) > max_chars:
            text, meta["truncated"] = text[:max_chars], True
        if m.unsupported:
            meta["unsupported"] = True
        inbound = InboundMessage(channel=NAME, source_id=m.source_id, text=text, platform_message_id=m.wamid,
                                 language_hint=country_language(m.wa_id) if m.unsupported else None,
                                 profile_name=m.name, metadata={k: v for k, v in meta.items() if v is not None})
        accepted = await self.app[keys.ROUTER].accept(inbound, inbound_status=INBOUND_RECEIVED)
        if isinstance(accepted, RouteResult):
            log.info("whatsapp: duplicate delivery of %s ignored", m.wamid)
            return
        if await self._over_limit(accepted, m.source_id):
            return
        self._schedule(accepted.message_id)

    async def _sent_before_erasure(self, session, m: WaMessage) -> bool:
        """The customer's contact was deleted after Meta took this update (bot/insights/privacy.py): not stored."""
        if not await erased_after(session, self.settings.app_secret, [m.source_id, m.wa_id, m.user_id], m.timestamp):
            return False
        log.info("whatsapp: %s %s was sent before its contact was deleted; not stored", m.type, m.wamid)
        return True

    async def _update_contact(self, session, m: WaMessage, activity_at: int | None = None) -> Contact:
        """The customer's contact with both ids and what Meta tells about them (committed);
        ``activity_at``: a reaction's time, which opens the 24-hour window."""
        for attempt in range(2):
            try:
                contact = await repo.ensure_identities(session, NAME, [m.source_id, m.wa_id], name=m.name)
                attrs = dict(contact.attributes or {})
                wa = {k: v for k, v in {**(attrs.get("whatsapp") or {}), "wa_id": m.wa_id, "user_id": m.user_id,
                                        "profile_name": m.name, "username": m.username}.items() if v}
                if activity_at and activity_at > (_int(wa.get("last_activity_at")) or 0):
                    wa["last_activity_at"] = activity_at
                if wa != attrs.get("whatsapp"):
                    contact.attributes = {**attrs, "whatsapp": wa}
                if m.wa_id and not contact.phone:
                    contact.phone = "+" + m.wa_id[:39]
                await session.commit()
                return contact
            except IntegrityError:  # the same new customer arrived twice at once
                await session.rollback()
                if attempt:
                    raise

    async def _on_activity(self, m: WaMessage) -> None:
        """A reaction: nothing to answer and no message of the conversation, but the customer wrote."""
        async with self.sessionmaker() as session:
            if await self._sent_before_erasure(session, m):
                return
            await self._update_contact(session, m, activity_at=m.timestamp or int(time.time()))
        log.info("whatsapp: %s %s from %s recorded (opens the 24-hour window)", m.type, m.wamid, m.source_id)

    async def _over_limit(self, accepted: Accepted, source_id: str) -> bool:
        """RATE_LIMIT_WHATSAPP_PER_MINUTE: a number sending faster is not answered by the bot. Its
        messages are stored (status rate_limited, an agent sees them) and it is told once per minute,
        in its language, to slow down."""
        limit = self.app[keys.SETTINGS].rate_limit_whatsapp_per_minute
        if not limit:
            return False
        from ..ratelimit import LIMITER

        limiter = self.app[LIMITER]
        if not await limiter.hit("whatsapp-number", source_id, limit):
            return False
        async with self.sessionmaker() as session:
            await repo.set_message_status(session, accepted.message_id, INBOUND_RATE_LIMITED)
            await session.commit()
        log.info("whatsapp: a number is over %d messages a minute; message %s stored, not answered",
                 limit, accepted.message_id)
        if not await limiter.hit("whatsapp-number-notice", source_id, 1):
            self._spawn(self.deliver(Recipient(accepted.conversation_id, source_id, accepted.language),
                                     [Reply(t("rate_limited", accepted.language))], sender_type="system"))
        return True

    def _schedule(self, message_public_id: str) -> None:
        if message_public_id in self._scheduled:
            # e.g. bot.deferred took a deferred message up again while its first attempt still
            # finishes: that attempt will not answer it, so it is looked at once more afterwards
            self._again.add(message_public_id)
            return
        self._scheduled.add(message_public_id)
        self._spawn(self._process(message_public_id))

    async def resume_deferred(self, message_public_id: str) -> None:
        """bot.deferred: the assistant is back; answer this message (claimed as received)."""
        self._schedule(message_public_id)

    async def _recover(self) -> None:
        """Store batches and answer messages accepted before a crash or restart but not answered."""
        await self._recover_batches()
        async with self.sessionmaker() as session:
            rows = await repo.inbound_with_status(session, NAME, INBOUND_RECEIVED)
        if not rows:
            return
        log.info("whatsapp: answering %d message(s) accepted before the restart", len(rows))
        deadline = time.monotonic() + RECOVERY_WAIT_FOR_RASA_SECONDS
        while not self._stopping and time.monotonic() < deadline:
            ok, _ = await self.app[keys.RASA].ready()
            if ok:
                break
            await asyncio.sleep(1.0)
        for row in rows:
            if not self._stopping:
                self._schedule(row.public_id)

    async def _process(self, message_public_id: str) -> None:
        """Answer one stored customer message: one at a time per customer (in order), at most
        MAX_CONCURRENT_CONVERSATIONS customers at once."""
        try:
            async with self.sessionmaker() as session:
                row = await repo.find_message_by_public_id(session, message_public_id)
                if row is None:
                    return
                conv = await session.get(Conversation, row.conversation_id)
            async with self._customer_locks(str(conv.contact_id)):
                async with self._semaphore:
                    async with self.sessionmaker() as session:
                        row = await repo.find_message_by_public_id(session, message_public_id)
                        if row.delivery_status != INBOUND_RECEIVED:
                            return
                        conv = await session.get(Conversation, row.conversation_id)
                        contact = await session.get(Contact, conv.contact_id)
                    meta = row.meta or {}
                    await self._answer(row, conv, contact, meta.get("user_id") or meta.get("wa_id"))
        finally:
            self._scheduled.discard(message_public_id)
            if message_public_id in self._again:
                self._again.discard(message_public_id)
                if not self._stopping:  # (else the next start's recovery answers it)
                    self._schedule(message_public_id)  # does nothing unless the message is still 'received'

    async def _answer(self, row: Message, conv: Conversation, contact: Contact, source_id: str) -> None:
        meta = row.meta or {}
        # Blue ticks and "typing..." only when the bot is about to answer: in a conversation a person
        # has (or is queued for), the customer would see "typing" from nobody.
        bot_answers = conv.status not in ("pending", "open")
        reading = self._spawn(self._mark_read(row.platform_message_id)) \
            if row.platform_message_id and bot_answers else None
        async with self.sessionmaker() as session:
            earlier = await repo.replies_to(session, row)
        told_to_wait = any((m.meta or {}).get("gateway_text") == "assistant_unavailable" for m in earlier)
        already = [m for m in earlier if (m.meta or {}).get("gateway_text") != "assistant_unavailable"]
        deferred = False
        if not already:  # (after a restart the replies may already be stored)
            if meta.get("unsupported"):
                if conv.status not in ("pending", "open"):
                    await self._store_reply(row, conv, "unsupported_message")
            else:
                msg = InboundMessage(channel=NAME, source_id=source_id, text=row.text or "",
                                     platform_message_id=row.platform_message_id, language_hint=meta.get("hint"),
                                     metadata=meta)
                accepted = Accepted(msg, conv.id, conv.public_id, contact.public_id, row.public_id, conv.status,
                                    conv.language)
                try:
                    await self.app[keys.ROUTER].process(accepted)
                except AssistantUnavailable:
                    await self._defer(row, conv, notify=not told_to_wait)
                    deferred = True
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conv.id)
            pending = [m for m in await repo.replies_to(session, row) if m.delivery_status in (None, "pending")]
        if pending:
            await self._send_messages(conv, contact, pending, conv.language)
        if not deferred:  # (a deferred one may already be taken up again by bot.deferred)
            async with self.sessionmaker() as session:
                m = await session.get(Message, row.id)
                m.delivery_status = INBOUND_PROCESSED
                await session.commit()
        if reading is not None and not reading.done():
            await asyncio.wait([reading], timeout=1.0)

    async def _store_reply(self, row: Message, conv: Conversation, text_key: str, mark_as: str | None = None) -> None:
        """Store a gateway text (bot/i18n.py) as the reply to ``row``; the caller sends it. With
        ``mark_as`` the customer's message gets that status in the same transaction."""
        async with self.sessionmaker() as session:
            if text_key:
                c = await session.get(Conversation, conv.id)
                repo.add_message(session, c, direction="out", sender_type="bot", text=t(text_key, c.language),
                                 meta={"in_reply_to": row.public_id, "gateway_text": text_key})
            if mark_as is not None:
                await repo.set_message_status(session, row.public_id, mark_as)
            await session.commit()

    async def _defer(self, row: Message, conv: Conversation, notify: bool) -> None:
        """The assistant is unavailable: the message is answered when it is back (bot.deferred). It
        is stored as deferred before the customer is told "we'll get back to you" (``notify``: once,
        not at every retry), so the promise is durable once made: any replica's bot.deferred finds
        it, even if this gateway stops for good right after sending the notice."""
        await self._store_reply(row, conv, "assistant_unavailable" if notify else "", mark_as=DEFERRED)

    async def _mark_read(self, wamid: str) -> None:
        """Blue ticks and "typing..." while the bot works (best effort: one retry, short timeout)."""
        payload = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid,
                   "typing_indicator": {"type": "text"}}
        for attempt in range(2):
            res = await self.api.post(payload, timeout=READ_TIMEOUT)
            if res.ok or not res.retryable:
                if not res.ok:
                    log.info("whatsapp: mark-as-read of %s failed: %s", wamid, res.error)
                return
            await asyncio.sleep(BACKOFF_SECONDS)
