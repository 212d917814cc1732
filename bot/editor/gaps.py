"""What customers asked that the knowledge base could not answer, for editors.

GET /api/editor/gaps?days=N (the period, 1-365, default 30) answers
  {"period_days", "questions": n, "topics": [{"key", "label", "count", "languages", "examples"}],
   "never_shown": [{"id", "group", "locale", "title"}], "collisions": [{"groups": [a, b], "count", "how"}]}
POST /api/editor/gaps/draft {"questions": [...], "locale"?} -> 201 {"article"}: a draft whose title is
  the first question and whose "also asked as" are the rest (the editor writes the answer).

Where the numbers come from (the conversation events the gateway stores from the bot, bot/router.py):
- a gap question is the customer's question of a ``kb_answer`` event with decision ``handoff`` (the
  knowledge base did not know), or of the last ``kb_answer`` before a ``kb_feedback`` with
  ``helpful: false`` (answered, but the customer said it did not help), within the period;
- topics: those questions clustered with the multilingual encoder (vectors from the action server's
  internal /kb/embed; knowledge_base.clustering), largest first;
- never shown: published articles whose group was not the answer (decision answer, chosen or
  next_best) of any ``kb_answer`` in the period;
- collisions: pairs of groups offered together as clarify candidates (the top two), or answered and
  then followed, after a "did not help", by the other one (next_best); ranked by count.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
from aiohttp import web
from sqlalchemy import select

from ..store.models import Conversation, ConversationEvent, KbArticle
from . import store
from .publishing import KbUnavailable, client
from .store import EditorError
from .views import actor, article_response, editor_route, json_body, ok, sessionmaker

ANSWERED = ("answer", "chosen", "next_best")
MAX_QUESTIONS = 2000


def period(request: web.Request) -> int:
    raw = request.query.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 365:
        raise EditorError(400, "'days' must be a whole number from 1 to 365", field="days")
    return int(raw)


async def collect(session, since: datetime) -> dict:
    rows = (await session.execute(
        select(ConversationEvent, Conversation.language).join(Conversation, Conversation.id == ConversationEvent.conversation_id)
        .where(ConversationEvent.created_at >= since, ConversationEvent.type.in_(("kb_answer", "kb_feedback")))
        .order_by(ConversationEvent.conversation_id, ConversationEvent.id))).all()
    questions: list[tuple[str, str | None]] = []
    shown: set[str] = set()
    pairs: Counter = Counter()
    how: dict[tuple, set] = {}
    last: dict[int, dict] = {}  # conversation -> its last kb_answer
    unhelpful_group: dict[int, str] = {}
    for ev, lang in rows:
        d = ev.data or {}
        groups = [a.get("group") for a in d.get("articles") or [] if isinstance(a, dict) and a.get("group")]
        if ev.type == "kb_answer":
            decision = d.get("decision")
            if decision in ANSWERED and groups:
                shown.add(groups[0])
            if decision == "handoff" and d.get("query"):
                questions.append((str(d["query"]), lang))
            if decision == "clarify" and len(groups) >= 2:
                key = tuple(sorted(groups[:2]))
                pairs[key] += 1
                how.setdefault(key, set()).add("clarify")
            if decision == "next_best" and groups and ev.conversation_id in unhelpful_group \
                    and unhelpful_group[ev.conversation_id] != groups[0]:
                key = tuple(sorted((unhelpful_group.pop(ev.conversation_id), groups[0])))
                pairs[key] += 1
                how.setdefault(key, set()).add("not_helpful_then_next_best")
            last[ev.conversation_id] = d
        elif ev.type == "kb_feedback" and d.get("helpful") is False:
            prev = last.get(ev.conversation_id) or {}
            if prev.get("query"):
                questions.append((str(prev["query"]), lang))
            if d.get("group"):
                unhelpful_group[ev.conversation_id] = d["group"]
    return {"questions": questions[-MAX_QUESTIONS:], "shown": shown, "pairs": pairs, "how": how}


def topic_key(examples: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(examples)).encode()).hexdigest()[:12]


@editor_route
async def gaps(request: web.Request) -> web.Response:
    from knowledge_base.clustering import cluster_texts

    days = period(request)
    since = datetime.now(timezone.utc) - timedelta(days=days)
    async with sessionmaker(request)() as session:
        found = await collect(session, since)
        live = (await session.execute(select(KbArticle).where(KbArticle.published_version.is_not(None))
                                      .order_by(KbArticle.group_id, KbArticle.locale))).scalars().all()
    texts = [q for q, _ in found["questions"]]
    topics = []
    if texts:
        try:
            vectors = np.asarray(await client(request.app).embed(texts), dtype=np.float32)
        except KbUnavailable as exc:
            raise EditorError(503, f"the questions could not be grouped into topics: {exc}") from None
        for t in cluster_texts(vectors, texts, [lang for _, lang in found["questions"]]):
            questions = [texts[i] for i in t.indices]
            topics.append({"key": topic_key(questions), "label": t.label, "count": t.count,
                           "languages": t.languages, "examples": t.examples,
                           "questions": list(dict.fromkeys(questions))[:50]})
    never = [{"id": a.article_id, "group": a.group_id, "locale": a.locale, "title": a.title}
             for a in live if a.group_id not in found["shown"]]
    collisions = [{"groups": list(k), "count": n, "how": sorted(found["how"][k])}
                  for k, n in found["pairs"].most_common(50)]
    return ok({"period_days": days, "questions": len(texts), "topics": topics, "never_shown": never,
               "collisions": collisions})


@editor_route
async def draft_from_topic(request: web.Request) -> web.Response:
    body = await json_body(request)
    questions = body.get("questions")
    if not isinstance(questions, list) or not questions or not all(isinstance(q, str) and q.strip() for q in questions):
        raise EditorError(400, "'questions' must be a non-empty list of questions", field="questions")
    questions = list(dict.fromkeys(q.strip() for q in questions))[:50]
    locale = body.get("locale") or "en"
    data = {"locale": locale, "title": questions[0][:500], "questions": questions[1:],
            "body": "(Write the answer here.)", "tags": ["from-gaps"]}
    async with sessionmaker(request)() as session:
        art = await store.create_article(session, actor(request), data, note="created from a gaps topic")
        await session.commit()
        article_id = art.article_id
    return await article_response(request, article_id, 201)
