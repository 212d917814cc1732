"""Churn-risk signals per customer: a simple, transparent score, shown to agents (the inbox's
conversation panel) and managers (the dashboard's list of customers at risk), always with its reasons.

Over the contact's conversations of the last ``WINDOW_DAYS`` (30) days, each signal adds its points once:

    anger             3  the bot handed off for frustration, or saw negative sentiment, or a message
                         of the customer was tagged negative with high severity (bot.insights.sentiment)
    cancel_refund     3  the customer asked to cancel, for a refund or for a discount (words in en, de,
                         tr, ja: CANCEL_WORDS) ...
    renewal_near      2  ... and the contact's ``renewal_date`` attribute is within 30 days
    negative_feedback 2  the customer said an answer did not help
    low_csat          2  a CSAT answer of 3 ("neutral") or less
    nps_detractor     1  an NPS answer of 6 or less
    many_contacts     2  3 or more conversations within any 7 days
    repeated_unresolved 2  2 or more questions the knowledge base could not answer, or answers that
                         did not help, in 2 or more conversations

    level: high at 5 points or more, medium at 3-4, low at 1-2, none at 0.
"""
from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import aware, utcnow
from ..store.models import Contact, Conversation, ConversationEvent, Message, SurveyResponse

WINDOW_DAYS = 30
RENEWAL_DAYS = 30
POINTS = {"anger": 3, "cancel_refund": 3, "renewal_near": 2, "negative_feedback": 2, "low_csat": 2,
          "nps_detractor": 1, "many_contacts": 2, "repeated_unresolved": 2}
CANCEL_WORDS = re.compile(
    r"cancel|refund|money back|discount|unsubscribe|terminate|"
    r"kündig|storn|erstatt|geld zurück|rabatt|"
    r"iptal|iade|para iadesi|indirim|abonelik.{0,20}(?:bitir|sonlandır)|"
    r"解約|キャンセル|返金|払い戻し|割引|退会", re.IGNORECASE)


def level_of(score: int) -> str:
    return "high" if score >= 5 else "medium" if score >= 3 else "low" if score >= 1 else "none"


def _renewal(contact: Contact, now: datetime) -> date | None:
    raw = (contact.attributes or {}).get("renewal_date")
    try:
        d = date.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return d if d is not None and now.date() <= d <= now.date() + timedelta(days=RENEWAL_DAYS) else None


async def scores(session: AsyncSession, contact_pks: list[int], now: datetime | None = None) -> dict[int, dict]:
    """contact pk -> {"score", "level", "signals": [{"signal", "points", "reason"}]}"""
    now = now or utcnow()
    since = now - timedelta(days=WINDOW_DAYS)
    convs = (await session.execute(select(Conversation).where(
        Conversation.contact_id.in_(contact_pks), Conversation.created_at >= since,
        Conversation.created_at < now))).scalars().all()
    by_contact: dict[int, list[Conversation]] = defaultdict(list)
    for c in convs:
        by_contact[c.contact_id].append(c)
    conv_contact = {c.id: c.contact_id for c in convs}
    ids = list(conv_contact)
    facts: dict[int, dict] = {pk: {"anger": 0, "cancel": [], "unhelpful": 0, "unresolved_convs": set(), "csat": [],
                                   "nps": []} for pk in contact_pks}
    if ids:
        for ev in (await session.execute(select(ConversationEvent).where(
                ConversationEvent.conversation_id.in_(ids),
                ConversationEvent.type.in_(("handoff", "kb_answer", "kb_feedback", "sentiment"))))).scalars():
            x, d = facts[conv_contact[ev.conversation_id]], ev.data or {}
            if ev.type == "handoff" and (d.get("reason") == "frustration" or d.get("sentiment") == "negative"):
                x["anger"] += 1
            elif ev.type == "sentiment" and d.get("severity") == "high":
                x["anger"] += 1
            elif ev.type == "kb_answer" and d.get("decision") == "handoff":
                x["unresolved_convs"].add(ev.conversation_id)
            elif ev.type == "kb_feedback" and d.get("helpful") is False:
                x["unhelpful"] += 1
                x["unresolved_convs"].add(ev.conversation_id)
        for conv_id, text in (await session.execute(select(Message.conversation_id, Message.text).where(
                Message.conversation_id.in_(ids), Message.direction == "in", Message.text.is_not(None)))).all():
            if not text.startswith("/") and CANCEL_WORDS.search(text):
                facts[conv_contact[conv_id]]["cancel"].append(text)
        for s in (await session.execute(select(SurveyResponse).where(SurveyResponse.conversation_id.in_(ids)))).scalars():
            if s.csat is not None:
                facts[s.contact_id]["csat"].append(s.csat)
            if s.nps is not None:
                facts[s.contact_id]["nps"].append(s.nps)
    contacts = {c.id: c for c in (await session.execute(select(Contact).where(Contact.id.in_(contact_pks)))).scalars()}
    out = {}
    for pk in contact_pks:
        x, signals = facts[pk], []

        def add(name: str, reason: str) -> None:
            signals.append({"signal": name, "points": POINTS[name], "reason": reason})

        if x["anger"]:
            add("anger", "the customer was upset (hand-off for frustration, or a very negative message)")
        if x["cancel"]:
            add("cancel_refund", f"asked to cancel, for a refund or a discount: \"{x['cancel'][-1][:80]}\"")
            renewal = _renewal(contacts[pk], now) if pk in contacts else None
            if renewal:
                add("renewal_near", f"the subscription renews on {renewal.isoformat()}")
        if x["unhelpful"]:
            add("negative_feedback", f"{x['unhelpful']} answer(s) did not help")
        low = [s for s in x["csat"] if s <= 3]
        if low:
            add("low_csat", f"CSAT {min(low)} of 5")
        det = [s for s in x["nps"] if s <= 6]
        if det:
            add("nps_detractor", f"NPS {min(det)} of 10")
        created = sorted(aware(c.created_at) for c in by_contact.get(pk, []))
        if any(sum(1 for t in created if s <= t < s + timedelta(days=7)) >= 3 for s in created):
            add("many_contacts", f"{len(created)} conversations in {WINDOW_DAYS} days, 3 or more within 7 days")
        if len(x["unresolved_convs"]) >= 2:
            add("repeated_unresolved", f"unresolved questions in {len(x['unresolved_convs'])} conversations")
        score = sum(s["points"] for s in signals)
        out[pk] = {"score": score, "level": level_of(score), "signals": signals}
    return out


async def at_risk(session: AsyncSession, now: datetime | None = None, limit: int = 20) -> list[dict]:
    """The customers with the highest scores (medium or high), for the dashboard."""
    now = now or utcnow()
    since = now - timedelta(days=WINDOW_DAYS)
    pks = list((await session.execute(select(Conversation.contact_id).where(
        Conversation.created_at >= since, Conversation.created_at < now).distinct())).scalars())
    if not pks:
        return []
    found = await scores(session, pks, now)
    contacts = {c.id: c for c in (await session.execute(select(Contact).where(Contact.id.in_(pks)))).scalars()}
    ranked = sorted((pk for pk in pks if found[pk]["score"] >= 3), key=lambda pk: (-found[pk]["score"], pk))[:limit]
    return [{"contact_id": contacts[pk].public_id, "name": contacts[pk].name, "email": contacts[pk].email,
             **found[pk]} for pk in ranked]
