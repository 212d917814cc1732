"""Fixtures of the editor tests: the real gateway app (in-process, real SQLite, real HTTP) with
signed-in accounts; ``offline_gateway`` has no action server (nothing can be published: the 503
path), ``live_gateway`` uses the running stack's real action server (publishing updates its index)."""
from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest

from bot.keys import SESSIONMAKER
from bot.settings import Settings
from bot.ops.stack import free_port

from ..conftest import require_service
from ..inbox.conftest import PASSWORD, start_gateway

ACCOUNTS = {"ada": ("admin", "Ada Admin"), "eve": ("editor", "Eve Editor"), "ed": ("editor", "Ed Second"),
            "aga": ("agent", "Aga Agent")}


class EditorClient:
    """One signed-in browser: cookie jar + CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None

    async def login(self, email: str):
        async with self.http.post(self.base + "/api/inbox/login", json={"email": email, "password": PASSWORD}) as r:
            data = await r.json()
            assert r.status == 200, data
            self.csrf = data["csrf_token"]

    async def call(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None, csrf=True):
        h = {**({"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}), **(headers or {})}
        kw = {"data": raw} if raw is not None else ({"json": body} if body is not None else {})
        async with self.http.request(method, self.base + path, headers=h, **kw) as r:
            ctype = r.headers.get("Content-Type", "")
            return r.status, (await r.json() if ctype.startswith("application/json") else await r.read())

    async def get(self, path: str):
        return await self.call("GET", path)

    async def post(self, path: str, body=None, **kw):
        return await self.call("POST", path, body if body is not None else {}, **kw)

    async def put(self, path: str, body=None, **kw):
        return await self.call("PUT", path, body, **kw)

    async def close(self):
        await self.http.close()


class EditorGateway:
    def __init__(self, gw):
        self.gw = gw
        self.url = gw.url
        self.clients: dict[str, EditorClient] = {}

    @property
    def app(self):
        return self.gw.app

    async def sign_in_all(self) -> dict[str, EditorClient]:
        from bot.staff import accounts

        pw = accounts.hash_password(PASSWORD)
        async with self.app[SESSIONMAKER]() as session:
            for key, (role, name) in ACCOUNTS.items():
                await accounts.create_agent(session, f"{key}@example.com", name, role, pw)
        for key in ACCOUNTS:
            c = EditorClient(self.url)
            await c.login(f"{key}@example.com")
            self.clients[key] = c
        return self.clients

    async def close(self):
        for c in self.clients.values():
            await c.close()
        await self.gw.close()


def editor_settings(tmp_path, action_url: str, var_dir, **extra) -> Settings:
    return Settings.from_env({
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "RASA_URL": f"http://127.0.0.1:{free_port()}",
        "RASA_RETRIES": "0", "ACTION_SERVER_URL": action_url, "VAR_DIR": str(var_dir),
        "BUSINESS_HOURS": "always", "SETTINGS_FILE": "", **extra})


PG_ADMIN_URL = os.environ.get("EDITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _pg(sql: str) -> None:
    import asyncpg

    async def run():
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever runs in this thread
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The gateway database: a SQLite file, or a new database on the machine's PostgreSQL (dropped
    afterwards; without one it fails under CI=true, else it is skipped: tests/conftest.py's missing_service)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
        return
    name = f"editor_{uuid.uuid4().hex[:10]}"
    with require_service("PostgreSQL", PG_ADMIN_URL):
        _pg(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def offline_gateway(tmp_path, database_url):
    settings = editor_settings(tmp_path, f"http://127.0.0.1:{free_port()}", tmp_path, DATABASE_URL=database_url)
    gw = EditorGateway(await start_gateway(settings, tmp_path / "gw.db"))
    yield gw, await gw.sign_in_all()
    await gw.close()


@pytest.fixture
async def live_gateway(tmp_path, running_stack):
    settings = editor_settings(tmp_path, running_stack.action_url, running_stack.env["VAR_DIR"])
    gw = EditorGateway(await start_gateway(settings, tmp_path / "gw.db"))
    yield gw, await gw.sign_in_all()
    await gw.close()
