"""What the inbox reads: the queue and lists, and one conversation with the contact's whole history
(every conversation on every channel, bot answers with the articles they came from, notes and
status changes)."""
from __future__ import annotations

from sqlalchemy import select

from ..clock import iso
from ..handoff.common import OPEN, PENDING, RESOLVED, message_dict, note_dict
from ..handoff.desk import Desk
from ..insights import churn
from ..store.models import Agent, Contact, ContactIdentity, Conversation, ConversationEvent, ConversationNote, Message

VIEWS = ("queue", "mine", "open", "resolved")
LIST_LIMIT = 200
TIMELINE_LIMIT = 2000
EVENT_TYPES = ("status", "assigned", "handoff", "kb_answer", "kb_feedback", "assistant_unavailable", "sentiment")


async def list_conversations(session, desk: Desk, view: str, agent_id: int) -> list[dict]:
    q = select(Conversation)
    if view == "queue":
        q = q.where(Conversation.status == PENDING).order_by(Conversation.priority.desc(),
                                                             Conversation.queued_at.asc(), Conversation.id.asc())
    elif view == "mine":
        q = q.where(Conversation.status == OPEN, Conversation.assignee_id == agent_id) \
            .order_by(Conversation.last_message_at.desc())
    elif view == "open":
        q = q.where(Conversation.status == OPEN).order_by(Conversation.last_message_at.desc())
    else:  # resolved: the latest ones handled by a person
        q = q.where(Conversation.status == RESOLVED, Conversation.queued_at.is_not(None)) \
            .order_by(Conversation.updated_at.desc())
    rows = (await session.execute(q.limit(LIST_LIMIT))).scalars().all()
    out = []
    for i, conv in enumerate(rows):
        s = await desk.summary(session, conv, with_position=False)
        if view == "queue":
            s["position"] = i + 1
        out.append(s)
    return out


async def conversation_detail(session, desk: Desk, conv: Conversation) -> dict:
    contact = await session.get(Contact, conv.contact_id)
    summary = await desk.summary(session, conv, contact)
    convs = (await session.execute(
        select(Conversation).where(Conversation.contact_id == contact.id).order_by(Conversation.id)
    )).scalars().all()
    by_pk = {c.id: c for c in convs}
    messages = (await session.execute(
        select(Message).where(Message.conversation_id.in_(list(by_pk))).order_by(Message.id.desc())
        .limit(TIMELINE_LIMIT)
    )).scalars().all()
    messages = list(reversed(messages))
    events = (await session.execute(
        select(ConversationEvent).where(ConversationEvent.conversation_id.in_(list(by_pk)),
                                        ConversationEvent.type.in_(EVENT_TYPES))
        .order_by(ConversationEvent.id)
    )).scalars().all()
    notes = (await session.execute(
        select(ConversationNote, Agent).outerjoin(Agent, Agent.id == ConversationNote.agent_id)
        .where(ConversationNote.conversation_id.in_(list(by_pk))).order_by(ConversationNote.id)
    )).all()
    identities = (await session.execute(
        select(ContactIdentity).where(ContactIdentity.contact_id == contact.id).order_by(ContactIdentity.id)
    )).scalars().all()
    # the articles each bot answer came from: kb_answer events name the customer's message they answer
    articles_for: dict[str, list[dict]] = {}
    for ev in events:
        if ev.type == "kb_answer":
            d = ev.data or {}
            arts = [{k: a.get(k) for k in ("article_id", "title", "link", "locale", "score")}
                    for a in d.get("articles") or [] if isinstance(a, dict)]
            if d.get("message_id"):
                articles_for.setdefault(d["message_id"], []).extend(arts[:3] if d.get("decision") != "answer" else arts[:1])
    feeling = {(ev.data or {}).get("message_id"): {k: (ev.data or {}).get(k) for k in ("label", "severity")}
               for ev in events if ev.type == "sentiment"}  # bot.insights.sentiment, per customer message
    timeline: list[dict] = []
    answered: set[str] = set()
    for m in messages:
        item = {"kind": "message", "conversation_id": by_pk[m.conversation_id].public_id, **message_dict(m)}
        if m.public_id in feeling:
            item["sentiment"] = feeling[m.public_id]
        reply_to = (m.meta or {}).get("in_reply_to")
        if m.sender_type == "bot" and reply_to in articles_for and reply_to not in answered and m.text:
            item["articles"] = articles_for[reply_to]
            answered.add(reply_to)
        timeline.append(item)
    for ev in events:
        if ev.type in ("status", "assigned", "assistant_unavailable"):  # (the hand-off is in the summary)
            d = ev.data or {}
            keep = {k: d.get(k) for k in ("from", "to", "agent_id", "agent_name", "transfer", "reason", "sentiment",
                                          "priority", "position", "after_hours") if k in d}
            timeline.append({"kind": "event", "type": ev.type, "conversation_id": by_pk[ev.conversation_id].public_id,
                             "created_at": iso(ev.created_at), "data": keep})
    for n, agent in notes:
        timeline.append({"kind": "note", "conversation_id": by_pk[n.conversation_id].public_id, **note_dict(n, agent)})
    timeline.sort(key=lambda x: x.get("created_at") or "")
    risk = (await churn.scores(session, [contact.id]))[contact.id]
    return {
        "churn_risk": risk,
        "conversation": summary,
        "contact": {**(summary["contact"] or {}),
                    "identities": [{"channel": i.channel, "verified": i.verified} for i in identities],
                    "attributes": {k: v for k, v in (contact.attributes or {}).items() if k in ("whatsapp",)}},
        "conversations": [{"id": c.public_id, "channel": c.channel, "status": c.status, "language": c.language,
                           "created_at": iso(c.created_at)} for c in convs],
        "timeline": timeline,
        "typing": desk.is_typing(conv.public_id),
    }
