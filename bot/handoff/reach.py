"""Reaching the customer from the hand-off desk (a mixin of Desk): the inbox's notices and replies
through the conversation's channel, and the agent's typing indicator."""
from __future__ import annotations

import inspect
import logging
import time

from sqlalchemy import select

from ..messages import Recipient, Reply
from ..store.models import ContactIdentity, Conversation, Message
from ..staff.actor import Actor
from .common import OPEN

TYPING_SECONDS = 6.0  # a typing indicator lasts this long unless renewed

log = logging.getLogger(__name__)


class ReachesCustomers:
    """Needs from the desk: sessionmaker, channels, hub, _typing, _conversation."""

    async def _recipient(self, conv: Conversation):
        async with self.sessionmaker() as session:
            source = (await session.execute(
                select(ContactIdentity.source_id).where(ContactIdentity.contact_id == conv.contact_id,
                                                        ContactIdentity.channel == conv.channel)
                .order_by(ContactIdentity.id.desc()).limit(1))).scalar_one_or_none()
        return Recipient(conv.public_id, source or "", conv.language)

    async def deliver(self, conv: Conversation, messages: list[Message]) -> None:
        """Through the conversation's channel (the REST channel cannot push: its clients poll
        GET /webhooks/rest/messages, which reads the stored messages)."""
        channel = self.channels.get(conv.channel)
        if channel is None:
            return
        recipient = await self._recipient(conv)
        replies = [Reply.from_message(m) for m in messages]
        try:
            if "message_ids" in inspect.signature(channel.deliver).parameters:
                result = await channel.deliver(recipient, replies, message_ids=[m.public_id for m in messages])
            else:
                result = await channel.deliver(recipient, replies)
        except Exception:  # noqa: BLE001 - the message is stored; the inbox shows its status
            log.exception("hand-off desk: delivering to %s conversation %s failed", conv.channel, conv.public_id)
            return
        if result is not None and not result.delivered:
            log.info("hand-off desk: %s conversation %s: not delivered now (%s)", conv.channel, conv.public_id,
                     result.error)
        async with self.sessionmaker() as session:
            rows = (await session.execute(select(Message).where(Message.id.in_([m.id for m in messages])))).scalars().all()
            for m in rows:
                self.hub.publish({"type": "delivery", "conversation_id": conv.public_id, "message_id": m.public_id,
                                  "delivery_status": m.delivery_status,
                                  "delivered": bool(result and result.delivered),
                                  "error": result.error if result else None})

    async def typing(self, conversation_id: str, agent: Actor, on: bool) -> bool:
        """The agent is typing: shown to the customer where the channel can (REST: the poll answer)."""
        async with self.sessionmaker() as session:
            conv = await self._conversation(session, conversation_id)
        if conv.status != OPEN or conv.assignee_id != agent.id:
            return False
        if on:
            self._typing[conversation_id] = time.monotonic() + TYPING_SECONDS
        else:
            self._typing.pop(conversation_id, None)
        self.hub.publish({"type": "typing", "conversation_id": conversation_id, "on": on,
                          "agent": {"id": agent.public_id, "name": agent.name}})
        channel = self.channels.get(conv.channel)
        if channel is None or not hasattr(channel, "typing"):
            return conv.channel == "rest"
        try:
            return bool(await channel.typing(await self._recipient(conv), on))
        except Exception:  # noqa: BLE001 - best effort
            log.exception("hand-off desk: typing indicator on %s failed", conv.channel)
            return False

    def is_typing(self, conversation_id: str) -> bool:
        deadline = self._typing.get(conversation_id)
        if deadline is None:
            return False
        if deadline < time.monotonic():
            self._typing.pop(conversation_id, None)
            return False
        return True
