"""What the hand-off desk (bot/handoff/desk.py) and its callers share: the conversation statuses,
the desk's errors (with their HTTP status), the queue priority, and the JSON shapes of messages and
notes. The acting agent is bot.staff.actor.Actor; the time helpers are in bot.clock."""
from __future__ import annotations

from ..clock import iso
from ..payloads import is_payload
from ..store.models import Agent, ConversationNote, Message

BOT, PENDING, OPEN, RESOLVED = "bot", "pending", "open", "resolved"
WITH_A_PERSON = (PENDING, OPEN)
ONLINE_SECONDS = 60  # an agent whose inbox sent a heartbeat this recently is online


class HandoffError(Exception):
    status = 400

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFound(HandoffError):
    status = 404


class Conflict(HandoffError):
    status = 409


class Forbidden(HandoffError):
    status = 403


def priority_of(event: dict) -> int:
    if event.get("sentiment") == "negative" or event.get("reason") == "frustration":
        return 2
    if event.get("reason") == "not_helpful":
        return 1
    return 0


def message_dict(m: Message) -> dict:
    """A message as the agents' inbox shows it. A button's payload ("/affirm") means nothing to a
    person: a customer's click reads as the button's title (``clicked``), a bot's buttons as titles."""
    meta = m.meta or {}
    text, clicked = m.text, False
    if m.sender_type == "customer" and is_payload(text) and isinstance(meta.get("title"), str) and meta["title"]:
        text, clicked = meta["title"], True
    out = {"id": m.public_id, "direction": m.direction, "sender_type": m.sender_type, "channel": m.channel,
           "text": text, "created_at": iso(m.created_at), "delivery_status": m.delivery_status}
    if clicked:
        out["clicked"] = True
    if m.buttons:
        out["buttons"] = [{"title": b.get("title")} for b in m.buttons if isinstance(b, dict) and b.get("title")]
    if m.sender_type == "agent":
        out["agent"] = {"id": meta.get("agent_id"), "name": meta.get("agent_name")}
    return out


def note_dict(n: ConversationNote, agent: Agent | None) -> dict:
    return {"id": n.public_id, "text": n.text, "created_at": iso(n.created_at),
            "agent": {"id": agent.public_id, "name": agent.name} if agent else None}
