"""Answering and delivery for the website widget (a part of WebchatChannel, bot/channels/webchat.py):
customer messages are answered one at a time per visitor (at most MAX_CONCURRENT_ANSWERS at once),
with a typing indicator while the bot works; every open socket of a visitor is brought up to date
from the database (its cursor: the last message it was sent), and ``deliver``/``typing`` reach the
visitor's sockets from elsewhere (the hand-off desk). The channel provides ``app``, ``sessionmaker``,
``_by_contact`` (contact pk -> open sockets), ``_busy``, ``_inflight``, ``_again``, ``_locks``, ``_semaphore``,
``_stopping`` and ``_spawn``."""
from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from .. import keys
from ..deferred import DEFERRED
from ..i18n import t
from ..messages import Accepted, AssistantUnavailable, DeliveryResult, InboundMessage, Recipient, Reply
from ..store import repository as repo
from ..store.models import Contact, Conversation, Message
from .webchat_frames import NAME, SYNC_PAGE, Conn, message_frame

log = logging.getLogger("bot.channels.webchat")


class WebchatDelivery:
    # answering

    def _schedule(self, accepted: Accepted, contact_pk: int) -> None:
        if accepted.message_id in self._inflight or self._stopping:
            return
        self._inflight.add(accepted.message_id)
        self._spawn(self._process(accepted, contact_pk))

    async def _resume_if_stuck(self, message_public_id: str) -> None:
        if message_public_id in self._inflight:
            # e.g. bot.deferred took a deferred message up again while its first attempt still
            # finishes: that attempt will not answer it, so it is looked at once more afterwards
            self._again.add(message_public_id)
            return
        async with self.sessionmaker() as session:
            m = await repo.find_message_by_public_id(session, message_public_id)
            if m is None or m.delivery_status != "received":
                return
            conv = await session.get(Conversation, m.conversation_id)
            contact = await session.get(Contact, conv.contact_id)
        self._schedule(self._accepted_from_row(m, conv, contact), contact.id)

    @staticmethod
    def _accepted_from_row(m: Message, conv: Conversation, contact: Contact) -> Accepted:
        meta = m.meta or {}
        visitor = (m.platform_message_id or "").split(":", 1)[0]
        inbound = InboundMessage(channel=NAME, source_id=visitor, text=m.text or "",
                                 platform_message_id=m.platform_message_id, language_hint=meta.get("hint"),
                                 verified_user_id=meta.get("user_id"))
        return Accepted(inbound, conv.id, conv.public_id, contact.public_id, m.public_id, conv.status, conv.language)

    async def _recover(self) -> None:
        async with self.sessionmaker() as session:
            rows = await repo.inbound_in_state(session, NAME, "received")
        if rows:
            log.info("webchat: answering %d message(s) left unanswered by the last stop", len(rows))
        for m, conv, contact in rows:
            self._schedule(self._accepted_from_row(m, conv, contact), contact.id)

    async def _process(self, accepted: Accepted, contact_pk: int) -> None:
        bot_turn = accepted.status not in ("pending", "open")
        self._busy[contact_pk] += 1
        try:
            if bot_turn:
                await self._broadcast(contact_pk, {"type": "typing", "on": True})
            async with self._semaphore, self._locks(contact_pk):
                status, notice = "processed", None
                try:
                    await self.app[keys.ROUTER].process(accepted)
                except AssistantUnavailable:
                    status, notice = DEFERRED, "assistant_unavailable"  # answered when it is back (bot.deferred)
                except Exception:  # noqa: BLE001 - the customer is told; the message is kept
                    log.exception("webchat: answering message %s failed", accepted.message_id)
                    notice = "assistant_unavailable"
                await self._conclude(accepted, status, notice)
        finally:
            self._inflight.discard(accepted.message_id)
            self._busy[contact_pk] -= 1
            still_busy = self._busy[contact_pk] > 0
            if not still_busy:
                del self._busy[contact_pk]
            await self._sync_contact(contact_pk)
            if bot_turn and not still_busy:
                await self._broadcast(contact_pk, {"type": "typing", "on": False})
            if accepted.message_id in self._again:
                self._again.discard(accepted.message_id)
                if not self._stopping:  # (else the next start's recovery answers it)
                    await self._resume_if_stuck(accepted.message_id)

    async def resume_deferred(self, message_public_id: str) -> None:
        """bot.deferred: the assistant is back; answer this message (claimed as received)."""
        await self._resume_if_stuck(message_public_id)

    async def _conclude(self, accepted: Accepted, status: str, notice: str | None) -> None:
        """Store the message's status and the notice for the customer (a gateway text, once per
        message) in one transaction: a message is deferred before "we'll get back to you" can reach
        a socket, so the promise is durable once made."""
        async with self.sessionmaker() as session:
            if notice:
                stored = await repo.find_message_by_public_id(session, accepted.message_id)
                told = stored is not None and any((r.meta or {}).get("text_key") == notice
                                                  for r in await repo.replies_to(session, stored))
                if not told:  # (a deferred message that failed again was told already)
                    conv = await session.get(Conversation, accepted.conversation_pk)
                    repo.add_message(session, conv, direction="out", sender_type="system",
                                     text=t(notice, conv.language),
                                     meta={"in_reply_to": accepted.message_id, "text_key": notice})
            await repo.set_message_status(session, accepted.message_id, status)
            await session.commit()

    # delivery

    async def _sync(self, conn: Conn) -> None:
        """Send the socket every message of its visitor it has not been sent yet, from the database."""
        if conn.contact_pk is None:
            return
        async with conn.sync_lock:
            while not conn.ws.closed:
                async with self.sessionmaker() as session:
                    rows = await repo.contact_messages(session, conn.contact_pk, NAME, after_id=conn.cursor,
                                                       limit=SYNC_PAGE)
                for m in rows:
                    if m.id <= conn.cursor:
                        continue
                    if not await conn.send(message_frame(m)):
                        return
                    conn.cursor = m.id
                if len(rows) < SYNC_PAGE:
                    return

    def _fanout(self):
        """bot.fanout: the visitor's sockets may be held by another gateway replica."""
        return self.app.get(keys.FANOUT)

    def _listen_to_other_replicas(self) -> None:
        """At start: another replica's syncs and frames reach the sockets held here."""
        fanout = self._fanout()
        if fanout is not None:
            fanout.on("webchat.sync", lambda p: self._sync_contact_here(int(p["contact_pk"])))
            fanout.on("webchat.frame", lambda p: self._broadcast_here(int(p["contact_pk"]), p["frame"]))

    async def _sync_contact(self, contact_pk: int) -> int:
        """Bring every socket of the contact up to date (here and, through the fan-out, elsewhere);
        the number of sockets reached on this replica."""
        fanout = self._fanout()
        if fanout is not None:
            fanout.send("webchat.sync", {"contact_pk": contact_pk})
        return await self._sync_contact_here(contact_pk)

    async def _sync_contact_here(self, contact_pk: int) -> int:
        conns = [c for c in self._by_contact.get(contact_pk, ()) if not c.ws.closed]
        await asyncio.gather(*(self._sync(c) for c in conns), return_exceptions=True)
        return len(conns)

    async def _broadcast(self, contact_pk: int, frame: dict) -> None:
        fanout = self._fanout()
        if fanout is not None:
            fanout.send("webchat.frame", {"contact_pk": contact_pk, "frame": frame})
        await self._broadcast_here(contact_pk, frame)

    async def _broadcast_here(self, contact_pk: int, frame: dict) -> None:
        conns = list(self._by_contact.get(contact_pk, ()))
        await asyncio.gather(*(c.send(frame) for c in conns), return_exceptions=True)

    async def typing(self, recipient: Recipient, on: bool) -> bool:
        """Show (or hide) that someone of the team is typing, on every open widget of the visitor."""
        async with self.sessionmaker() as session:
            conv = (await session.execute(
                select(Conversation).where(Conversation.public_id == recipient.conversation_id)
            )).scalar_one_or_none()
        if conv is None or conv.channel != NAME:
            return False
        conns = [c for c in self._by_contact.get(conv.contact_id, ()) if not c.ws.closed]
        await self._broadcast(conv.contact_id, {"type": "typing", "on": bool(on), "by": "agent"})
        return bool(conns)

    async def deliver(self, recipient: Recipient, replies: list[Reply], *, message_ids: list[str] | None = None,
                      sender_type: str = "agent") -> DeliveryResult:
        """Push messages to every open widget of the recipient's visitor (all tabs; for a verified user
        all browsers). Each reply is stored as an outbound message of the conversation (with
        ``sender_type``) unless ``message_ids`` names messages the caller stored already. With no
        widget open, ``delivered`` is False (error "offline"): the messages stay in the database and
        go out when the visitor's widget reconnects."""
        async with self.sessionmaker() as session:
            conv = (await session.execute(
                select(Conversation).where(Conversation.public_id == recipient.conversation_id)
            )).scalar_one_or_none()
            if conv is None or conv.channel != NAME:
                return DeliveryResult(False, [], "unknown_conversation")
            try:
                rows = await repo.messages_to_deliver(session, conv, replies, message_ids, sender_type)
            except repo.UnknownMessage:
                return DeliveryResult(False, [], "unknown_message")
            contact_pk = conv.contact_id
        ids = [r.public_id for r in rows]
        reached = await self._sync_contact(contact_pk)
        fanout = self._fanout()
        if not reached and not (fanout is not None and fanout.remote):  # (elsewhere: another replica's socket)
            return DeliveryResult(False, ids, "offline")
        return DeliveryResult(True, ids)
