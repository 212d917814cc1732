"""GET /healthz: "ok" only when the database, Rasa, the action server and the index are ready."""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from sqlalchemy import text

from ..keys import ENGINE, HTTP, RASA, SETTINGS


async def _database(app) -> tuple[bool, str]:
    try:
        async with app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return False, f"{type(exc).__name__}: {exc}"[:200]


async def _action_server(app) -> tuple[dict, dict]:
    url = app[SETTINGS].action_server_url + "/ready"
    try:
        async with app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            body = await resp.json(content_type=None)
            if resp.status == 200:
                return ({"ok": True, "detail": "ok"},
                        {"ok": True, "detail": "ok", "version": body.get("index_version"),
                         "articles": body.get("articles"), "encoder": body.get("encoder")})
            reason = body.get("reason") if isinstance(body, dict) else None
            return {"ok": True, "detail": "ok"}, {"ok": False, "detail": reason or f"HTTP {resp.status}"}
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        detail = f"unreachable ({type(exc).__name__})"
        return {"ok": False, "detail": detail}, {"ok": False, "detail": "unknown: the action server is not reachable"}


async def action_server_down(app, since: float | None = None) -> str | None:
    """Why the action server cannot run actions, or None when it answers. With ``since`` (a
    time.time()), also when it started after that: it was down or starting while Rasa called it."""
    url = app[SETTINGS].action_server_url + "/status"
    try:
        async with app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=1.5)) as resp:
            if resp.status != 200:
                return f"the action server answered HTTP {resp.status}"
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return f"the action server is unreachable ({type(exc).__name__})"
    started = body.get("started_at") if isinstance(body, dict) else None
    if since is not None and isinstance(started, (int, float)) and started >= since - 0.5:
        return "the action server was starting while the assistant answered"
    return None


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    (db_ok, db_detail), (rasa_ok, rasa_detail), (actions, index) = await asyncio.gather(
        _database(app), app[RASA].ready(), _action_server(app))
    checks = {"database": {"ok": db_ok, "detail": db_detail}, "rasa": {"ok": rasa_ok, "detail": rasa_detail},
              "action_server": actions, "index": index}
    not_ready = [name for name, c in checks.items() if not c["ok"]]
    body = {"status": "ok" if not not_ready else "unavailable", "checks": checks}
    if not_ready:
        body["not_ready"] = not_ready
    return web.json_response(body, status=200 if not not_ready else 503)
