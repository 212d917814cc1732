"""The values that travel between the channels, the router and the hand-off desk: a customer's
message as a channel hands it over (``InboundMessage``), what is said back (``Reply``), the router's
answer (``RouteResult``, ``Accepted``, ``AssistantUnavailable``) and whom a channel delivers to
(``Recipient``, ``DeliveryResult``).

They live here, below all three, so that none of them imports another to name them: the router
imports the desk, the desk and the channels import neither the router nor each other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store.models import Message


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    source_id: str  # the contact's id on that channel
    text: str
    platform_message_id: str | None = None
    language_hint: str | None = None
    verified_user_id: str | None = None
    profile_name: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    text: str | None = None
    buttons: list | None = None
    custom: dict | None = None

    def to_rest(self, recipient_id: str) -> dict:
        out: dict = {"recipient_id": recipient_id}
        if self.text is not None:
            out["text"] = self.text
        if self.buttons:
            out["buttons"] = self.buttons
        if self.custom is not None:
            out["custom"] = self.custom
        return out

    @classmethod
    def from_message(cls, m: Message) -> "Reply":
        return cls(m.text, m.buttons, m.custom)


@dataclass
class RouteResult:
    conversation_id: str
    message_id: str
    replies: list[Reply]
    duplicate: bool = False
    language: str | None = None
    status: str = "bot"


@dataclass(frozen=True)
class Accepted:
    """A stored inbound message that is still to be processed (Router.accept -> Router.process)."""
    message: InboundMessage
    conversation_pk: int
    conversation_id: str  # Conversation.public_id
    contact_id: str  # Contact.public_id (the sender id Rasa sees)
    message_id: str  # Message.public_id
    status: str  # the conversation's status when the message was stored
    language: str | None


class AssistantUnavailable(RuntimeError):
    """The message is stored, but the assistant could not answer it now."""

    def __init__(self, message_id: str, reason: str):
        super().__init__(reason)
        self.message_id = message_id


@dataclass(frozen=True)
class Recipient:
    """Who to deliver to: the conversation and the contact's id on this channel."""
    conversation_id: str  # Conversation.public_id
    source_id: str  # ContactIdentity.source_id on this channel
    language: str | None = None


@dataclass
class DeliveryResult:
    delivered: bool
    platform_message_ids: list[str]
    error: str | None = None  # a clear reason when not delivered (e.g. outside WhatsApp's 24-hour window)
