"""The editors' API routes that change what customers see: publish (now or at a time), cancel a
schedule, unpublish, archive, link translations. Each change to the live set goes through
``publishing.changing_live_set`` (one transaction around the index update; 503 and nothing changed
when the action server cannot be reached)."""
from __future__ import annotations

from datetime import datetime

from aiohttp import web

from .. import keys
from . import publishing, store
from .store import EditorError
from .views import actor, article_response, committed, editor_route, json_body, sessionmaker


def parse_time(raw) -> datetime:
    if not isinstance(raw, str):
        raise EditorError(400, "'publish_at' must be an ISO 8601 time with a time zone", field="publish_at")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise EditorError(400, f"'publish_at' is not an ISO 8601 time: {raw!r}", field="publish_at") from None
    if when.tzinfo is None:
        raise EditorError(400, "'publish_at' needs a time zone (e.g. 2026-12-01T08:00:00Z)", field="publish_at")
    if when <= store.utcnow():
        raise EditorError(400, "'publish_at' must be in the future (publish now without it)", field="publish_at")
    return when


@editor_route
async def publish(request: web.Request) -> web.Response:
    body = await json_body(request)
    when = parse_time(body["publish_at"]) if body.get("publish_at") is not None else None
    force = body.get("force") is True
    who, settings = actor(request), request.app[keys.SETTINGS]
    if force and not who.is_admin:
        raise EditorError(403, "only an admin may publish without the second editor's approval")

    async def check(session, art):
        head = await store.get_version(session, art, art.head_version)
        reviews = await store.reviews_of(session, art)
        blocker = store.publish_blocker(art, head, reviews, False)
        if blocker is None and settings.editor_require_approval:
            approval = store.publish_blocker(art, head, reviews, True)
            if approval is not None and not force:
                blocker = approval
            elif approval is not None:
                await store.audit(session, who, "approval_bypassed", art.article_id, art.head_version,
                                  reason=approval[1])
        if blocker:
            raise EditorError(blocker[0], blocker[1], status=art.status)

    article_id = request.match_info["id"]
    if when is not None:
        async def schedule(session, art):
            await check(session, art)
            art.publish_at, art.scheduled_by = when, who.id
            await store.audit(session, who, "schedule_publish", art.article_id, art.head_version,
                              publish_at=when.isoformat(), forced=force)
        await committed(request, schedule)
        return await article_response(request, article_id)

    async def change(session):
        art = await store.get_article(session, article_id)
        await check(session, art)
        await store.transition(session, who, art, "publish", ("draft", "in_review"), "published",
                               published_version=art.head_version, publish_at=None, scheduled_by=None)
        await store.audit(session, who, "publish", article_id, art.head_version, forced=force)
    _, sync = await publishing.changing_live_set(request.app, change)
    return await article_response(request, article_id, sync=sync)


@editor_route
async def cancel_schedule(request: web.Request) -> web.Response:
    await json_body(request)

    async def change(session, art):
        if art.publish_at is None:
            raise EditorError(422, "no publish is scheduled for this article", status=art.status)
        art.publish_at, art.scheduled_by = None, None
        await store.audit(session, actor(request), "schedule_cancelled", art.article_id, art.head_version)
    await committed(request, change)
    return await article_response(request, request.match_info["id"])


async def take_offline(request: web.Request, action: str) -> web.Response:
    await json_body(request)
    article_id, who = request.match_info["id"], actor(request)

    async def change(session):
        art = await store.get_article(session, article_id)
        if action == "unpublish" and art.published_version is None:
            raise EditorError(422, f"cannot unpublish: the article is not live (it is {art.status})", status=art.status)
        if action == "archive" and art.status == "archived":
            raise EditorError(422, "cannot archive: the article is archived already", status=art.status)
        new_status = "archived" if action == "archive" else ("draft" if art.status == "published" else art.status)
        was_live = art.published_version
        await store.transition(session, who, art, action, (art.status,), new_status, published_version=None,
                               publish_at=None, scheduled_by=None)
        await store.audit(session, who, action, article_id, art.head_version, was_live=was_live)
        return was_live

    async with sessionmaker(request)() as session:
        live = (await store.get_article(session, article_id)).published_version is not None
    if live:
        _, sync = await publishing.changing_live_set(request.app, change)
        return await article_response(request, article_id, sync=sync)
    async with sessionmaker(request)() as session:
        await change(session)
        await session.commit()
    return await article_response(request, article_id)


@editor_route
async def unpublish(request: web.Request) -> web.Response:
    return await take_offline(request, "unpublish")


@editor_route
async def archive(request: web.Request) -> web.Response:
    return await take_offline(request, "archive")


@editor_route
async def link_translation(request: web.Request) -> web.Response:
    body = await json_body(request)
    article_id = request.match_info["id"]

    async def change(session):
        art = await store.get_article(session, article_id)
        group = body.get("group")
        if body.get("translation_of") is not None:
            group = (await store.get_article(session, store.check_id(body["translation_of"], "translation_of"))).group_id
        if group is None:
            raise EditorError(400, "send 'group' or 'translation_of'", field="group")
        await store.set_group(session, actor(request), art, group)
        return art

    async with sessionmaker(request)() as session:
        live = (await store.get_article(session, article_id)).published_version is not None
    if live:  # the group is part of what the bot searches (translations count as one article)
        await publishing.changing_live_set(request.app, change)
    else:
        async with sessionmaker(request)() as session:
            await change(session)
            await session.commit()
    return await article_response(request, article_id)
