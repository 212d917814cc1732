"""The editors' page: GET /editor (one HTML page, sign-in form included) and its static files
under /editor/static/{name}, with the inbox's security headers (CSP without inline code). The page
talks to /api/editor with the inbox's session cookie and CSRF token; it shows "no access" to
accounts that are neither editor nor admin (the API refuses them anyway)."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..staff.pages import page_routes

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "editor"
STATIC_FILES = {"editor.js": "application/javascript", "editor.css": "text/css", "texts.json": "application/json"}


def routes() -> list[web.RouteDef]:
    return page_routes("/editor", WEB_DIR, STATIC_FILES)
