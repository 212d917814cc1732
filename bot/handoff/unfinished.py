"""A customer who was promised a person reaches the queue even when they leave the hand-off form
unanswered.

The action server says when it promises a person (a ``handoff_requested`` event, when the hand-off
form starts), and the hand-off itself comes later as the ``handoff`` event. When neither a
``handoff`` nor a finishing attempt followed a promise, the conversation is still the bot's, the
bot spoke last (the customer is not waiting for an answer) and nothing happened in it for
HANDOFF_FORM_TIMEOUT_SECONDS, this loop has the router finish it (``Router.finish_handoff``: Rasa gets
``/finish_handoff``, ends the form and hands off with what was captured). The customer is told
through their channel as for any hand-off. Each promise is finished at most once (the router's
``handoff_unfinished`` event); with several gateways two may try at once, and the second finds the
conversation queued and changes nothing (``Desk.hand_off`` only moves a conversation that is the
bot's). When Rasa cannot be reached the promise stays open and the next round tries again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select

from .. import keys
from ..store.models import Conversation, ConversationEvent, Message
from ..tasks import Rounds
from ..clock import utcnow
from .common import BOT

log = logging.getLogger(__name__)

PROMISED = "handoff_requested"
CLOSED = ("handoff", "handoff_unfinished")
# Rasa starts a new session (and forgets the form) after an hour without messages (domain.yml
# session_config): a promise older than that cannot be finished through it.
WINDOW = timedelta(minutes=60)


async def due(session, timeout_seconds: float, now=None) -> list[int]:
    """Conversations whose promised hand-off the customer left unfinished for the timeout."""
    now = now or utcnow()
    promised = (select(ConversationEvent.conversation_id, func.max(ConversationEvent.id).label("event_id"))
                .where(ConversationEvent.type == PROMISED, ConversationEvent.created_at >= now - WINDOW)
                .group_by(ConversationEvent.conversation_id).subquery())
    rows = (await session.execute(
        select(Conversation.id, promised.c.event_id).join(promised, promised.c.conversation_id == Conversation.id)
        .where(Conversation.status == BOT,
               Conversation.last_message_at <= now - timedelta(seconds=timeout_seconds)))).all()
    out = []
    for conv_id, event_id in rows:
        closed = (await session.execute(select(ConversationEvent.id).where(
            ConversationEvent.conversation_id == conv_id, ConversationEvent.id > event_id,
            ConversationEvent.type.in_(CLOSED)).limit(1))).first()
        last = (await session.execute(select(Message.direction).where(Message.conversation_id == conv_id)
                                      .order_by(Message.id.desc()).limit(1))).scalar_one_or_none()
        if closed is None and last == "out":
            out.append(conv_id)
    return out


class UnfinishedHandoffs(Rounds):
    label = "unfinished hand-offs"

    def __init__(self, app, timeout_seconds: float):
        self.app = app
        self.timeout_seconds = timeout_seconds
        self.interval = max(1.0, min(10.0, timeout_seconds / 4))

    async def run_once(self) -> int:
        """One round; returns how many conversations were queued."""
        async with self.app[keys.SESSIONMAKER]() as session:
            conversations = await due(session, self.timeout_seconds)
        queued = 0
        for conv_id in conversations:
            if await self.app[keys.ROUTER].finish_handoff(conv_id):
                queued += 1
        if queued:
            log.info("unfinished hand-offs: %d conversation(s) queued for a person", queued)
        return queued


async def unfinished_ctx(app):
    timeout = app[keys.SETTINGS].handoff_form_timeout_seconds
    if timeout <= 0:
        yield
        return
    loop = UnfinishedHandoffs(app, timeout)
    await loop.start()
    yield
    await loop.stop()
