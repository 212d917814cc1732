"""Messages the assistant could not answer are answered when it is back.

When Rasa or the action server is down, the widget and WhatsApp store the customer's message, mark
it ``deferred`` and then tell the customer "One moment, please ... your message is saved and we'll
get back to you" (in that order: the promise is durable before it is made). This loop keeps that promise: every ``RETRY_SECONDS`` it looks for deferred
messages and, once every Rasa server and the action server answer, hands each one back to its
channel, oldest first, which answers it as if it had just arrived (and tells the customer nothing
more if it fails again). A message is claimed with one conditional update, so with several gateway
replicas exactly one of them answers it. A message after which the customer already got an answer
to a newer one is not answered any more (status ``superseded``): the conversation has moved on. A
message still not answered after ``MAX_TRIES`` rounds (the assistant fails on it, not just was
down) is given up (status ``failed``, logged) rather than tried for ever.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update

from . import keys
from .store.models import Message
from .tasks import Rounds

log = logging.getLogger(__name__)

DEFERRED = "deferred"
SUPERSEDED = "superseded"
FAILED = "failed"
MAX_TRIES = 5
RETRY_SECONDS = 5.0
BATCH = 100


async def deferred_messages(session, limit: int = BATCH) -> list[Message]:
    return list((await session.execute(
        select(Message).where(Message.delivery_status == DEFERRED, Message.direction == "in")
        .order_by(Message.id).limit(limit))).scalars().all())


async def claim(session, m: Message, to_status: str, meta: dict | None = None) -> bool:
    """Move one deferred message to ``to_status``; False when another replica took it first."""
    values: dict = {"delivery_status": to_status}
    if meta is not None:
        values["meta"] = meta
    result = await session.execute(update(Message).where(Message.id == m.id, Message.delivery_status == DEFERRED)
                                   .values(**values))
    return result.rowcount == 1


async def answered_later(session, m: Message) -> bool:
    """Whether a newer message of the customer in this conversation was answered."""
    return (await session.execute(
        select(Message.id).where(Message.conversation_id == m.conversation_id, Message.direction == "in",
                                 Message.id > m.id, Message.delivery_status == "processed").limit(1)
    )).first() is not None


class DeferredAnswers(Rounds):
    label = "deferred answers"

    def __init__(self, app, retry_seconds: float = RETRY_SECONDS):
        self.app = app
        self.interval = retry_seconds

    async def assistant_ready(self) -> bool:
        from .ops.health import action_server_down

        ok, _ = await self.app[keys.RASA].ready()
        return ok and await action_server_down(self.app) is None

    async def run_once(self) -> int:
        """One round; returns how many messages were handed back to their channels."""
        sessionmaker = self.app[keys.SESSIONMAKER]
        async with sessionmaker() as session:
            waiting = await deferred_messages(session)
        if not waiting or not await self.assistant_ready():
            return 0
        resumed = 0
        channels = self.app[keys.CHANNELS]
        for m in waiting:
            channel = channels.get(m.channel)
            if channel is None or not hasattr(channel, "resume_deferred"):
                continue
            tries = int((m.meta or {}).get("deferred_tries") or 0) + 1
            async with sessionmaker() as session:
                later = await answered_later(session, m)
                status = SUPERSEDED if later else FAILED if tries > MAX_TRIES else "received"
                took = await claim(session, m, status, {**(m.meta or {}), "deferred_tries": tries})
                await session.commit()
            if took and status == FAILED:
                log.warning("deferred answers: message %s given up after %d tries", m.public_id, MAX_TRIES)
            elif took and status == "received":
                await channel.resume_deferred(m.public_id)
                resumed += 1
        if resumed:
            log.info("deferred answers: %d message(s) handed back to their channels", resumed)
        return resumed


async def deferred_ctx(app):
    deferred = app[keys.DEFERRED] = DeferredAnswers(app)
    await deferred.start()
    yield
    await deferred.stop()
