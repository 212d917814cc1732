"""What the hand-off desk (bot/handoff/desk.py) and its callers share: the conversation statuses,
the desk's errors (with their HTTP status), the acting agent, time helpers for values SQLite hands
back naive, the queue priority, and the JSON shapes of messages and notes."""
from __future__ import annotations

from dataclasses import dataclass

from ..clock import aware, iso, utcnow  # noqa: F401 - still imported from here by its callers
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


@dataclass(frozen=True)
class Actor:
    """The agent doing something (a snapshot, detached from any session)."""
    id: int
    public_id: str
    name: str
    email: str
    role: str

    @classmethod
    def of(cls, agent: Agent) -> "Actor":
        return cls(agent.id, agent.public_id, agent.name, agent.email, agent.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict:
        return {"id": self.public_id, "name": self.name, "email": self.email}


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
