"""The editors' page: GET /editor (one HTML page, sign-in form included) and its static files
under /editor/static/{name}, with the inbox's security headers (CSP without inline code). The page
talks to /api/editor with the inbox's session cookie and CSRF token; it shows "no access" to
accounts that are neither editor nor admin (the API refuses them anyway)."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..inbox.views import SECURITY_HEADERS

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "editor"
STATIC_FILES = {"editor.js": "application/javascript", "editor.css": "text/css", "texts.json": "application/json"}


async def page(request: web.Request) -> web.Response:
    return web.Response(body=(WEB_DIR / "index.html").read_bytes(), content_type="text/html", charset="utf-8",
                        headers=SECURITY_HEADERS)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.Response(body=(WEB_DIR / name).read_bytes(), content_type=STATIC_FILES[name], charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def routes() -> list[web.RouteDef]:
    return [web.get("/editor", page), web.get("/editor/static/{name}", static)]
