"""The gateway's conversation store, in Chatwoot's words: Contact, ContactIdentity (a channel's
``source_id``), Conversation (bot, pending, open, resolved), Message, and ConversationEvent."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, new_public_id, utcnow  # noqa: F401 - imported from here by the rest of the project


CONVERSATION_STATUSES = ("bot", "pending", "open", "resolved")


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    identities: Mapped[list["ContactIdentity"]] = relationship(back_populates="contact")


class ContactIdentity(Base):
    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("channel", "source_id", name="uq_identity_channel_source"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(255))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    contact: Mapped[Contact] = relationship(back_populates="identities")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_contact_status", "contact_id", "status"),
                      Index("ix_conversations_status_priority", "status", "priority", "queued_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="bot")
    language: Mapped[str | None] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    handoff: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the agent inbox (migration 0004): who has it, since when it waits for a person
    assignee_id: Mapped[int | None] = mapped_column(Integer, index=True)  # Agent.id (agents are never deleted)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "platform_message_id", name="uq_message_platform_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index("ix_messages_delivery_status", "delivery_status", "id"),  # migration 0007
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # "in" (from the customer) or "out"
    sender_type: Mapped[str] = mapped_column(String(16))  # customer, bot, agent, system
    channel: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    buttons: Mapped[list | None] = mapped_column(JSON)
    custom: Mapped[dict | None] = mapped_column(JSON)
    meta: Mapped[dict | None] = mapped_column(JSON)
    platform_message_id: Mapped[str | None] = mapped_column(String(255))
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConversationEvent(Base):
    """Structured events (knowledge-base answers, feedback, hand-offs) for analytics and the inbox."""
    __tablename__ = "conversation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

# --- the agent inbox (migration 0004_inbox) ------------------------------------------------------

AGENT_ROLES = ("agent", "admin", "editor")  # editor: the editors' workspace (bot/editor), not inbox admin


class Agent(Base):
    """A person who answers hand-offs in the inbox. Never deleted (transcripts name them): disabled."""
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="en")  # of the inbox's UI
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # inbox open (heartbeat)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AgentSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""
    __tablename__ = "agent_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # absolute limit


class ConversationNote(Base):
    """An agent's internal note: never a Message, so no channel can ever send it to the customer."""
    __tablename__ = "conversation_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookOutbox(Base):
    """Outgoing webhook events, written in the transaction of the change they report and sent by a
    background worker (so a restart loses none)."""
    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_due", "delivered_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InboundBatch(Base):
    """A platform's verified webhook body with many updates (WhatsApp sends up to 1000 in one POST),
    stored in one write before the platform is answered and deleted once every message and status in it
    is stored (migration 0008_inbound_batches)."""
    __tablename__ = "inbound_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

class Erasure(Base):
    """A deleted customer's platform id as a keyed hash (HMAC-SHA256 under the channel's app secret,
    never the id itself) and when the contact was deleted: an update the platform sent before that time
    and delivers only afterwards (a batch being split at that moment, a webhook delivered again) is not
    stored. Kept for ERASURE_DAYS (bot/channels/whatsapp_batches.py; migration 0009_erasures)."""
    __tablename__ = "erasures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64), index=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

# --- the editors' workspace (migration 0005_editor): its models live in their own module ---------
from .editor_models import KbArticle, KbArticleVersion, KbAuditEntry, KbReview  # noqa: E402,F401

# --- surveys and insights (migration 0006_insights) ----------------------------------------------

SURVEY_STAGES = ("csat", "nps", "comment", "done", "abandoned")


class SurveyResponse(Base):
    """One satisfaction survey after an agent resolved a conversation (bot.insights.surveys): the stage says
    which question waits for an answer."""
    __tablename__ = "survey_responses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    stage: Mapped[str] = mapped_column(String(16), default="csat")
    with_nps: Mapped[bool] = mapped_column(Boolean, default=False)
    csat: Mapped[int | None] = mapped_column(Integer)
    nps: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventStreamEntry(Base):
    """Every conversation event, in order, for a company's warehouse (bot.events): read it from this
    table (GET /api/admin/events?after=N) or have it published to a broker (EVENT_BROKER_URL)."""
    __tablename__ = "event_stream"
    __table_args__ = (Index("ix_event_stream_unpublished", "published_at", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    type: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True)  # Conversation.public_id
    contact_id: Mapped[str | None] = mapped_column(String(32), index=True)  # Contact.public_id
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerCount(Base):
    """Customers at the start and end of a period (and those gained), entered or imported by an admin:
    the churn-rate formulas of the dashboard (bot.insights.metrics) use them."""
    __tablename__ = "customer_counts"
    __table_args__ = (UniqueConstraint("period_start", "period_end", name="uq_customer_counts_period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_start: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    period_end: Mapped[str] = mapped_column(String(10))
    customers_start: Mapped[int] = mapped_column(Integer)
    customers_end: Mapped[int] = mapped_column(Integer)
    new_customers: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ContactMerge(Base):
    """Two contacts found to be one person through a verified identity (bot.insights.identity): the merged
    contact's rows moved to the kept one. The snapshot is what an admin's undo puts back."""
    __tablename__ = "contact_merges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    kept_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    kept_public_id: Mapped[str] = mapped_column(String(32))
    merged_public_id: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # confirmed_email
    identity: Mapped[str] = mapped_column(String(400))  # the shared identity, channel:source_id
    actor: Mapped[str | None] = mapped_column(String(200))  # the agent who confirmed, or None (the site's proof)
    snapshot: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_by: Mapped[str | None] = mapped_column(String(200))
