"""Greeting a returning customer with what was open last time.

When a contact starts a new conversation (on any channel) and its previous conversation ended less than
``RETURNING_DAYS`` ago, and the bot's answer to the first message was not an answer from the knowledge
base (a "hello", not a question), the gateway adds, in the customer's language:

    "Welcome back! Last time you asked about “refund for my order” (order 1234). Is this about that?"
    [Yes, about that] [No, something new]

The topic is the last question the bot searched the knowledge base for in that conversation (or its
first customer message); the order number is the one the bot or an agent captured. "Yes" asks the bot
that question again in this conversation; "No" is answered with an invitation to ask. Contacts linked
across channels (bot.insights.identity) are greeted with their other channel's topic too.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import payloads
from ..clock import aware, utcnow
from ..i18n import t
from ..store import repository as repo
from ..store.models import Contact, Conversation, ConversationEvent, Message

MAX_TOPIC_CHARS = 80
KB_ANSWERS = ("answer", "clarify", "chosen", "next_best")


def payload(yes: bool) -> str:
    return payloads.make("returning", {"yes": yes})


def parse(text: str | None) -> bool | None:
    """True/False for the greeting's buttons, None for anything else."""
    data = payloads.parse(text, "returning")
    return data["yes"] if data is not None and isinstance(data.get("yes"), bool) else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TOPIC_CHARS else text[:MAX_TOPIC_CHARS - 1].rstrip() + "…"


async def previous_topic(session: AsyncSession, conv: Conversation, days: int) -> dict | None:
    """The topic and order number of the contact's conversation before ``conv``, when recent enough."""
    if days <= 0:
        return None
    prev = (await session.execute(
        select(Conversation).where(Conversation.contact_id == conv.contact_id, Conversation.id != conv.id,
                                   Conversation.created_at <= conv.created_at)
        .order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()
    if prev is None or aware(prev.last_message_at) < utcnow() - timedelta(days=days):
        return None
    query = (await session.execute(
        select(ConversationEvent.data).where(ConversationEvent.conversation_id == prev.id,
                                             ConversationEvent.type == "kb_answer")
        .order_by(ConversationEvent.id.desc()))).scalars().all()
    topic = next((d.get("query") for d in query if isinstance(d, dict) and isinstance(d.get("query"), str)
                  and d["query"].strip() and not d["query"].startswith("/")), None)
    if topic is None:
        first = (await session.execute(
            select(Message.text).where(Message.conversation_id == prev.id, Message.direction == "in",
                                       Message.text.is_not(None)).order_by(Message.id))).scalars().all()
        topic = next((x for x in first if x.strip() and not x.startswith("/")), None)
    if not topic:
        return None
    contact = await session.get(Contact, conv.contact_id)
    order = ((prev.handoff or {}).get("captured") or {}).get("order_number") or \
        (contact.attributes or {}).get("order_number") if contact else None
    return {"topic": _short(topic), "order": str(order)[:40] if order else None, "conversation_id": prev.public_id}


def greeting(session: AsyncSession, conv: Conversation, found: dict, in_reply_to: str) -> Message:
    lang = conv.language
    text = t("returning_greeting_order" if found["order"] else "returning_greeting", lang,
             topic=found["topic"], order=found["order"] or "")
    buttons = [{"title": t("returning_yes", lang), "payload": payload(True)},
               {"title": t("returning_no", lang), "payload": payload(False)}]
    return repo.add_message(session, conv, direction="out", sender_type="system", text=text, buttons=buttons,
                            meta={"in_reply_to": in_reply_to, "text_key": "returning_greeting",
                                  "returning": found})


async def offered_topic(session: AsyncSession, conv_pk: int) -> str | None:
    """The topic of the greeting this conversation showed, if it did."""
    rows = (await session.execute(select(Message.meta).where(
        Message.conversation_id == conv_pk, Message.sender_type == "system", Message.direction == "out")
        .order_by(Message.id.desc()))).scalars().all()
    for meta in rows:
        if isinstance(meta, dict) and meta.get("text_key") == "returning_greeting":
            return (meta.get("returning") or {}).get("topic")
    return None


async def is_first_message(session: AsyncSession, conv_pk: int) -> bool:
    n = (await session.execute(select(Message.id).where(Message.conversation_id == conv_pk,
                                                        Message.direction == "in").limit(2))).scalars().all()
    return len(n) == 1


def answered_from_kb(raw: list) -> bool:
    return any(isinstance(i, dict) and isinstance(i.get("custom"), dict) and i["custom"].get("event") == "kb_answer"
               and i["custom"].get("decision") in KB_ANSWERS for i in raw)
