"""The managers' numbers (the dashboard at /dashboard, GET /api/admin/metrics), from the gateway's store.

A period is whole UTC days, ``from``..``to`` inclusive; the conversations counted are those *created*
in it, optionally only of one channel and/or one language. Definitions (N = those conversations):

- conversations: N. Each has exactly one outcome (``outcome_of``), judged from its events in order:
  - handed_off: it went to the agents' queue (a ``status`` event bot -> pending). hand-off rate =
    handed_off / N; reasons: the bot's ``handoff`` event's reason.
  - handoff_abandoned: the customer asked for a person, accepted the bot's offer of one or was sent
    to one (the bot's ``handoff_requested`` event, when the hand-off form starts), but it never
    reached the queue (the form was left unfinished).
  - contained (resolved by the bot): neither of those, and the bot's last knowledge-base result is
    an answer (``kb_answer`` decision answer, chosen or next_best, or a ``kb_feedback`` helpful) that
    the customer did not reject: no ``kb_feedback`` helpful false after it. containment = contained / N.
  - misfired: neither hand-off, and the last result failed: "I don't know" (``kb_answer`` decision
    handoff), the customer said the answer did not help, or the knowledge base or the assistant was
    unavailable.
  - no_answer: none of these: small talk only, "I can only help with ..."/"didn't get that" (which
    are not knowledge-base results), or a clarification left unanswered.
- resolved by an agent: conversations with a ``status`` event to resolved.
- first-contact resolution: contained or handed-off-and-agent-resolved conversations after whose last
  message the same contact started no other conversation (any channel) within ``FCR_DAYS`` (7);
  FCR = that / N.
- first response time: from the hand-off (bot -> pending) to the first agent message; resolution
  time: from the hand-off to the resolve. Median, 90th percentile (nearest rank) and mean, seconds.
- CSAT: survey answers 1-5 of these conversations: score = % of 4 and 5, and the average.
  NPS: answers 0-10: % promoters (9-10) - % detractors (0-6), rounded.
- questions: the bot's knowledge-base searches with a question (``kb_answer`` decisions answer,
  clarify, handoff; a search without its text is not counted anywhere); unanswered: those with
  decision handoff (the knowledge base did not know). The table of unanswered questions lists the
  same ones grouped case-folded, most frequent first: ``top_unanswered`` (at most ``TOP_UNANSWERED``)
  plus ``unanswered_other`` (the rest), so its counts add up to ``unanswered``.
- churn (per customer-count period entered or imported by an admin that overlaps the period):
  lost = customers_start + new_customers - customers_end;
  simple churn = lost / customers_start; adjusted churn = lost / ((customers_start + customers_end) / 2)
  (the mid-point customer count, fairer when the base grew or shrank in the period).
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import aware
from ..store.models import Conversation, ConversationEvent, CustomerCount, Message, SurveyResponse

FCR_DAYS = 7
MAX_DAYS = 366
MAX_DRIVER_QUESTIONS = 2000  # the most recent first questions clustered into contact drivers
QUESTION_DECISIONS = ("answer", "clarify", "handoff")
ANSWERED = ("answer", "chosen", "next_best")  # decisions where the bot gave an article's answer
OUTCOMES = ("contained", "handed_off", "handoff_abandoned", "misfired", "no_answer")
OUTCOME_EVENTS = ("status", "handoff", "handoff_requested", "kb_answer", "kb_feedback", "kb_unavailable",
                  "assistant_unavailable")
TOP_UNANSWERED = 20


class MetricsError(ValueError):
    """A bad filter: the API answers 400 with this message."""


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    channel: str | None = None
    language: str | None = None

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), timezone.utc)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(), timezone.utc)

    @classmethod
    def parse(cls, query, today: date | None = None) -> "Filters":
        today = today or datetime.now(timezone.utc).date()
        try:
            end = date.fromisoformat(query.get("to") or today.isoformat())
            start = date.fromisoformat(query.get("from") or (end - timedelta(days=29)).isoformat())
        except ValueError:
            raise MetricsError("'from' and 'to' must be dates like 2026-11-30") from None
        if start > end:
            raise MetricsError("'from' must not be after 'to'")
        if (end - start).days + 1 > MAX_DAYS:
            raise MetricsError(f"the period may be at most {MAX_DAYS} days")
        channel = (query.get("channel") or "").strip() or None
        language = (query.get("language") or "").strip() or None
        for name, v in (("channel", channel), ("language", language)):
            if v is not None and (len(v) > 32 or not v.replace("_", "").isalnum()):
                raise MetricsError(f"'{name}' is not a valid {name}")
        return cls(start, end, channel, language)


def seconds_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max(0.0, (aware(b) - aware(a)).total_seconds())


def summary_of(values: list[float]) -> dict:
    """Median, 90th percentile (nearest rank) and mean of durations in seconds."""
    if not values:
        return {"count": 0, "median": None, "p90": None, "mean": None}
    s = sorted(values)
    p90 = s[max(0, -(-9 * len(s) // 10) - 1)]
    return {"count": len(s), "median": round(statistics.median(s), 1), "p90": round(p90, 1),
            "mean": round(statistics.fmean(s), 1)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def csat_summary(scores: list[int]) -> dict:
    return {"responses": len(scores), "score": _rate(sum(1 for s in scores if s >= 4), len(scores)),
            "average": round(statistics.fmean(scores), 2) if scores else None,
            "distribution": {str(k): scores.count(k) for k in range(1, 6)}}


def nps_summary(scores: list[int]) -> dict:
    n = len(scores)
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return {"responses": n, "promoters": promoters, "passives": n - promoters - detractors, "detractors": detractors,
            "nps": round(100 * (promoters - detractors) / n) if n else None}


def churn_of(row: CustomerCount) -> dict:
    lost = row.customers_start + row.new_customers - row.customers_end
    mid = (row.customers_start + row.customers_end) / 2
    return {"period_start": row.period_start, "period_end": row.period_end, "customers_start": row.customers_start,
            "customers_end": row.customers_end, "new_customers": row.new_customers, "lost": lost,
            "simple_churn": _rate(lost, row.customers_start), "adjusted_churn": round(lost / mid, 4) if mid else None}


def outcome_of(events: list[tuple[str, dict]]) -> str:
    """One conversation's outcome (see the module's docstring) from its events (type, data), in order."""
    handed_off = requested = False
    last = None  # the last knowledge-base result: "answered", "failed" or "clarify"
    for type_, d in events:
        if type_ == "status" and d.get("to") == "pending":
            handed_off = True
        elif type_ == "handoff_requested":
            requested = True
        elif type_ == "kb_answer":
            decision = d.get("decision")
            last = "answered" if decision in ANSWERED else "failed" if decision == "handoff" else \
                "clarify" if decision == "clarify" else last
        elif type_ == "kb_feedback":
            last = "answered" if d.get("helpful") is True else "failed" if d.get("helpful") is False else last
        elif type_ in ("kb_unavailable", "assistant_unavailable"):
            last = "failed"
    if handed_off:
        return "handed_off"
    if requested:
        return "handoff_abandoned"
    return {"answered": "contained", "failed": "misfired"}.get(last, "no_answer")


async def conversation_facts(session: AsyncSession, f: Filters) -> list[dict]:
    """One record per conversation of the period: what every metric is computed from."""
    q = select(Conversation).where(Conversation.created_at >= f.since, Conversation.created_at < f.until)
    if f.channel:
        q = q.where(Conversation.channel == f.channel)
    if f.language:
        q = q.where(Conversation.language == f.language)
    convs = (await session.execute(q.order_by(Conversation.id))).scalars().all()
    if not convs:
        return []
    ids = [c.id for c in convs]
    facts = {c.id: {"id": c.public_id, "contact_pk": c.contact_id, "channel": c.channel, "language": c.language,
                    "status": c.status, "created_at": aware(c.created_at), "last_message_at": aware(c.last_message_at),
                    "handed_off_at": None, "reason": None, "resolved_at": None, "first_agent_reply_at": None,
                    "questions": [], "unanswered": [], "csat": None, "nps": None} for c in convs}
    events = (await session.execute(
        select(ConversationEvent).where(ConversationEvent.conversation_id.in_(ids),
                                        ConversationEvent.type.in_(OUTCOME_EVENTS))
        .order_by(ConversationEvent.id))).scalars().all()
    by_conversation: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    for ev in events:
        x, d = facts[ev.conversation_id], ev.data or {}
        by_conversation[ev.conversation_id].append((ev.type, d))
        if ev.type == "handoff" and x["reason"] is None:
            x["reason"] = d.get("reason") or "unknown"
        elif ev.type == "status" and d.get("to") == "pending" and x["handed_off_at"] is None:
            x["handed_off_at"] = aware(ev.created_at)
        elif ev.type == "status" and d.get("to") == "resolved":
            x["resolved_at"] = aware(ev.created_at)
        elif ev.type == "kb_answer" and d.get("decision") in QUESTION_DECISIONS and str(d.get("query") or "").strip():
            x["questions"].append(str(d["query"]).strip())
            if d.get("decision") == "handoff":
                x["unanswered"].append(str(d["query"]).strip())
    for pk, x in facts.items():
        x["outcome"] = outcome_of(by_conversation[pk])
    first_agent = (await session.execute(
        select(Message.conversation_id, func.min(Message.created_at))
        .where(Message.conversation_id.in_(ids), Message.sender_type == "agent").group_by(Message.conversation_id))).all()
    for cid, at in first_agent:
        facts[cid]["first_agent_reply_at"] = aware(at)
    for s in (await session.execute(select(SurveyResponse).where(SurveyResponse.conversation_id.in_(ids)))).scalars():
        facts[s.conversation_id]["csat"], facts[s.conversation_id]["nps"] = s.csat, s.nps
    # first-contact resolution needs the contact's later conversations, of any channel and period
    contacts = {x["contact_pk"] for x in facts.values()}
    later: dict[int, list[datetime]] = defaultdict(list)
    for contact_pk, created in (await session.execute(
            select(Conversation.contact_id, Conversation.created_at).where(Conversation.contact_id.in_(contacts)))).all():
        later[contact_pk].append(aware(created))
    for x in facts.values():
        handled = x["outcome"] == "contained" or (x["outcome"] == "handed_off" and x["resolved_at"] is not None)
        window_end = x["last_message_at"] + timedelta(days=FCR_DAYS)
        again = any(x["created_at"] < t <= window_end for t in later[x["contact_pk"]])
        x["first_contact_resolved"] = handled and not again
    return list(facts.values())


def aggregate(facts: list[dict], f: Filters) -> dict:
    n = len(facts)
    handed = [x for x in facts if x["handed_off_at"] is not None]
    resolved = [x for x in handed if x["resolved_at"] is not None]
    outcomes = Counter(x["outcome"] for x in facts)
    contained = outcomes["contained"]
    questions = [q for x in facts for q in x["questions"]]
    unanswered = Counter(q.casefold() for x in facts for q in x["unanswered"]).most_common()
    n_unanswered = sum(c for _, c in unanswered)
    rest = unanswered[TOP_UNANSWERED:]
    days = []
    by_day: dict[date, list[dict]] = defaultdict(list)
    for x in facts:
        by_day[x["created_at"].date()].append(x)
    d = f.start
    while d <= f.end:
        xs = by_day.get(d, [])
        h = sum(1 for x in xs if x["handed_off_at"] is not None)
        c = sum(1 for x in xs if x["outcome"] == "contained")
        cs = [x["csat"] for x in xs if x["csat"] is not None]
        days.append({"date": d.isoformat(), "conversations": len(xs), "handed_off": h, "contained": c,
                     "not_resolved": len(xs) - h - c,
                     "csat_responses": len(cs), "csat_average": round(statistics.fmean(cs), 2) if cs else None})
        d += timedelta(days=1)
    return {
        "period": {"from": f.start.isoformat(), "to": f.end.isoformat(), "channel": f.channel, "language": f.language},
        "conversations": n,
        "handed_off": len(handed), "handoff_rate": _rate(len(handed), n),
        "handoff_reasons": dict(Counter(x["reason"] or "unknown" for x in handed).most_common()),
        "contained": contained, "containment_rate": _rate(contained, n),
        "outcomes": {k: outcomes[k] for k in OUTCOMES},
        "resolved_by_agent": len(resolved),
        "first_contact_resolved": sum(1 for x in facts if x["first_contact_resolved"]),
        "fcr_rate": _rate(sum(1 for x in facts if x["first_contact_resolved"]), n),
        "first_response_seconds": summary_of([s for x in handed if (s := seconds_between(x["handed_off_at"],
                                                                                   x["first_agent_reply_at"])) is not None]),
        "resolution_seconds": summary_of([s for x in resolved if (s := seconds_between(x["handed_off_at"],
                                                                               x["resolved_at"])) is not None]),
        "csat": csat_summary([x["csat"] for x in facts if x["csat"] is not None]),
        "nps": nps_summary([x["nps"] for x in facts if x["nps"] is not None]),
        "questions": len(questions), "unanswered": n_unanswered, "unanswered_rate": _rate(n_unanswered, len(questions)),
        "top_unanswered": [{"question": q, "count": c} for q, c in unanswered[:TOP_UNANSWERED]],
        "unanswered_other": {"questions": len(rest), "count": sum(c for _, c in rest)},
        "by_channel": dict(Counter(x["channel"] for x in facts).most_common()),
        "by_language": dict(Counter(x["language"] or "unknown" for x in facts).most_common()),
        "daily": days,
    }


async def customer_counts(session: AsyncSession, f: Filters | None = None) -> list[dict]:
    q = select(CustomerCount).order_by(CustomerCount.period_start, CustomerCount.period_end)
    if f is not None:  # the periods that overlap the dashboard's
        q = q.where(CustomerCount.period_start <= f.end.isoformat(), CustomerCount.period_end >= f.start.isoformat())
    return [churn_of(r) for r in (await session.execute(q)).scalars()]


async def compute(session: AsyncSession, f: Filters) -> dict:
    facts = await conversation_facts(session, f)
    out = aggregate(facts, f)
    out["churn"] = await customer_counts(session, f)
    return out

