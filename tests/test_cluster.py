"""`make run-cluster` for real (bot/ops/cluster.py): nginx in front of two gateways, two Rasa servers and two
action servers, on new PostgreSQL databases of the machine's server and the machine's Redis (a prefix of
the test's own). FAQ questions and a widget conversation go through nginx; one gateway replica is killed
while six customers send back to back: every message is still answered, stored exactly once, and the
replica comes back."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from bot.ops.stack import free_port
from knowledge_base.config import PROJECT_ROOT

from .conftest import missing_service, require_service

pytestmark = [pytest.mark.stack, pytest.mark.slow]
PG = "postgres@127.0.0.1:5432"


def _sql(db: str, sql: str, fetch: bool = False):
    import asyncpg

    async def run():
        conn = await asyncpg.connect(f"postgresql://{PG}/{db}", timeout=5)
        try:
            return await (conn.fetch(sql) if fetch else conn.execute(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def ask(url: str, sender: str, text: str) -> tuple[int, list]:
    req = urllib.request.Request(url + "/webhooks/rest/webhook", method="POST",
                                 data=json.dumps({"sender": sender, "message": text,
                                                  "metadata": {"message_id": uuid.uuid4().hex}}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, []


def gateway_pids(var: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and b"bot" in cmd and f"VAR_DIR={var}".encode() in env:
            pids.append(int(proc.name))
    return sorted(pids)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import shutil

    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        missing_service("nginx", "not installed (scripts/cluster_prereqs.sh installs it)")
    with require_service("PostgreSQL", PG):
        _sql("postgres", "SELECT 1")
    tag = uuid.uuid4().hex[:8]
    var = tmp_path_factory.mktemp("cluster")
    port = free_port()
    env = {**os.environ, "VAR_DIR": str(var), "GATEWAY_PORT": str(port), "LOG_LEVEL": "INFO",
           "DATABASE_URL": f"postgresql+asyncpg://{PG}/cluster_{tag}",
           "RASA_TRACKER_STORE_URL": f"postgresql://{PG}/cluster_{tag}_tracker",
           "REDIS_PREFIX": f"cluster-{tag}", "RATE_LIMIT_SENDER_PER_MINUTE": "0"}
    log = (var / "cluster.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "cluster", "--gateways", "2", "--rasa", "2", "--actions", "2"],
                            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while b"(ready" not in (var / "cluster.out").read_bytes():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("the cluster did not start:\n" + (var / "cluster.out").read_text(errors="replace")[-3000:])
        time.sleep(1)
    yield {"url": url, "var": var, "db": f"cluster_{tag}", "proc": proc}
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        for db in (f"cluster_{tag}", f"cluster_{tag}_tracker"):
            _sql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_answers_come_through_nginx_from_the_cluster(cluster):
    out = (cluster["var"] / "cluster.out").read_text()
    assert "2 action server(s), 2 Rasa server(s) and 2 gateway(s)" in out
    for sender, text, link in (("c-en", "How do I reset my password?", "/help/en/reset-password"),
                               ("c-de", "Wie kann ich mein Abo kündigen?", "/help/de/cancel-subscription")):
        status, replies = ask(cluster["url"], sender, text)
        assert status == 200 and any(link in (r.get("text") or "") for r in replies), replies
    with urllib.request.urlopen(cluster["url"] + "/healthz", timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"


async def test_a_widget_conversation_over_nginx(cluster):
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(cluster["url"].replace("http", "ws") + "/webhooks/webchat/ws",
                                   origin=cluster["url"])
        await ws.send_json({"type": "hello", "visitor": "v-" + uuid.uuid4().hex[:12], "language": "en"})
        await ws.send_json({"type": "message", "id": "q1", "text": "How do I reset my password?"})
        deadline = time.monotonic() + 60
        texts = []
        while not any("/help/en/reset-password" in t for t in texts):
            assert time.monotonic() < deadline, texts
            msg = await ws.receive(timeout=60)
            frame = json.loads(msg.data)
            if frame.get("type") == "message" and frame.get("role") != "customer":
                texts.append(frame.get("text") or "")
        await ws.close()


def test_killing_a_gateway_replica_loses_nothing_and_it_comes_back(cluster):
    """Six customers send back to back through nginx; one gateway replica is SIGKILLed while they do.
    Requests it held are sent again by nginx to the other replica (proxy_next_upstream non_idempotent,
    the same message_id), which answers a message the dead one had stored but not answered."""
    pids = gateway_pids(cluster["var"])
    assert len(pids) == 2, pids
    statuses: list[int] = []
    answered = threading.Event()
    lock = threading.Lock()

    def customer(c: int):
        for k in range(4):
            status, replies = ask(cluster["url"], f"k-{c}", f"How do I reset my password? ({k})")
            with lock:
                statuses.append(status)
            assert status == 200 and any("/help/en/reset-password" in (r.get("text") or "") for r in replies), \
                (c, k, status, replies)
            answered.set()

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(customer, c) for c in range(6)]
        assert answered.wait(60)
        os.kill(pids[0], signal.SIGKILL)  # in the middle of the load
        for f in futures:
            f.result()
    assert statuses == [200] * 24
    deadline = time.time() + 120
    while len(gateway_pids(cluster["var"])) < 2:  # restarted by the supervisor
        assert time.time() < deadline, "the killed gateway was not restarted"
        time.sleep(1)
    rows = _sql(cluster["db"], "SELECT m.text, count(*) AS n FROM messages m JOIN contact_identities i ON "
                                 "i.contact_id = (SELECT contact_id FROM conversations WHERE id = m.conversation_id) "
                                 "WHERE m.direction = 'in' AND i.source_id LIKE 'k-%' GROUP BY i.source_id, m.text", fetch=True)
    assert len(rows) == 24 and all(r["n"] == 1 for r in rows)  # none lost, none doubled
    assert "restarting it" in (cluster["var"] / "cluster.out").read_text()
