"""The public help-centre pages the bot's answers link to: the published version only, Markdown
rendered with raw HTML shown as text, a missing translation redirects to one that exists, 404 otherwise."""
from __future__ import annotations

import aiohttp
from sqlalchemy import select

from bot.editor import store
from bot.keys import SESSIONMAKER
from bot.store.editor_models import KbArticle

from ..inbox.conftest import assistant, gateway  # noqa: F401  (fixtures)


async def fetch(gw, path: str):
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url + path, allow_redirects=False) as r:
            return r.status, r.headers, await r.text()


async def test_a_seeded_article_is_shown_with_its_translations(gateway):  # noqa: F811
    status, headers, page = await fetch(gateway, "/help/en/cancel-subscription")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<h1>How do I cancel my subscription?</h1>" in page
    assert "<strong>Account → Subscription → Cancel subscription</strong>" in page  # Markdown rendered
    assert 'href="/help/de/cancel-subscription"' in page and "frame-ancestors 'none'" in headers[
        "Content-Security-Policy"]
    status, _, page = await fetch(gateway, "/help/de/cancel-subscription")
    assert status == 200 and 'lang="de"' in page and "Auch auf:" in page


async def test_only_the_published_version_shows_and_html_is_text(gateway):  # noqa: F811
    async with gateway.app[SESSIONMAKER]() as session:
        art = await store.create_article(session, None, {
            "locale": "en", "group": "xss-test", "title": "Evil <script>alert(1)</script>",
            "body": "Hello <img src=x onerror=alert(1)> [click](javascript:alert(1)) [ok](/help/en/x)"})
        await session.commit()
    status, _, page = await fetch(gateway, "/help/en/xss-test")
    assert status == 404 and "no longer published" in page, "a draft is not public"
    async with gateway.app[SESSIONMAKER]() as session:  # published without the index (not needed here)
        row = (await session.execute(select(KbArticle).where(KbArticle.id == art.id))).scalar_one()
        row.status, row.published_version = "published", row.head_version
        await session.commit()
    status, _, page = await fetch(gateway, "/help/en/xss-test")
    assert status == 200
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript:' not in page and 'href="/help/en/x"' in page


async def test_a_missing_translation_redirects_and_an_unknown_article_is_404(gateway):  # noqa: F811
    status, headers, _ = await fetch(gateway, "/help/ja/no-such-group")
    assert status == 404
    async with gateway.app[SESSIONMAKER]() as session:
        groups = {}
        for a in (await session.execute(select(KbArticle).where(KbArticle.status == "published"))).scalars():
            groups.setdefault(a.group_id, set()).add(a.locale)
    only_en = next(g for g, ls in sorted(groups.items()) if ls == {"en"})  # no Japanese translation
    status, headers, _ = await fetch(gateway, f"/help/ja/{only_en}")
    assert status == 302 and headers["Location"] == f"/help/en/{only_en}"
