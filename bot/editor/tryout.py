"""``POST /api/editor/try``: what the bot would decide for a question now, and with a draft applied
(in memory, in the action server; nothing is published)."""
from __future__ import annotations

import asyncio

from aiohttp import web

from knowledge_base.language import detect

from .. import keys
from . import publishing, store
from .store import EditorError
from .views import editor_route, json_body, ok, required_text, sessionmaker

DRAFT_ID = "draft-preview"


async def draft_of(request: web.Request, body: dict) -> dict | None:
    if body.get("article_id") is not None:
        async with sessionmaker(request)() as session:
            art = await store.get_article(session, store.check_id(body["article_id"], "article_id"))
            head = await store.get_version(session, art, art.head_version)
        return {"id": art.article_id, "group": art.group_id, "locale": art.locale, "title": head.title,
                "body": head.body, "questions": list(head.questions or []), "tags": list(head.tags or [])}
    raw = body.get("draft")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise EditorError(400, "'draft' must be an object", field="draft")
    content = store.clean_content(raw)
    locale = store.check_locale(raw.get("locale"))
    article_id = store.check_id(raw.get("id") or DRAFT_ID, "draft.id")
    group = store.check_id(raw.get("group") or article_id, "draft.group")
    return {"id": article_id, "group": group, "locale": locale, "questions": [], "tags": [], **content}


def ranking(result: dict | None) -> list:
    return [(h["article_id"], h["group"]) for h in (result or {}).get("hits", [])[:3]]


@editor_route
async def try_question(request: web.Request) -> web.Response:
    body = await json_body(request)
    question = required_text(body, "question", limit=500)
    language = body.get("language") or None
    if language is not None and language not in request.app[keys.SETTINGS].languages:
        raise EditorError(400, f"'language' must be one of {', '.join(request.app[keys.SETTINGS].languages)}",
                          field="language")
    if language is None:  # detected as the gateway does for a customer's message
        languages = request.app[keys.SETTINGS].languages
        language = (await asyncio.get_running_loop().run_in_executor(
            None, lambda: detect(question, None, None, languages))).lang
    draft = await draft_of(request, body)
    try:
        out = await publishing.client(request.app).try_question(question, language, draft)
    except publishing.KbUnavailable as exc:
        raise EditorError(503, f"the knowledge base cannot be asked: {exc}") from None
    current, with_draft = out.get("current"), out.get("with_draft")
    changed = with_draft is not None and (current["decision"] != with_draft["decision"]
                                          or ranking(current) != ranking(with_draft))
    return ok({"question": question, "language": language, "current": current, "with_draft": with_draft,
               "changed": changed})
