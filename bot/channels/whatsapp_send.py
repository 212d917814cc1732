"""The WhatsApp channel's outbound side (a mixin of WhatsAppChannel, bot/channels/whatsapp.py):
sending stored replies through the Graph API within the 24-hour window, with retries that never send
twice, and recording each message's outcome. See whatsapp.py's docstring for the whole contract."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timezone

from sqlalchemy import select

from ..router import Reply
from ..store import repository as repo
from ..store.models import Contact, Conversation, Message
from .base import DeliveryResult, Recipient

from .whatsapp_api import (
    ApiResult,
    BACKOFF_SECONDS,
    BATCH_FATAL_KINDS,
    CODE_PAIR_RATE_LIMIT,
    CONFIRM_GRACE_SECONDS,
    MAX_SEND_ATTEMPTS,
    NAME,
    PAIR_RATE_LIMIT_BACKOFF_SECONDS,
    SERVICE_WINDOW,
    _BSUID,
    _int,
    render,
)

log = logging.getLogger(__name__)


class WhatsAppSending:
    """Needs from the channel: app, api, sessionmaker, _customer_locks, _message_locks, _stopping."""

    async def deliver(self, recipient: Recipient, replies: list[Reply], *, message_ids: list[str] | None = None,
                      sender_type: str = "agent") -> DeliveryResult:
        """Send replies to a WhatsApp customer outside a webhook (the agent inbox, late answers).

        Each reply is stored as an outbound message of the recipient's conversation (with
        ``sender_type``), unless ``message_ids`` names messages the caller stored already; the
        outcome is recorded on them (delivery_status, platform id, meta.error) and returned.
        """
        async with self.sessionmaker() as session:
            conv = (await session.execute(
                select(Conversation).where(Conversation.public_id == recipient.conversation_id)
            )).scalar_one_or_none()
            if conv is None or conv.channel != NAME:
                return DeliveryResult(False, [], "unknown_conversation")
            contact = await session.get(Contact, conv.contact_id)
            try:
                rows = await repo.messages_to_deliver(session, conv, replies, message_ids, sender_type)
            except repo.UnknownMessage:
                return DeliveryResult(False, [], "unknown_message")
        async with self._customer_locks(str(contact.id)):
            return await self._send_messages(conv, contact, rows, recipient.language or conv.language,
                                             source_id=recipient.source_id)

    def _address(self, contact: Contact, source_id: str | None) -> dict:
        wa = (contact.attributes or {}).get("whatsapp") or {}
        wa_id = wa.get("wa_id")
        if not wa_id and source_id and not _BSUID.match(source_id):
            wa_id = source_id
        if wa_id:
            return {"to": wa_id}
        return {"recipient": wa.get("user_id") or source_id}

    async def _window_open(self, contact: Contact) -> bool:
        async with self.sessionmaker() as session:
            rows = await repo.recent_inbound(session, contact.id, NAME)
        last = None
        for r in rows:
            ts = _int((r.meta or {}).get("wa_timestamp"))
            at = datetime.fromtimestamp(ts, timezone.utc) if ts else r.created_at
            if at is not None and at.tzinfo is None:
                at = at.replace(tzinfo=timezone.utc)
            if at is not None and (last is None or at > last):
                last = at
        return last is not None and datetime.now(timezone.utc) - last < SERVICE_WINDOW

    async def _send_messages(self, conv: Conversation, contact: Contact, rows: list[Message], lang: str | None,
                             source_id: str | None = None) -> DeliveryResult:
        address = self._address(contact, source_id)
        fatal: str | None = None if await self._window_open(contact) else "outside_24h_window"
        if fatal:
            log.info("whatsapp: not sending %d message(s) to %s: outside the 24-hour window", len(rows),
                     contact.public_id)
        ids: list[str] = []
        first_error: str | None = None
        for row in rows:
            if fatal:
                await self._record_failure(row, fatal, {"error": fatal, "error_detail": {
                    "message": "more than 24 hours have passed since the customer's last message"
                    if fatal == "outside_24h_window" else "an earlier message of this batch failed the same way"}})
                first_error = first_error or fatal
                continue
            ok, wamid, kind = await self._send_one(row, address, lang)
            if ok:
                ids.append(wamid)
            else:
                first_error = first_error or kind
                if kind in BATCH_FATAL_KINDS:
                    fatal = kind
        return DeliveryResult(first_error is None, ids, first_error)

    async def _record_failure(self, row: Message, kind: str, meta: dict) -> None:
        async with self._message_locks(row.public_id):
            async with self.sessionmaker() as session:
                await repo.update_delivery(session, row.id, "failed", meta=meta)

    async def _send_one(self, row: Message, address: dict, lang: str | None) -> tuple[bool, str | None, str | None]:
        parts = render(Reply.from_message(row), lang)
        if not parts:
            await self._record_failure(row, "nothing_to_send", {"error": "nothing_to_send", "error_detail": {
                "message": "the reply has neither text nor buttons WhatsApp can show"}})
            return False, None, "nothing_to_send"
        async with self._message_locks(row.public_id):
            async with self.sessionmaker() as session:
                fresh = await session.get(Message, row.id)
                done = dict((fresh.meta or {}).get("wa_parts") or {})
                await repo.update_delivery(session, row.id, None, meta={"wa_part_count": len(parts)})
        last_wamid = None
        for i, part in enumerate(parts):
            if str(i) in done:
                last_wamid = done[str(i)]
                continue
            payload = {"messaging_product": "whatsapp", "recipient_type": "individual", **address, **part,
                       "biz_opaque_callback_data": f"m:{row.public_id}:{i}"}
            res = await self._send_with_retries(row, i, payload)
            if not res.ok:
                log.warning("whatsapp: message %s (part %d) not sent: %s %s", row.public_id, i, res.kind, res.error)
                await self._record_failure(row, res.kind or "failed", res.error_meta())
                return False, None, res.kind or "failed"
            last_wamid = res.wamid
            async with self._message_locks(row.public_id):
                async with self.sessionmaker() as session:
                    fresh = await session.get(Message, row.id)
                    wa_parts = {**((fresh.meta or {}).get("wa_parts") or {}), str(i): res.wamid}
                    final = i == len(parts) - 1
                    await repo.update_delivery(session, row.id, "sent" if final else None,
                                               meta={"wa_parts": wa_parts, "attempts": res.attempts},
                                               platform_message_id=res.wamid if final else None)
        return True, last_wamid, None

    async def _send_with_retries(self, row: Message, part: int, payload: dict) -> ApiResult:
        delay = BACKOFF_SECONDS
        res = ApiResult(False, kind="not_attempted")
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            res = await self.api.post(payload)
            res.attempts = attempt
            if res.ok:
                if not res.wamid:
                    res.wamid = await self._wamid_from_webhook(row, part)
                return res
            if not res.retryable or attempt == MAX_SEND_ATTEMPTS or self._stopping and attempt > 1:
                return res
            wait = delay * (1 + random.random() * 0.25)
            if res.code == CODE_PAIR_RATE_LIMIT:
                wait = max(wait, PAIR_RATE_LIMIT_BACKOFF_SECONDS * attempt)
            if res.ambiguous:
                wait = max(wait, CONFIRM_GRACE_SECONDS)
            log.info("whatsapp: sending %s (part %d) failed (%s, attempt %d); retrying in %.1f s", row.public_id,
                     part, res.kind, attempt, wait)
            if res.ambiguous:
                # It may have gone through: Meta then sends a status echoing our callback data.
                wamid = await self._wait_for_status(row, part, wait)
                if wamid:  # it went through after all: do not send it again
                    log.info("whatsapp: %s (part %d) was accepted despite the %s", row.public_id, part, res.kind)
                    return ApiResult(True, 200, None, wamid=wamid, confirmed_by_webhook=True, attempts=attempt)
            else:
                await asyncio.sleep(wait)
            delay *= 2
        return res

    async def _wait_for_status(self, row: Message, part: int, seconds: float) -> str | None:
        deadline = time.monotonic() + seconds
        while True:
            wamid = await self._wamid_from_webhook(row, part)
            if wamid or time.monotonic() >= deadline:
                return wamid
            await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    async def _wamid_from_webhook(self, row: Message, part: int) -> str | None:
        async with self.sessionmaker() as session:
            fresh = await session.get(Message, row.id, populate_existing=True)
            return ((fresh.meta or {}).get("wa_parts") or {}).get(str(part)) if fresh else None
