"""The public help centre: GET /help/{locale}/{group} shows the published version of an article,
the page the bot's answers link to (knowledge_base.articles.Article.link).

- The text is the article's PUBLISHED version from the editors' database (a draft never shows).
- Markdown is rendered with markdown-it (CommonMark) with raw HTML disabled: script or HTML an
  editor typed is shown as text; links with unsafe schemes (javascript:, data:...) are not linked.
- When the group has no published article in the asked locale but has one in another, the answer
  is a 302 to it (English first); otherwise 404 with a short page in the asked language.
- Pages carry the same security headers as the inbox (CSP without inline scripts or styles).
"""
from __future__ import annotations

import html

from aiohttp import web
from markdown_it import MarkdownIt
from sqlalchemy import select

from .. import keys
from ..i18n import LANGUAGES, t
from ..store.editor_models import KbArticle, KbArticleVersion

_md = MarkdownIt("commonmark", {"html": False, "linkify": False})

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {centre}</title></head>
<body><main>
<p><small>{centre}</small></p>
<h1>{title}</h1>
{body}
{others}
</main></body></html>
"""


def _headers() -> dict[str, str]:
    from ..staff.pages import SECURITY_HEADERS

    return {**SECURITY_HEADERS, "Cache-Control": "no-cache"}


def _lang(locale: str) -> str:
    base = locale.split("-")[0].lower()
    return base if base in LANGUAGES else "en"


async def article_page(request: web.Request) -> web.Response:
    locale, group = request.match_info["locale"], request.match_info["group"]
    async with request.app[keys.SESSIONMAKER]() as session:
        rows = (await session.execute(
            select(KbArticle, KbArticleVersion)
            .join(KbArticleVersion, (KbArticleVersion.article_pk == KbArticle.id)
                  & (KbArticleVersion.number == KbArticle.published_version))
            .where(KbArticle.group_id == group, KbArticle.status == "published"))).all()
    by_locale = {a.locale: v for a, v in rows}
    lang = _lang(locale)
    if locale not in by_locale:
        if by_locale:
            target = "en" if "en" in by_locale else sorted(by_locale)[0]
            raise web.HTTPFound(f"/help/{target}/{group}")
        text = html.escape(t("help_not_found", lang))
        return web.Response(status=404, content_type="text/html", headers=_headers(),
                            text=PAGE.format(lang=lang, title=text, centre=html.escape(t("help_centre", lang)),
                                             body="", others=""))
    version = by_locale[locale]
    others = [loc for loc in sorted(by_locale) if loc != locale]
    links = " ".join(f'<a href="/help/{html.escape(o)}/{html.escape(group)}" hreflang="{html.escape(o)}">'
                     f'{html.escape(o)}</a>' for o in others)
    return web.Response(content_type="text/html", headers=_headers(), text=PAGE.format(
        lang=html.escape(locale), title=html.escape(version.title), centre=html.escape(t("help_centre", lang)),
        body=_md.render(version.body),
        others=f"<p>{html.escape(t('help_other_languages', lang))} {links}</p>" if others else ""))


def routes() -> list[web.RouteDef]:
    return [web.get("/help/{locale}/{group}", article_page)]
