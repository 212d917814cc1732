"""The editors' JSON API under /api/editor: reading, editing and reviewing (publishing and the other
changes to what customers see: bot/editor/live.py; route table and OpenAPI document: bot/editor/routes.py).

Every route needs a signed-in account with the editor or admin role (the inbox's session cookie;
401/403) and, on POST/PUT, the session's CSRF token in X-CSRF-Token. Errors are
``{"error": message, ...}``: 400 (bad JSON or field, named), 404, 409 (a stale base version, with
``current_version``), 413, 415, 422 (a workflow step the status does not allow, with ``status``),
503 (the action server could not update the index: nothing was changed).
"""
from __future__ import annotations

import difflib
import functools
import json

from aiohttp import web
from sqlalchemy import select

from .. import keys
from ..staff import auth
from ..staff.auth import SIGNED
from ..store.models import KbArticle, KbAuditEntry
from . import store
from .store import EditorError

EDITOR_ROLES = ("editor", "admin")
MAX_JSON_BYTES = 2 * 1024 * 1024


def dumps(o) -> str:
    return json.dumps(o, ensure_ascii=False)


def ok(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps, headers={"Cache-Control": "no-store"})


def editor_route(handler):
    """Signed-in editor or admin (CSRF on changes); EditorError -> its JSON error."""

    @auth.require(EDITOR_ROLES)
    @functools.wraps(handler)
    async def inner(request: web.Request):
        try:
            return await handler(request)
        except EditorError as exc:
            return web.json_response({"error": exc.message, **exc.extra}, status=exc.status)

    return inner


async def read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length and request.content_length > limit:
        raise EditorError(413, f"the body is larger than {limit // (1024 * 1024)} MiB")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise EditorError(413, f"the body is larger than {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: web.Request) -> dict:
    raw = await read_limited(request, MAX_JSON_BYTES)
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise EditorError(415, "send the body as application/json")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EditorError(400, f"the body is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    except RecursionError:
        raise EditorError(400, "the body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise EditorError(400, "the body must be a JSON object")
    return body


MAX_INT = 2**31 - 1


def int_field(value, name: str, required: bool = True) -> int | None:
    """A whole number from JSON or a string (an If-Match value may be quoted), 0 to 2^31-1."""
    if value is None and not required:
        return None
    if isinstance(value, str) and value.strip().strip('W/"').isdigit() and len(value) < 20:
        value = int(value.strip().strip('W/"'))
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise EditorError(400, f"'{name}' must be a whole number from 0 to {MAX_INT}", field=name)
    return value


def required_text(body: dict, key: str, hint: str = "", limit: int = 2000) -> str:
    """A non-empty string field of the body, stripped (400 naming the field otherwise)."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise EditorError(400, f"'{key}' is required{hint}", field=key)
    if len(value) > limit:
        raise EditorError(400, f"'{key}' is longer than {limit} characters", field=key)
    return value.strip()


def actor(request: web.Request):
    return request[SIGNED].actor


def sessionmaker(request: web.Request):
    return request.app[keys.SESSIONMAKER]


async def detail(session, art: KbArticle, settings) -> dict:
    head = await store.get_version(session, art, art.head_version)
    published = await store.get_version(session, art, art.published_version) if art.published_version else None
    reviews = await store.reviews_of(session, art)
    siblings = list((await session.execute(select(KbArticle).where(
        KbArticle.group_id == art.group_id, KbArticle.id != art.id).order_by(KbArticle.locale))).scalars())
    who = await store.people(session, [head.author_id, art.updated_by, *(r.reviewer_id for r in reviews),
                                       published.author_id if published else None])
    locales = sorted({art.locale, *(s.locale for s in siblings if s.status != "archived")})
    blocker = store.publish_blocker(art, head, reviews, settings.editor_require_approval)
    return {**store.summary_dict(art, locales, settings.languages, who, store.approved(head, reviews)),
            "head": store.version_dict(head, who),
            "published": store.version_dict(published, who) if published else None,
            "translations": [{"id": s.article_id, "locale": s.locale, "status": s.status, "title": s.title,
                              "live": s.published_version is not None} for s in siblings],
            "reviews": [{"version": r.version, "decision": r.decision, "comment": r.comment,
                         "by": who.get(r.reviewer_id), "at": store.iso(r.created_at)} for r in reviews],
            "can_publish": blocker is None, "publish_blocker": blocker[1] if blocker else None}


async def article_response(request: web.Request, article_id: str, status: int = 200, **extra) -> web.Response:
    async with sessionmaker(request)() as session:
        art = await store.get_article(session, article_id)
        return ok({"article": await detail(session, art, request.app[keys.SETTINGS]), **extra}, status)


async def committed(request: web.Request, change) -> None:
    """Run ``change(session, art)`` on the article of the URL and commit."""
    async with sessionmaker(request)() as session:
        art = await store.get_article(session, request.match_info["id"])
        await change(session, art)
        await session.commit()


# --- reading ------------------------------------------------------------------------------------------

@editor_route
async def meta(request: web.Request) -> web.Response:
    s = request.app[keys.SETTINGS]
    from ..staff.accounts import agent_dict

    return ok({"languages": list(s.languages), "statuses": list(store.STATUSES),
               "require_approval": s.editor_require_approval, "me": agent_dict(request[SIGNED].agent)})


@editor_route
async def list_articles(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status") or None
    if status and status not in store.STATUSES:
        raise EditorError(400, f"'status' must be one of {', '.join(store.STATUSES)}", field="status")
    live = {"true": True, "false": False, None: None, "": None}.get(q.get("live"), "bad")
    if live == "bad":
        raise EditorError(400, "'live' must be true or false", field="live")
    try:
        limit, offset = int(q.get("limit") or 100), int(q.get("offset") or 0)
    except ValueError:
        raise EditorError(400, "'limit' and 'offset' must be whole numbers", field="limit") from None
    f = store.Filters(locale=q.get("locale") or None, status=status, tag=q.get("tag") or None,
                      q=(q.get("q") or "").strip()[:200] or None, missing=q.get("missing") or None, live=live,
                      limit=max(1, min(limit, 1000)), offset=max(0, offset))
    async with sessionmaker(request)() as session:
        rows, total = await store.list_articles(session, f, request.app[keys.SETTINGS].languages)
    return ok({"articles": rows, "total": total})


@editor_route
async def get_article(request: web.Request) -> web.Response:
    return await article_response(request, request.match_info["id"])


@editor_route
async def versions(request: web.Request) -> web.Response:
    async with sessionmaker(request)() as session:
        art = await store.get_article(session, request.match_info["id"])
        rows = await store.list_versions(session, art)
        who = await store.people(session, [v.author_id for v in rows])
        return ok({"versions": [store.version_dict(v, who) for v in rows]})


@editor_route
async def version(request: web.Request) -> web.Response:
    number = int_field(request.match_info["n"], "n")
    async with sessionmaker(request)() as session:
        art = await store.get_article(session, request.match_info["id"])
        v = await store.get_version(session, art, number)
        return ok({"version": store.version_dict(v, await store.people(session, [v.author_id]))})


def unified_diff(a, b, na: int, nb: int) -> tuple[str, list[str]]:
    parts, changed = [], []
    for key in store.CONTENT:
        va, vb = getattr(a, key), getattr(b, key)
        la = (va if isinstance(va, list) else va.splitlines()) or []
        lb = (vb if isinstance(vb, list) else vb.splitlines()) or []
        if la != lb:
            changed.append(key)
            parts.extend(difflib.unified_diff(la, lb, f"{key} (version {na})", f"{key} (version {nb})", lineterm=""))
    return "\n".join(parts), changed


@editor_route
async def diff(request: web.Request) -> web.Response:
    async with sessionmaker(request)() as session:
        art = await store.get_article(session, request.match_info["id"])
        na = int_field(request.query.get("from") or (art.published_version or 1), "from")
        nb = int_field(request.query.get("to") or art.head_version, "to")
        a, b = await store.get_version(session, art, na), await store.get_version(session, art, nb)
    text, changed = unified_diff(a, b, na, nb)
    return ok({"from": na, "to": nb, "diff": text, "changed": changed})


@editor_route
async def audit_log(request: web.Request) -> web.Response:
    stmt = select(KbAuditEntry).order_by(KbAuditEntry.id.desc())
    if request.query.get("article_id"):
        stmt = stmt.where(KbAuditEntry.article_id == request.query["article_id"])
    if request.query.get("before"):
        stmt = stmt.where(KbAuditEntry.id < int_field(request.query["before"], "before"))
    limit = max(1, min(int_field(request.query.get("limit") or 100, "limit"), 500))
    async with sessionmaker(request)() as session:
        rows = list((await session.execute(stmt.limit(limit))).scalars())
        who = await store.people(session, [r.actor_id for r in rows])
    return ok({"entries": [{"id": r.id, "at": store.iso(r.created_at), "actor": who.get(r.actor_id),
                            "action": r.action, "article_id": r.article_id, "version": r.version,
                            "details": r.details or {}} for r in rows]})


# --- writing ------------------------------------------------------------------------------------------

@editor_route
async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    async with sessionmaker(request)() as session:
        art = await store.create_article(session, actor(request), body)
        await session.commit()
    return await article_response(request, art.article_id, 201)


def base_version(request: web.Request, body: dict) -> int:
    raw = body.get("base_version", request.headers.get("If-Match"))
    if raw is None:
        raise EditorError(400, "send the version you edited as 'base_version' (or the If-Match header)",
                          field="base_version")
    return int_field(raw, "base_version")


@editor_route
async def update_article(request: web.Request) -> web.Response:
    body = await json_body(request)
    base = base_version(request, body)
    changes = store.clean_content(body, partial=True)
    await committed(request, lambda s, art: store.save_version(s, actor(request), art, base, changes))
    return await article_response(request, request.match_info["id"])


@editor_route
async def rollback(request: web.Request) -> web.Response:
    body = await json_body(request)
    number = int_field(body.get("version"), "version")
    base = int_field(body.get("base_version"), "base_version", required=False)

    async def change(session, art):
        old = await store.get_version(session, art, number)
        await store.save_version(session, actor(request), art, base,
                                 {k: getattr(old, k) for k in store.CONTENT}, note=f"rollback to version {number}")
    await committed(request, change)
    return await article_response(request, request.match_info["id"])


@editor_route
async def submit(request: web.Request) -> web.Response:
    await json_body(request)

    async def change(session, art):
        await store.transition(session, actor(request), art, "submit for review", ("draft",), "in_review")
        await store.audit(session, actor(request), "submit", art.article_id, art.head_version)
    await committed(request, change)
    return await article_response(request, request.match_info["id"])


@editor_route
async def approve(request: web.Request) -> web.Response:
    body = await json_body(request)
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise EditorError(400, "'comment' must be a string", field="comment")
    await committed(request, lambda s, art: store.review(s, actor(request), art, "approved",
                                                        comment.strip()[:2000] if comment else None))
    return await article_response(request, request.match_info["id"])


@editor_route
async def reject(request: web.Request) -> web.Response:
    comment = required_text(await json_body(request), "comment", ": say what to change")
    await committed(request, lambda s, art: store.review(s, actor(request), art, "rejected", comment))
    return await article_response(request, request.match_info["id"])
