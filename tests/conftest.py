"""Fixtures, from bare to full: settings -> the real running stack (Rasa trained on the real data,
the action server with the real index, the gateway on SQLite), started once per test session."""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import shutil
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

from knowledge_base.config import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


def chromium_executable() -> str | None:
    """Debian's Chromium, or a chromium found on PATH on a machine that keeps it elsewhere."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


async def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Until ``predicate()`` is true (returns its value); an AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class SteppedClock:
    """A clock for code that takes one (``clock=`` returning epoch seconds): it stands still until a
    test steps it, so windows and deadlines fall where the test says, not where the minute does."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


# --- services a test needs ----------------------------------------------------------------------

def in_ci() -> bool:
    """CI=true (.ci/run sets it before `make test`)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_service(service: str, detail: str) -> NoReturn:
    """A test needs ``service`` (PostgreSQL, Redis, RabbitMQ, nginx, Chromium) and it is not there.

    Under CI=true the test fails: a green run that skipped it has not tested it, and `make test`
    starts or installs each of them first (scripts/test_prereqs.sh). On a developer's machine it is
    skipped with the reason, so the rest of the suite still runs. Called at a module's top level it
    fails (or skips) the whole module."""
    message = f"{service} is not available: {detail}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a test that needs {service} fails instead of skipping; "
                    "`make test` starts or installs it, see scripts/test_prereqs.sh)", pytrace=False)
    raise pytest.skip.Exception(message, allow_module_level=True)


@contextlib.contextmanager
def require_service(service: str, where: str):
    """``with require_service("Redis", "127.0.0.1:6379"): <reach it>``: an exception while reaching
    it is ``missing_service`` (fails under CI=true, skips elsewhere)."""
    try:
        yield
    except AssertionError:  # a test's own check failed: that is not a missing service
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the client raises: the service is not there
        missing_service(service, f"{where}: {type(exc).__name__}: {exc}")


def playwright_api(kind: str = "sync"):
    """``playwright.sync_api`` or ``playwright.async_api``, for a test driving Debian's Chromium;
    ``missing_service("Chromium", ...)`` when the browser or Playwright is not installed."""
    if not chromium_executable():
        missing_service("Chromium", f"{CHROMIUM} is not installed (scripts/test_prereqs.sh installs it)")
    try:
        return importlib.import_module(f"playwright.{kind}_api")
    except ImportError as exc:
        missing_service("Chromium", f"Playwright, which drives it, is not installed ({exc}; pip install -e .[dev])")


def request_json(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 60,
                 opener=None):
    """One HTTP request with a JSON (or raw bytes/str) body; returns (status, decoded JSON or text)."""
    if body is None or isinstance(body, bytes):
        data = body
    else:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={**({"Content-Type": "application/json"} if data is not None else {}),
                                          **(headers or {})})
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")


def post_json(url: str, body: dict | bytes | str, headers: dict | None = None, timeout: float = 60):
    return request_json("POST", url, body, headers, timeout)


def get_json(url: str, timeout: float = 10):
    return request_json("GET", url, timeout=timeout)


class RunningStack:
    def __init__(self, stack, env: dict, db_path: Path):
        self.stack = stack
        self.env = env
        self.db_path = db_path
        self.url = stack.gateway_url
        self.rasa_url = stack.settings.rasa_url
        self.action_url = stack.settings.action_server_url

    def ask(self, sender: str, message: str, **metadata):
        body = {"sender": sender, "message": message}
        if metadata:
            body["metadata"] = metadata
        return post_json(self.url + "/webhooks/rest/webhook", body)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        return conn

    def child(self, name: str):
        return next(c for c in self.stack.children if c.name == name)


WHATSAPP_TEST_SETTINGS = {
    "WHATSAPP_VERIFY_TOKEN": "test-verify-token",
    "WHATSAPP_APP_SECRET": "test-app-secret",
    "WHATSAPP_ACCESS_TOKEN": "test-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "100200300",
    "WHATSAPP_API_VERSION": "v23.0",
}
WIDGET_TEST_SECRET = "test-widget-identity-secret"


@pytest.fixture(scope="session")
def whatsapp_sim_port() -> int:
    """The port the WhatsApp Cloud API simulator listens on in stack tests (the gateway's
    WHATSAPP_API_BASE_URL points there; tests/channels start the simulator on it)."""
    from bot.ops.stack import free_port

    return free_port()


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory, whatsapp_sim_port) -> dict:
    from bot.ops.stack import free_port

    var = tmp_path_factory.mktemp("stack-var")
    gw, rasa, actions = free_port(), free_port(), free_port()
    return {
        **WHATSAPP_TEST_SETTINGS,
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{whatsapp_sim_port}",
        "WIDGET_IDENTITY_SECRET": WIDGET_TEST_SECRET,
        "GATEWAY_PORT": str(gw),
        "RASA_PORT": str(rasa), "RASA_URL": f"http://127.0.0.1:{rasa}",
        "ACTION_SERVER_PORT": str(actions), "ACTION_SERVER_URL": f"http://127.0.0.1:{actions}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{var / 'gateway.db'}",
        "RASA_TRACKER_STORE_URL": f"sqlite:///{var / 'rasa_tracker.db'}",
        "VAR_DIR": str(var),
        "LOG_LEVEL": "INFO",
        # short, so that tests/test_conversations.py sees a form left unanswered reach the queue
        "HANDOFF_FORM_TIMEOUT_SECONDS": "12",
    }


@pytest.fixture(scope="session")
def running_stack(stack_env):
    """The whole product, as `make run` starts it, on free ports and private databases."""
    from bot.settings import Settings
    from bot.ops.stack import Stack, ensure_index, ensure_model, ensure_sentiment

    import shutil

    # The product's index is built (or kept) as `make run` does, then copied, so that tests may
    # publish snapshots without touching the real one.
    model, _ = ensure_model()
    ensure_index(Settings.from_env({**os.environ}))
    ensure_sentiment()
    project_index = Settings.from_env({**os.environ}).kb.index_dir
    private_index = Path(stack_env["VAR_DIR"]) / "index"
    shutil.copytree(project_index, private_index)
    stack_env["KB_INDEX_DIR"] = str(private_index)
    env = {**os.environ, **stack_env}
    settings = Settings.from_env(env)
    stack = Stack(settings, Path(stack_env["VAR_DIR"]))
    stack.build_children(model, env_extra=stack_env)
    stack.start()
    try:
        stack.wait_ready(timeout=300)
        yield RunningStack(stack, env, Path(stack_env["VAR_DIR"]) / "gateway.db")
    finally:
        stack.stop()
