"""The WhatsApp channel's outbound side (a mixin of WhatsAppChannel, bot/channels/whatsapp.py):
sending stored replies through the Graph API within the 24-hour window, with retries that never send
twice, and recording each message's outcome (also as Meta's status webhooks tell it). See
whatsapp.py's docstring for the whole contract."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timezone

from sqlalchemy import select

from ..messages import DeliveryResult, Recipient, Reply
from ..store import repository as repo
from ..store.models import Contact, Conversation, Message

from .whatsapp_api import (
    ApiResult,
    BACKOFF_SECONDS,
    BATCH_FATAL_KINDS,
    CODE_PAIR_RATE_LIMIT,
    CONFIRM_GRACE_SECONDS,
    MAX_SEND_ATTEMPTS,
    MAX_THROUGHPUT_WAIT_SECONDS,
    NAME,
    PAIR_PACING_SECONDS,
    PAIR_RATE_SECONDS,
    RATE_LIMIT_BACKOFF_SECONDS,
    SERVICE_WINDOW,
    _BSUID,
    _int,
    _str,
    classify,
)
from .whatsapp_render import render

log = logging.getLogger(__name__)


class WhatsAppSending:
    """Needs from the channel: app, api, settings, sessionmaker, _customer_locks, _message_locks,
    _stopping and _pair_pacing (recipient -> (pacing until, last send), monotonic seconds)."""

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
        """Within 24 hours of the customer's last message: a stored one, or a reaction (recorded on the
        contact), unless Meta said the window is closed (131047) after it."""
        async with self.sessionmaker() as session:
            rows = await repo.recent_inbound(session, contact.id, NAME)
            fresh = await session.get(Contact, contact.id, populate_existing=True)
        wa = ((fresh or contact).attributes or {}).get("whatsapp") or {}
        times = [_int((r.meta or {}).get("wa_timestamp")) or _epoch(r.created_at) for r in rows]
        times.append(_int(wa.get("last_activity_at")))
        last = max((ts for ts in times if ts), default=None)
        if last is None:
            return False
        closed = _int(wa.get("window_closed_at"))
        if closed is not None and closed > last:  # (a message in the same second may have reopened it)
            return False
        return datetime.now(timezone.utc) - datetime.fromtimestamp(last, timezone.utc) < SERVICE_WINDOW

    async def _note_window_closed(self, contact_id: int, at: int) -> None:
        """Meta refused a message with 131047: nothing more is sent until the customer writes again."""
        async with self.sessionmaker() as session:
            contact = await session.get(Contact, contact_id)
            if contact is None:
                return
            attrs = dict(contact.attributes or {})
            wa = dict(attrs.get("whatsapp") or {})
            if (_int(wa.get("window_closed_at")) or 0) < at:
                contact.attributes = {**attrs, "whatsapp": {**wa, "window_closed_at": at}}
                await session.commit()

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
                if kind == "outside_24h_window":
                    await self._note_window_closed(contact.id, int(time.time()))
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
        """Send one part. Rate limits are waited out as Meta advises until rate_limit_retry_seconds have
        passed (a message Meta would still accept is not marked failed); other retryable errors are
        tried MAX_SEND_ATTEMPTS times."""
        recipient = payload.get("to") or payload.get("recipient") or ""
        give_up_at = time.monotonic() + self.settings.rate_limit_retry_seconds
        delay = BACKOFF_SECONDS
        other_failures = pair_refusals = throughput_refusals = 0
        attempt = 0
        while True:
            attempt += 1
            await self._pace(recipient)
            res = await self.api.post(payload)
            res.attempts = attempt
            if res.ok:
                self._sent_to(recipient)
                if not res.wamid:
                    res.wamid = await self._wamid_from_webhook(row, part)
                return res
            if not res.retryable:
                return res
            if res.code == CODE_PAIR_RATE_LIMIT:
                wait = RATE_LIMIT_BACKOFF_SECONDS * 4 ** pair_refusals
                pair_refusals += 1
                self._start_pacing(recipient)
            elif res.kind == "rate_limited":
                wait = min(RATE_LIMIT_BACKOFF_SECONDS * 2 ** throughput_refusals, MAX_THROUGHPUT_WAIT_SECONDS)
                throughput_refusals += 1
            else:
                other_failures += 1
                if other_failures == MAX_SEND_ATTEMPTS or self._stopping and attempt > 1:
                    return res
                wait = delay * (1 + random.random() * 0.25)
                delay *= 2
            if res.kind in ("pair_rate_limited", "rate_limited") and time.monotonic() + wait > give_up_at:
                log.warning("whatsapp: %s (part %d) still refused (%s) after %d attempts; given up", row.public_id,
                            part, res.kind, attempt)
                return res
            if res.ambiguous:
                wait = max(wait, CONFIRM_GRACE_SECONDS)
            log.info("whatsapp: sending %s (part %d) failed (%s, attempt %d); retrying in %.2f s", row.public_id,
                     part, res.kind, attempt, wait)
            if res.ambiguous:
                # It may have gone through: Meta then sends a status echoing our callback data.
                wamid = await self._wait_for_status(row, part, wait)
                if wamid:  # it went through after all: do not send it again
                    log.info("whatsapp: %s (part %d) was accepted despite the %s", row.public_id, part, res.kind)
                    return ApiResult(True, 200, None, wamid=wamid, confirmed_by_webhook=True, attempts=attempt)
            else:
                await asyncio.sleep(wait)

    # Meta's pair rate limit: after a 131056 the customer's next messages go out PAIR_RATE_SECONDS apart.

    async def _pace(self, recipient: str) -> None:
        paced = self._pair_pacing.get(recipient)
        if paced is None:
            return
        until, last_sent = paced
        now = time.monotonic()
        if now > until:
            self._pair_pacing.pop(recipient, None)
        elif last_sent + PAIR_RATE_SECONDS > now:
            await asyncio.sleep(last_sent + PAIR_RATE_SECONDS - now)

    def _start_pacing(self, recipient: str) -> None:
        now = time.monotonic()
        if len(self._pair_pacing) > 10_000:
            for key in [k for k, (until, _) in self._pair_pacing.items() if until < now]:
                del self._pair_pacing[key]
        # the refused message itself is retried after 4^X seconds; the pacing starts with the next one
        last_sent = self._pair_pacing.get(recipient, (0.0, now - PAIR_RATE_SECONDS))[1]
        self._pair_pacing[recipient] = (now + PAIR_PACING_SECONDS, last_sent)

    def _sent_to(self, recipient: str) -> None:
        paced = self._pair_pacing.get(recipient)
        if paced is not None:
            self._pair_pacing[recipient] = (paced[0], time.monotonic())

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

    # statuses (Meta's status webhooks on what was sent)

    async def _on_status(self, st: dict) -> None:
        wamid, status = _str(st.get("id")), _str(st.get("status"))
        if not wamid or status not in ("sent", "delivered", "read", "failed"):
            return
        callback = _str(st.get("biz_opaque_callback_data")) or ""
        part = None
        async with self.sessionmaker() as session:
            row = await repo.find_message_by_platform_id(session, NAME, wamid)
            if row is not None and row.direction != "out":
                return
            if row is None and callback.startswith("m:"):
                public_id, _, part_s = callback[2:].partition(":")
                row = await repo.find_message_by_public_id(session, public_id)
                part = _int(part_s)
                if row is not None and (row.direction != "out" or row.channel != NAME):
                    row = None
            if row is None:
                row = await repo.find_outbound_by_meta_text(session, NAME, f'"{wamid}"')
            if row is None:
                log.info("whatsapp: status %s for unknown message %s", status, wamid)
                return
            async with self._message_locks(row.public_id):
                fresh = await session.get(Message, row.id, populate_existing=True)
                meta = fresh.meta or {}
                history = dict(meta.get("wa_statuses") or {})
                history.setdefault(status, _int(st.get("timestamp")) or int(time.time()))
                updates: dict = {"wa_statuses": history}
                pid = None
                if part is not None:
                    parts = dict(meta.get("wa_parts") or {})
                    parts.setdefault(str(part), wamid)
                    updates["wa_parts"] = parts
                    count = _int(meta.get("wa_part_count"))
                    if count is None or part == count - 1:
                        pid = wamid
                if status == "failed":
                    errors = [e for e in st.get("errors") or [] if isinstance(e, dict)]
                    err = errors[0] if errors else {}
                    code = _int(err.get("code"))
                    kind, _, _ = classify(400, {"code": code}) if code is not None else ("failed", False, False)
                    updates["error"] = kind
                    updates["error_detail"] = {k: err[k] for k in ("code", "title", "message", "error_data", "href")
                                               if k in err}
                await repo.update_delivery(session, row.id, status, meta=updates, platform_message_id=pid)
            # Meta's 131047, told in a status: the window is closed (the read ends before another session writes)
            closed = await session.get(Conversation, row.conversation_id) \
                if updates.get("error") == "outside_24h_window" else None
            await session.commit()
        if closed is not None:
            await self._note_window_closed(closed.contact_id, _int(st.get("timestamp")) or int(time.time()))


def _epoch(at: datetime | None) -> int | None:
    if at is None:
        return None
    return int((at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp())
