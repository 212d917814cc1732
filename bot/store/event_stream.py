"""The event stream's table (``event_stream``): every conversation event, in order, written in the
same transaction as the change itself (``repository.add_message``/``add_event`` call ``record``), and
read back in id order. bot.events describes the stream and publishes it to RabbitMQ."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import iso
from .models import Conversation, EventStreamEntry, utcnow


def record(session: AsyncSession, conversation: Conversation | None, type_: str, payload: dict,
           contact_id: str | None = None) -> EventStreamEntry:
    """Add one event to the stream, in the caller's transaction (``conversation`` None: a contact's)."""
    entry = EventStreamEntry(type=type_, conversation_id=conversation.public_id if conversation else None,
                             contact_id=contact_id,
                             payload=payload, created_at=utcnow())
    session.add(entry)
    return entry


def as_dict(e: EventStreamEntry) -> dict:
    return {"id": e.id, "event_id": e.event_id, "type": e.type, "conversation_id": e.conversation_id,
            "contact_id": e.contact_id, "created_at": iso(e.created_at), "payload": e.payload}


async def read(session: AsyncSession, after: int = 0, limit: int = 100) -> list[dict]:
    rows = (await session.execute(select(EventStreamEntry).where(EventStreamEntry.id > after)
                                  .order_by(EventStreamEntry.id).limit(limit))).scalars().all()
    return [as_dict(e) for e in rows]
