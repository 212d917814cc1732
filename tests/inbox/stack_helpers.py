"""A gateway of its own for the inbox's stack tests: `python -m bot serve` as `make run` starts it,
in front of the running stack's real Rasa and action server, on its own port and database (so the
tests may restart it and choose its hand-off settings), plus a synchronous signed-in agent."""
from __future__ import annotations

import http.cookiejar
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from bot.ops.stack import Child, free_port, http_ok
from knowledge_base.config import PROJECT_ROOT

from ..conftest import request_json

PASSWORD = "correct horse battery"


def request(opener, method: str, url: str, body=None, headers=None, timeout: float = 60):
    return request_json(method, url, body, headers, timeout, opener=opener)


class InboxGateway:
    def __init__(self, stack, var: Path, **settings):
        self.port = free_port()
        self.db_path = var / "inbox-gateway.db"
        self.env = {**stack.env, "GATEWAY_PORT": str(self.port), "DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
                    "BUSINESS_HOURS": "always", "OUTGOING_WEBHOOK_URL": "", "OUTGOING_WEBHOOK_SECRET": "",
                    **settings}
        self.url = f"http://127.0.0.1:{self.port}"
        self.child = Child("inbox gateway", [sys.executable, "-m", "bot", "serve"], self.env, var / "logs" /
                           "inbox-gateway.log", self.url + "/webhooks/rest/")
        self.opener = urllib.request.build_opener()

    def start(self, timeout: float = 120) -> None:
        self.child.start()
        deadline = time.time() + timeout
        while not http_ok(self.url + "/healthz"):
            if not self.child.alive():
                raise RuntimeError(f"the gateway exited:\n{self.child.tail()}")
            if time.time() > deadline:
                raise TimeoutError(f"the gateway did not get ready:\n{self.child.tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.child.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def ask(self, sender: str, message: str, **metadata):
        body = {"sender": sender, "message": message, **({"metadata": metadata} if metadata else {})}
        return request(self.opener, "POST", self.url + "/webhooks/rest/webhook", body)

    def poll(self, sender: str, after: str | None = None, wait: float = 0):
        q = urllib.parse.urlencode({k: v for k, v in {"sender": sender, "after": after, "wait": wait or None}.items()
                                    if v})
        return request(self.opener, "GET", self.url + "/webhooks/rest/messages?" + q)

    def add_agent(self, email: str, name: str, role: str = "agent", language: str = "en") -> None:
        p = subprocess.run([sys.executable, "-m", "bot", "agents", "add", email, "--name", name, "--role", role,
                            "--language", language], input=PASSWORD + "\n", env=self.env, capture_output=True,
                           text=True, cwd=PROJECT_ROOT, timeout=120)
        assert p.returncode == 0, p.stderr

    def agent(self, email: str) -> "SyncAgent":
        a = SyncAgent(self.url)
        status, body = a.login(email)
        assert status == 200, body
        return a

    def pending_count(self) -> int:
        import sqlite3

        with sqlite3.connect(self.db_path) as db:
            return db.execute("SELECT count(*) FROM conversations WHERE status = 'pending'").fetchone()[0]


class SyncAgent:
    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = None

    def login(self, email: str, password: str = PASSWORD):
        status, body = request(self.opener, "POST", self.base + "/api/inbox/login", {"email": email, "password": password})
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, body

    def get(self, path: str):
        return request(self.opener, "GET", self.base + path)

    def post(self, path: str, body: dict | None = None):
        return request(self.opener, "POST", self.base + path, body or {}, headers={"X-CSRF-Token": self.csrf or ""})

    def queue(self) -> list[dict]:
        return self.get("/api/inbox/conversations?view=queue")[1]["conversations"]

