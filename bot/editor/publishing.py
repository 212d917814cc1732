"""How an editor's change reaches the bot: the gateway never embeds; it sends the FULL published set
to the action server's internal ``POST /kb/sync`` (actions/kb_admin.py), which builds and swaps in a
new index snapshot (only changed articles re-embedded) before it answers.

A change that alters what customers see runs as one database transaction around that call: change,
flush, read the published set, sync, then commit; when the action server cannot be reached the
transaction is rolled back and the request fails with 503, so the database and the index never
disagree because of a half-done publish. Because every sync carries the whole published set, any
drift (a crash between sync and commit, an index copied from elsewhere) is repaired by the next
sync; the gateway syncs once at start for that reason.

Also here: seeding the articles table from the articles folder (once, when it is empty), the
internal token, and the scheduler of timed publishing.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import keys
from ..staff.actor import Actor
from ..settings import Settings
from ..store.models import Agent, KbArticle, KbArticleVersion
from . import store
from .store import EditorError

log = logging.getLogger(__name__)

TOKEN_FILE = "internal_token"
SYNC_TIMEOUT = aiohttp.ClientTimeout(total=900)  # usually 1-3 s; a full rebuild can take minutes
TRY_TIMEOUT = aiohttp.ClientTimeout(total=60)
SCHEDULE_POLL_SECONDS = 5.0
PUBLISH_LOCK = web.AppKey("editor_publish_lock", asyncio.Lock)
EDITOR_TASKS = web.AppKey("editor_tasks", list)


def resolve_internal_token(settings: Settings) -> str:
    """INTERNAL_TOKEN, or the one generated once into VAR_DIR (so `make run` needs no setting)."""
    if settings.internal_token:
        return settings.internal_token
    path = Path(settings.var_dir) / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(f".{secrets.token_hex(4)}")
    tmp.write_text(token + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    try:
        path.hardlink_to(tmp)  # atomic "create if absent": two starting processes agree on one token
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return token


class KbUnavailable(Exception):
    pass


class KbClient:
    """The gateway's side of the action server's internal /kb routes."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str):
        self.http, self.base, self.token = http, base_url.rstrip("/"), token

    async def _post(self, path: str, body: dict, timeout) -> dict:
        try:
            async with self.http.post(self.base + path, json=body, timeout=timeout,
                                      headers={"Authorization": f"Bearer {self.token}"}) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {}
                if resp.status != 200:
                    raise KbUnavailable(f"the action server answered {resp.status}: "
                                        f"{(data or {}).get('error') or 'no detail'}")
                return data
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise KbUnavailable(f"the action server at {self.base} is unreachable "
                                f"({type(exc).__name__}: {exc})") from None

    async def sync(self, articles) -> dict:
        return await self._post("/kb/sync", {"articles": [a.to_dict() for a in articles]}, SYNC_TIMEOUT)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return (await self._post("/kb/embed", {"texts": texts}, TRY_TIMEOUT))["vectors"]

    async def sentiment(self, texts: list[str]) -> dict:
        return await self._post("/kb/sentiment", {"texts": texts}, TRY_TIMEOUT)

    async def try_question(self, question: str, language: str | None, draft: dict | None) -> dict:
        return await self._post("/kb/try", {"question": question, "language": language, "draft": draft},
                                TRY_TIMEOUT)


def client(app: web.Application) -> KbClient:
    s = app[keys.SETTINGS]
    return KbClient(app[keys.HTTP], s.action_server_url, resolve_internal_token(s))


async def changing_live_set(app: web.Application, change) -> tuple[object, dict]:
    """Run ``await change(session)`` and put the resulting published set live as one unit: commit only
    when the action server has the new index (503 and nothing changed otherwise)."""
    async with app[PUBLISH_LOCK]:
        async with app[keys.SESSIONMAKER]() as session:
            result = await change(session)
            await session.flush()
            articles = await store.published_articles(session)
            if not articles:
                await session.rollback()
                raise EditorError(422, "cannot take the last published article off-line: the bot needs at least one")
            try:
                sync = await client(app).sync(articles)
            except KbUnavailable as exc:
                await session.rollback()
                raise EditorError(503, f"the knowledge base could not be updated: {exc}; nothing was changed") from None
            await session.commit()
        # Another gateway replica may have committed its own change meanwhile, synced without ours:
        # the set is read again after the commit and sent once more when it differs.
        async with app[keys.SESSIONMAKER]() as session:
            final = await store.published_articles(session)
        if final != articles:
            try:
                sync = await client(app).sync(final)
            except KbUnavailable as exc:
                log.warning("editor: re-sync after a concurrent change failed (the next sync repairs it): %s", exc)
        return result, sync


# --- seeding ----------------------------------------------------------------------------------------

async def seed_if_empty(session: AsyncSession, articles_dir: Path) -> int:
    """Import the articles folder as version 1 (published ones published) when the table is empty."""
    if (await session.execute(select(func.count()).select_from(KbArticle))).scalar():
        return 0
    from knowledge_base.articles import load_source

    imported = load_source(articles_dir)
    for p in imported.problems:
        log.warning("knowledge base seed: skipped %s", p)
    now = store.utcnow()
    for a in imported.articles:
        art = KbArticle(article_id=a.id, group_id=a.group, locale=a.locale, status=a.status, tags=list(a.tags),
                        title=a.title, head_version=1, published_version=1 if a.status == "published" else None,
                        created_at=now, updated_at=now)
        session.add(art)
        await session.flush()
        session.add(KbArticleVersion(article_pk=art.id, number=1, title=a.title, body=a.body,
                                     questions=list(a.questions), tags=list(a.tags), author_id=None,
                                     note=f"imported from {articles_dir.name}", created_at=now))
    await store.audit(session, None, "seed", None, None, source=str(articles_dir), articles=len(imported.articles))
    try:
        await session.commit()
    except IntegrityError:  # another process seeded at the same moment
        await session.rollback()
        return 0
    return len(imported.articles)


async def seeded_published_set(settings: Settings) -> list:
    """For `python -m bot setup`/`run`: migrate, seed when empty, return the published set."""
    from ..store.db import make_engine, sessionmaker, upgrade

    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        async with sessionmaker(engine)() as session:
            await seed_if_empty(session, settings.kb.articles_dir)
            return await store.published_articles(session)
    finally:
        await engine.dispose()


# --- background: start-up sync and timed publishing ----------------------------------------------

async def startup_sync(app: web.Application) -> None:
    """Bring the index in line with the database once the action server answers (repairs drift)."""
    for attempt in range(300):
        try:
            async with app[PUBLISH_LOCK]:  # never overtake (and undo) an editor's publish
                async with app[keys.SESSIONMAKER]() as session:
                    articles = await store.published_articles(session)
                if not articles:
                    return
                out = await client(app).sync(articles)
            log.info("editor: start-up index sync: %s", out)
            return
        except KbUnavailable as exc:
            if "answered 404" in str(exc) or "answered 401" in str(exc):
                log.warning("editor: start-up index sync not possible: %s", exc)
                return
            await asyncio.sleep(2.0)


async def publish_due(app: web.Application) -> int:
    """Publish every article whose scheduled time has come (the approval was checked when scheduled)."""
    now = store.utcnow()
    async with app[keys.SESSIONMAKER]() as session:
        due = list((await session.execute(select(KbArticle.article_id, KbArticle.scheduled_by)
                                           .where(KbArticle.publish_at.is_not(None), KbArticle.publish_at <= now))).all())
    done = 0
    for article_id, by in due:
        async def change(session, article_id=article_id, by=by):
            art = await store.get_article(session, article_id)
            if art.publish_at is None:
                return None
            agent = await session.get(Agent, by) if by else None
            actor = Actor.of(agent) if agent else None
            await store.transition(session, actor, art, "publish", ("draft", "in_review"), "published",
                                   published_version=art.head_version, publish_at=None, scheduled_by=None)
            await store.audit(session, actor, "publish", article_id, art.head_version, scheduled=True)
            return art
        try:
            await changing_live_set(app, change)
            done += 1
        except EditorError as exc:
            log.warning("editor: scheduled publish of %s failed: %s", article_id, exc.message)
    return done


async def scheduler(app: web.Application) -> None:
    while True:
        await asyncio.sleep(SCHEDULE_POLL_SECONDS)
        try:
            await publish_due(app)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("editor: scheduled publishing failed")


async def background(app: web.Application):
    """cleanup_ctx: seed, then the start-up sync and the scheduler."""
    app[PUBLISH_LOCK] = asyncio.Lock()
    async with app[keys.SESSIONMAKER]() as session:
        n = await seed_if_empty(session, app[keys.SETTINGS].kb.articles_dir)
    if n:
        log.info("editor: seeded %d articles from %s", n, app[keys.SETTINGS].kb.articles_dir)
    tasks = [asyncio.create_task(startup_sync(app)), asyncio.create_task(scheduler(app))]
    app[EDITOR_TASKS] = tasks
    yield
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
