"""The staff's pages (the inbox, the editors' workspace, the dashboard): each is one index.html served
with strict security headers, and its listed static files."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def static_route(url: str, web_dir: Path, files: dict[str, str]) -> web.RouteDef:
    """GET ``url``/{name}: one of the listed files of web_dir (anything else 404)."""
    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=(web_dir / name).read_bytes(), content_type=files[name], charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    return web.get(url + "/{name}", static)


def page_routes(url: str, web_dir: Path, files: dict[str, str]) -> list[web.RouteDef]:
    """A staff page: GET ``url`` (web_dir/index.html, with SECURITY_HEADERS) and its listed files
    under ``url``/static/{name}. Used by the inbox and the editors' page (their shared script is
    /staff/static/staff.js)."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=(web_dir / "index.html").read_bytes(), content_type="text/html", charset="utf-8",
                            headers=SECURITY_HEADERS)

    return [web.get(url, page), static_route(url + "/static", web_dir, files)]
