"""What the hand-off desk reads about the queue (a mixin of Desk): agents online, a conversation's
place in the queue, and the wait estimate from recent claims."""
from __future__ import annotations

import statistics
from datetime import timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import Agent, Conversation, ConversationEvent
from .common import ONLINE_SECONDS, PENDING

WAIT_SAMPLE = 20  # recent claims the wait estimate is the median of ...
WAIT_MIN_SAMPLES = 3  # ... when there are at least this many ...
WAIT_WINDOW = timedelta(days=7)  # ... in this window


class QueueReading:
    """Needs from the desk: clock."""

    async def agents_online(self, session: AsyncSession) -> int:
        since = self.clock() - timedelta(seconds=ONLINE_SECONDS)
        return (await session.execute(
            select(func.count()).select_from(Agent).where(Agent.active.is_(True), Agent.last_seen_at >= since)
        )).scalar_one()

    async def queue_position(self, session: AsyncSession, conv: Conversation) -> int:
        """1 + the pending conversations ahead of this one (higher priority, or same and waiting longer)."""
        p, q = conv.priority or 0, conv.queued_at
        ahead = [Conversation.priority > p]
        if q is not None:
            ahead.append(and_(Conversation.priority == p, Conversation.queued_at < q))
            ahead.append(and_(Conversation.priority == p, Conversation.queued_at == q, Conversation.id < conv.id))
        n = (await session.execute(
            select(func.count()).select_from(Conversation)
            .where(Conversation.status == PENDING, Conversation.id != conv.id, or_(*ahead))
        )).scalar_one()
        return n + 1

    async def wait_estimate(self, session: AsyncSession) -> float | None:
        """The median wait (seconds) of the last claims of the past week; None with too few."""
        since = self.clock() - WAIT_WINDOW
        rows = (await session.execute(
            select(ConversationEvent.data).where(ConversationEvent.type == "assigned",
                                                 ConversationEvent.created_at >= since)
            .order_by(ConversationEvent.id.desc()).limit(WAIT_SAMPLE * 2)
        )).scalars().all()
        waits = [float(d["wait_seconds"]) for d in rows
                 if isinstance(d, dict) and not d.get("transfer") and isinstance(d.get("wait_seconds"), (int, float))]
        waits = waits[:WAIT_SAMPLE]
        if len(waits) < WAIT_MIN_SAMPLES:
            return None
        return statistics.median(waits)
