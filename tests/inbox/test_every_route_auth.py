"""Every route of the gateway, walked from its router: anything not on the public allow-list below
answers 401 without a session, 403 to a signed-in account whose role may not use it, and 403 to a
state-changing request without the CSRF token. A new route that forgets its check fails here."""
from __future__ import annotations

import re

import aiohttp
import pytest

PUBLIC = {  # (method, path): reachable without signing in, on purpose
    ("POST", "/webhooks/rest/webhook"), ("GET", "/webhooks/rest/"), ("GET", "/webhooks/rest/messages"),
    ("GET", "/webhooks/whatsapp/webhook"), ("POST", "/webhooks/whatsapp/webhook"), ("GET", "/webhooks/whatsapp/"),
    ("GET", "/webhooks/webchat/ws"), ("GET", "/webhooks/webchat/"), ("GET", "/widget.js"), ("GET", "/"),
    ("GET", "/healthz"), ("GET", "/inbox"), ("GET", "/inbox/static/{name}"), ("GET", "/staff/static/{name}"),
    ("POST", "/api/inbox/login"),
    ("GET", "/editor"), ("GET", "/editor/static/{name}"), ("GET", "/api/openapi.json"),
    ("GET", "/help/{locale}/{group}"), ("GET", "/dashboard"), ("GET", "/dashboard/static/{name}"),
}
ROLES = ("agent", "admin", "editor")


def allowed_roles(path: str) -> set[str]:
    """Who may use a signed-in route; anything unknown is admin-only, so it fails loudly if wrong."""
    if path in ("/api/inbox/me", "/api/inbox/logout"):
        return set(ROLES)
    if path.startswith("/api/inbox/admin/"):
        return {"admin"}
    if path.startswith("/api/inbox/"):
        return {"agent", "admin"}
    if path.startswith("/api/editor/"):
        return {"editor", "admin"}
    return {"admin"}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) == "n" else "no-such-" + m.group(1), path)


def private_routes(app) -> list[tuple[str, str]]:
    out = set()
    for r in app.router.routes():
        path = r.resource.canonical if r.resource is not None else ""
        if r.method in ("HEAD", "OPTIONS") or (r.method, path) in PUBLIC:
            continue
        out.add((r.method, path))
    return sorted(out, key=lambda mp: (mp[1] == "/api/inbox/logout", mp))  # signing out last


async def call(client, method: str, path: str, csrf: bool = True):
    headers = {"X-CSRF-Token": client.csrf} if csrf and getattr(client, "csrf", None) else {}
    http = client.http if hasattr(client, "http") else client
    base = client.base if hasattr(client, "base") else ""
    async with http.request(method, base + concrete(path), json={} if method not in ("GET", "DELETE") else None,
                            headers=headers) as r:
        try:
            body = await r.json(content_type=None)
        except ValueError:
            body = {}
        return r.status, body


async def test_every_private_route_checks_sign_in_role_and_csrf(gateway):
    routes = private_routes(gateway.app)
    assert len(routes) > 20, routes  # the walk sees the inbox and the editor
    for role in ROLES:
        await gateway.add_agent(f"{role}@example.com", role.title(), role)
    clients = {}
    anonymous = aiohttp.ClientSession()
    try:
        for role in ROLES:
            clients[role] = gateway.agent_client()
            assert (await clients[role].login(f"{role}@example.com"))[0] == 200
        checked = 0
        for method, path in routes:
            async with anonymous.request(method, gateway.url + concrete(path), json={}) as r:
                assert r.status == 401, (method, path, r.status)
            for role in ROLES:
                if role in allowed_roles(path):
                    if method not in ("GET", "HEAD"):
                        status, body = await call(clients[role], method, path, csrf=False)
                        assert status == 403 and "CSRF" in body.get("error", ""), (role, method, path, status, body)
                    status, body = await call(clients[role], method, path)
                    assert status != 401 and not (status == 403 and "role" in body.get("error", "")), \
                        (role, method, path, status, body)
                else:
                    status, body = await call(clients[role], method, path)
                    assert status == 403, (role, method, path, status, body)
                checked += 1
        assert checked == len(routes) * len(ROLES)
    finally:
        await anonymous.close()
        for c in clients.values():
            await c.close()


@pytest.mark.parametrize("path", ["/api/inbox/ws"])
async def test_the_inbox_socket_refuses_the_anonymous(gateway, path):
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(gateway.url + path, headers={"Origin": gateway.url})
        assert exc.value.status == 401
