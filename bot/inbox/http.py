"""What the inbox's HTTP handlers share (bot.inbox.views, its WebSocket in bot.inbox.ws and the
identity views): JSON answers and errors, reading a JSON body, the roles that work in the inbox, and
the open sockets of each session."""
from __future__ import annotations

import json

from aiohttp import web

HEARTBEAT_SECONDS = 20.0
MAX_BODY = 64 * 1024
INBOX_ROLES = ("agent", "admin")  # editors sign in with the same accounts but work in /editor, not here
SOCKETS = web.AppKey("inbox_sockets", dict)  # session id -> set of WebSocketResponse


def error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def dumps(o) -> str:
    return json.dumps(o, ensure_ascii=False)


def ok(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps, headers={"Cache-Control": "no-store"})


async def json_body(request: web.Request) -> dict | web.Response:
    if request.content_type != "application/json":
        return error(415, "send application/json")
    if request.content_length and request.content_length > MAX_BODY:
        return error(413, "the body is too large")
    try:
        body = json.loads((await request.read()).decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return error(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        return error(400, "the body must be a JSON object")
    return body
