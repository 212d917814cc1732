"""Articles, versions, reviews and the audit log in the gateway database: the knowledge base's source
of truth. Pure database work (no HTTP, no index): every function runs in the caller's session and
does not commit, so a caller can make a change, update the index, and commit or roll back as one.

Workflow of the head version: draft -> in_review -> published -> archived; any edit makes a new draft
head (a published version stays live until another one is published or it is unpublished).
Version numbers are optimistic-concurrency tokens: a save names the version it edited, and the
conditional ``UPDATE ... WHERE head_version = :base`` lets exactly one of two concurrent saves win.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge_base.articles import Article

from ..clock import aware
from ..staff.actor import Actor
from ..store.models import Agent, KbArticle, KbArticleVersion, KbAuditEntry, KbReview

STATUSES = ("draft", "in_review", "published", "archived")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
TAG_RE = re.compile(r"^[\w][\w .-]{0,39}$")
CONTENT = ("title", "body", "questions", "tags")
MAX_BODY_CHARS = 100_000


class EditorError(Exception):
    """A refused request: HTTP status, a message naming the field or status, extra JSON fields."""

    def __init__(self, http_status: int, message: str, /, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = http_status, message, extra


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    return aware(dt).isoformat() if dt is not None else None


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return s or "article"


# --- validation -----------------------------------------------------------------------------------

def clean_content(data: dict, partial: bool = False) -> dict:
    """The content fields of a request body, validated (400 naming the field)."""
    out = {}
    for key in CONTENT:
        if key not in data or data[key] is None:
            if not partial and key in ("title", "body"):
                raise EditorError(400, f"'{key}' is required", field=key)
            continue
        val = data[key]
        if "\\u0000" in json.dumps(val):  # PostgreSQL cannot store NUL in text
            raise EditorError(400, f"'{key}' contains a NUL character", field=key)
        if key in ("title", "body"):
            if not isinstance(val, str) or not val.strip():
                raise EditorError(400, f"'{key}' must be a non-empty string", field=key)
            limit = 500 if key == "title" else MAX_BODY_CHARS
            if len(val) > limit:
                raise EditorError(400, f"'{key}' is longer than {limit} characters", field=key)
            out[key] = val.strip()
        else:
            if isinstance(val, str) and key == "tags":
                val = [t.strip() for t in val.split(",") if t.strip()]
            if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
                raise EditorError(400, f"'{key}' must be a list of strings", field=key)
            items = [x.strip() for x in val if x.strip()]
            if len(items) > 50:
                raise EditorError(400, f"'{key}' has more than 50 items", field=key)
            if key == "tags":
                bad = [t for t in items if not TAG_RE.match(t)]
                if bad:
                    raise EditorError(400, f"invalid tag {bad[0]!r}: letters, digits, ' ', '.', '_', '-' (up to 40)",
                                      field="tags")
            elif any(len(q) > 500 for q in items):
                raise EditorError(400, "each of 'questions' must be at most 500 characters", field="questions")
            out[key] = list(dict.fromkeys(items))
    return out


def check_id(value: object, key: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise EditorError(400, f"invalid '{key}' {value!r}: 1-128 letters, digits, '.', '_' or '-' "
                               "(starting with a letter or digit)", field=key)
    return value


def check_locale(value: object) -> str:
    if not isinstance(value, str) or not LOCALE_RE.match(value):
        raise EditorError(400, f"invalid 'locale' {value!r}: use a code like 'en' or 'pt-BR'", field="locale")
    return value


# --- reading --------------------------------------------------------------------------------------

async def get_article(session: AsyncSession, article_id: str) -> KbArticle:
    art = (await session.execute(select(KbArticle).where(KbArticle.article_id == article_id))).scalar_one_or_none()
    if art is None:
        raise EditorError(404, f"no article {article_id!r}")
    return art


async def get_version(session: AsyncSession, art: KbArticle, number: int) -> KbArticleVersion:
    v = (await session.execute(select(KbArticleVersion).where(
        KbArticleVersion.article_pk == art.id, KbArticleVersion.number == number))).scalar_one_or_none()
    if v is None:
        raise EditorError(404, f"article {art.article_id!r} has no version {number}")
    return v


async def list_versions(session: AsyncSession, art: KbArticle) -> list[KbArticleVersion]:
    return list((await session.execute(select(KbArticleVersion).where(KbArticleVersion.article_pk == art.id)
                                       .order_by(KbArticleVersion.number.desc()))).scalars())


async def people(session: AsyncSession, ids) -> dict[int, dict]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = (await session.execute(select(Agent).where(Agent.id.in_(ids)))).scalars()
    return {a.id: {"id": a.public_id, "name": a.name, "email": a.email} for a in rows}


def version_dict(v: KbArticleVersion, who: dict[int, dict]) -> dict:
    return {"number": v.number, "title": v.title, "body": v.body, "questions": list(v.questions or []),
            "tags": list(v.tags or []), "author": who.get(v.author_id), "created_at": iso(v.created_at),
            "note": v.note}


async def reviews_of(session: AsyncSession, art: KbArticle) -> list[KbReview]:
    return list((await session.execute(select(KbReview).where(KbReview.article_pk == art.id)
                                       .order_by(KbReview.id))).scalars())


def approved(head: KbArticleVersion, reviews: list[KbReview]) -> bool:
    """The head version has an approval by someone other than its author (and no later rejection)."""
    verdicts = [r for r in reviews if r.version == head.number]
    return bool(verdicts) and verdicts[-1].decision == "approved" and verdicts[-1].reviewer_id != head.author_id


def publish_blocker(art: KbArticle, head: KbArticleVersion, reviews: list[KbReview],
                    require_approval: bool) -> tuple[int, str] | None:
    """Why the head cannot be published now (status, message), or None."""
    if art.status == "archived":
        return 422, "cannot publish: the article is archived (edit it or roll back to make a draft first)"
    if art.published_version == art.head_version and art.status == "published":
        return 422, "cannot publish: the latest version is published already"
    if require_approval:
        if art.status != "in_review":
            return 422, f"cannot publish: the article is {art.status} (submit it for review first)"
        if not approved(head, reviews):
            return 422, "cannot publish: the latest version needs an approval by a second editor"
    return None


async def group_locales(session: AsyncSession, groups) -> dict[str, list[str]]:
    rows = (await session.execute(select(KbArticle.group_id, KbArticle.locale).where(
        KbArticle.group_id.in_(set(groups)), KbArticle.status != "archived"))).all()
    out: dict[str, set] = {}
    for g, loc in rows:
        out.setdefault(g, set()).add(loc)
    return {g: sorted(v) for g, v in out.items()}


def summary_dict(art: KbArticle, locales: list[str], languages, who: dict[int, dict],
                 is_approved: bool | None = None) -> dict:
    return {"id": art.article_id, "group": art.group_id, "locale": art.locale, "status": art.status,
            "title": art.title, "tags": list(art.tags or []), "head_version": art.head_version,
            "published_version": art.published_version, "live": art.published_version is not None,
            "publish_at": iso(art.publish_at), "updated_at": iso(art.updated_at),
            "updated_by": who.get(art.updated_by), "group_locales": locales,
            "missing_locales": [lang for lang in languages if lang not in locales],
            **({"approved": is_approved} if is_approved is not None else {})}


@dataclass
class Filters:
    locale: str | None = None
    status: str | None = None
    tag: str | None = None
    q: str | None = None
    missing: str | None = None
    live: bool | None = None
    limit: int = 100
    offset: int = 0
    extra: dict = field(default_factory=dict)


async def list_articles(session: AsyncSession, f: Filters, languages) -> tuple[list[dict], int]:
    stmt = select(KbArticle)
    if f.locale:
        stmt = stmt.where(KbArticle.locale == f.locale)
    if f.status:
        stmt = stmt.where(KbArticle.status == f.status)
    if f.live is not None:
        stmt = stmt.where(KbArticle.published_version.is_not(None) if f.live else KbArticle.published_version.is_(None))
    if f.q:
        like = f"%{f.q.lower()}%"
        stmt = stmt.where(func.lower(KbArticle.title).like(like) | func.lower(KbArticle.article_id).like(like))
    arts = list((await session.execute(stmt.order_by(KbArticle.group_id, KbArticle.locale))).scalars())
    if f.tag:
        arts = [a for a in arts if f.tag in (a.tags or [])]
    locales = await group_locales(session, [a.group_id for a in arts]) if arts else {}
    if f.missing:
        arts = [a for a in arts if f.missing not in locales.get(a.group_id, [])]
    total = len(arts)
    page = arts[f.offset:f.offset + f.limit]
    who = await people(session, [a.updated_by for a in page])
    return [summary_dict(a, locales.get(a.group_id, []), languages, who) for a in page], total


async def published_articles(session: AsyncSession) -> list[Article]:
    """The live set: every article's published version (what the index is built from)."""
    rows = (await session.execute(select(KbArticle, KbArticleVersion).join(
        KbArticleVersion, (KbArticleVersion.article_pk == KbArticle.id)
        & (KbArticleVersion.number == KbArticle.published_version)))).all()
    return [Article(id=a.article_id, title=v.title, body=v.body, locale=a.locale, group=a.group_id,
                    tags=tuple(v.tags or ()), status="published", questions=tuple(v.questions or ()))
            for a, v in sorted(rows, key=lambda r: r[0].article_id)]


# --- writing --------------------------------------------------------------------------------------

async def audit(session: AsyncSession, actor: Actor | None, action: str, article_id: str | None,
                version: int | None = None, **details) -> None:
    session.add(KbAuditEntry(actor_id=actor.id if actor else None, action=action, article_id=article_id,
                             version=version, details=details, created_at=utcnow()))


async def create_article(session: AsyncSession, actor: Actor | None, data: dict, note: str = "created") -> KbArticle:
    content = clean_content(data)
    locale = check_locale(data.get("locale"))
    group = check_id(data.get("group") or slug(content["title"]), "group")
    article_id = check_id(data.get("id") or f"{group}-{locale}", "id")
    if (await session.execute(select(KbArticle.id).where(KbArticle.article_id == article_id))).first():
        raise EditorError(409, f"an article with the id {article_id!r} exists already", field="id")
    await _check_group_free(session, group, locale, None)
    now = utcnow()
    art = KbArticle(article_id=article_id, group_id=group, locale=locale, status="draft",
                    tags=content.get("tags", []), title=content["title"], head_version=1, created_at=now,
                    updated_at=now, updated_by=actor.id if actor else None)
    session.add(art)
    await session.flush()
    session.add(KbArticleVersion(article_pk=art.id, number=1, title=content["title"], body=content["body"],
                                 questions=content.get("questions", []), tags=content.get("tags", []),
                                 author_id=actor.id if actor else None, note=note, created_at=now))
    await audit(session, actor, "create", article_id, 1, group=group, locale=locale)
    return art


async def _check_group_free(session: AsyncSession, group: str, locale: str, own_pk: int | None) -> None:
    other = (await session.execute(select(KbArticle.article_id).where(
        KbArticle.group_id == group, KbArticle.locale == locale, KbArticle.id != (own_pk or -1)))).scalar()
    if other:
        raise EditorError(409, f"the translation group {group!r} has a {locale!r} article already: {other}",
                          field="group")


async def save_version(session: AsyncSession, actor: Actor | None, art: KbArticle, base_version: int | None,
                       changes: dict, note: str = "edited") -> bool:
    """A new head version with ``changes`` over the head's content (status -> draft; a scheduled publish
    is cancelled). ``base_version`` None skips the concurrency check (imports). False when nothing changed."""
    if base_version is not None and base_version != art.head_version:
        raise EditorError(409, f"the article was changed meanwhile: you edited version {base_version}, "
                               f"the latest is {art.head_version}", current_version=art.head_version)
    head = await get_version(session, art, art.head_version)
    content = {k: getattr(head, k) for k in CONTENT}
    new = {**content, **changes}
    if all(new[k] == content[k] for k in CONTENT) and art.status != "archived":
        return False
    number = art.head_version + 1
    res = await session.execute(update(KbArticle).where(KbArticle.id == art.id,
                                                        KbArticle.head_version == art.head_version)
                                .values(head_version=number, status="draft", title=new["title"], tags=new["tags"],
                                        publish_at=None, scheduled_by=None, updated_at=utcnow(),
                                        updated_by=actor.id if actor else None)
                                .execution_options(synchronize_session=False))
    if res.rowcount != 1:
        await session.refresh(art)
        raise EditorError(409, f"the article was changed meanwhile: the latest version is {art.head_version}",
                          current_version=art.head_version)
    if art.publish_at is not None:
        await audit(session, actor, "schedule_cancelled", art.article_id, art.head_version, reason="edited")
    session.add(KbArticleVersion(article_pk=art.id, number=number, author_id=actor.id if actor else None,
                                 note=note, created_at=utcnow(), **new))
    await audit(session, actor, "edit" if note == "edited" else note.split(" ")[0], art.article_id, number,
                fields=[k for k in CONTENT if new[k] != content[k]], note=note)
    await session.refresh(art)
    return True


async def transition(session: AsyncSession, actor: Actor | None, art: KbArticle, action: str,
                     allowed_from: tuple[str, ...], to_status: str, **values) -> None:
    """One conditional status change (the head must still be the one the caller checked)."""
    if art.status not in allowed_from:
        raise EditorError(422, f"cannot {action}: the article is {art.status}"
                               f" (allowed from {', '.join(allowed_from)})", status=art.status)
    res = await session.execute(update(KbArticle).where(
        KbArticle.id == art.id, KbArticle.head_version == art.head_version, KbArticle.status == art.status)
        .values(status=to_status, updated_at=utcnow(), updated_by=actor.id if actor else None, **values)
        .execution_options(synchronize_session=False))
    if res.rowcount != 1:
        raise EditorError(409, "the article was changed meanwhile: reload it", current_version=art.head_version)
    await session.refresh(art)


async def review(session: AsyncSession, actor: Actor, art: KbArticle, decision: str, comment: str | None) -> None:
    if art.status != "in_review":
        raise EditorError(422, f"cannot {'approve' if decision == 'approved' else 'reject'}: the article is "
                               f"{art.status} (it must be in_review)", status=art.status)
    head = await get_version(session, art, art.head_version)
    if decision == "approved" and head.author_id == actor.id:
        raise EditorError(403, "you wrote the latest version: a second editor must approve it")
    session.add(KbReview(article_pk=art.id, version=art.head_version, decision=decision, comment=comment,
                         reviewer_id=actor.id, created_at=utcnow()))
    if decision == "rejected":
        await transition(session, actor, art, "reject", ("in_review",), "draft")
    await audit(session, actor, "approve" if decision == "approved" else "reject", art.article_id,
                art.head_version, comment=comment)


async def set_group(session: AsyncSession, actor: Actor, art: KbArticle, group: str) -> None:
    group = check_id(group, "group")
    await _check_group_free(session, group, art.locale, art.id)
    old = art.group_id
    art.group_id, art.updated_at, art.updated_by = group, utcnow(), actor.id
    await audit(session, actor, "link_translation", art.article_id, art.head_version, group=group, previous=old)
