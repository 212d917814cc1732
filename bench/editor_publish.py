"""Publish -> searchable and unpublish -> gone, through the real stack and the editors' API.

    .venv/bin/python bench/editor_publish.py [--rounds 5]

Starts the whole stack (as `make run` does) on free ports with private databases and a private
copy of the index, adds two editors with the command line, then per round: creates an article,
submits it, has the second editor approve it, publishes it and asks the bot (REST channel) until the
answer links the article; then unpublishes it and asks until it no longer does. Measured: the publish
request's duration (the action server's index update included: its "sync" ms), and the time from
sending the publish (unpublish) request to the first bot answer that shows (no longer shows) the
article. Results (each round, p50, max) go to bench/results/editor_publish.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench password 123"
TOPICS = [("cupping", "Do you host coffee cupping sessions?", "Can I join a coffee cupping tasting at your roastery?"),
          ("latte-art", "Do you offer latte art classes?", "Can I book a latte art workshop with you?"),
          ("roastery-tour", "Can I visit your roastery?", "Do you give guided tours of the roastery?"),
          ("grinder-repair", "Do you repair coffee grinders?", "Can you fix my broken burr grinder?"),
          ("office-coffee", "Do you deliver coffee to offices?", "Can my company order coffee for the office?")]


async def ask(http, url: str, question: str) -> str:
    async with http.post(url + "/webhooks/rest/webhook",
                         json={"sender": f"bench-{uuid.uuid4().hex[:8]}", "message": question}) as r:
        return " ".join(m.get("text") or "" for m in await r.json())


async def until(http, url: str, question: str, link: str, present: bool, t0: float, timeout: float = 30) -> float:
    while time.perf_counter() - t0 < timeout:
        if (link in await ask(http, url, question)) == present:
            return time.perf_counter() - t0
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{link} did not {'appear' if present else 'go'} within {timeout} s")


async def client(url: str, email: str) -> tuple[aiohttp.ClientSession, dict]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(url + "/api/inbox/login", json={"email": email, "password": PASSWORD}) as r:
        data = await r.json()
    return http, {"X-CSRF-Token": data["csrf_token"]}


async def run(url: str, rounds: int) -> list[dict]:
    (eva, h1), (edd, h2) = await client(url, "eva@bench.example"), await client(url, "edd@bench.example")
    out = []
    try:
        for i in range(rounds):
            slug, title, question = TOPICS[i % len(TOPICS)]
            group = f"{slug}-{i}"
            body = {"locale": "en", "group": group, "title": title, "questions": [question],
                    "body": f"Yes. {title.rstrip('?')}: see brewbox.example/{slug} for dates and prices."}
            async with eva.post(url + "/api/editor/articles", json=body, headers=h1) as r:
                path = url + f"/api/editor/articles/{(await r.json())['article']['id']}"
            async with eva.post(path + "/submit", json={}, headers=h1):
                pass
            async with edd.post(path + "/approve", json={}, headers=h2):
                pass
            link = f"/help/en/{group}"
            t0 = time.perf_counter()
            async with eva.post(path + "/publish", json={}, headers=h1) as r:
                sync = (await r.json())["sync"]
            publish_request = time.perf_counter() - t0
            searchable = await until(eva, url, question, link, True, t0)
            t1 = time.perf_counter()
            async with eva.post(path + "/unpublish", json={}, headers=h1) as r:
                unsync = (await r.json())["sync"]
            gone = await until(eva, url, question, link, False, t1)
            out.append({"publish_request_s": round(publish_request, 3), "sync_ms": sync["ms"],
                        "sync_steps_ms": sync.get("steps_ms"),
                        "embedded_vectors": sync.get("embedded_vectors"), "publish_to_answered_s": round(searchable, 3),
                        "unpublish_sync_ms": unsync["ms"], "unpublish_to_gone_s": round(gone, 3)})
            print(out[-1], flush=True)
    finally:
        await eva.close()
        await edd.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from bot.settings import Settings
    from bot.ops.stack import ensure_index, start_private_stack

    ensure_index(Settings.from_env())
    index = Path(tempfile.mkdtemp(prefix="bench-editor-index-")) / "index"
    shutil.copytree(Settings.from_env().kb.index_dir, index)
    stack, env = start_private_stack("bench-editor-", {"KB_INDEX_DIR": str(index), "BUSINESS_HOURS": "always"})
    try:
        full_env = {**os.environ, **env}
        for email in ("eva@bench.example", "edd@bench.example"):
            subprocess.run([sys.executable, "-m", "bot", "agents", "add", email, "--name", email.split("@")[0],
                            "--role", "editor"], input=PASSWORD + "\n", env=full_env, text=True, check=True,
                           cwd=ROOT, capture_output=True)
        rows = asyncio.run(run(stack.gateway_url, args.rounds))
    finally:
        stack.stop()
        shutil.rmtree(index.parent, ignore_errors=True)
    summary = {k: {"p50": round(statistics.median(r[k] for r in rows), 3), "max": max(r[k] for r in rows)}
               for k in ("publish_request_s", "sync_ms", "publish_to_answered_s", "unpublish_sync_ms",
                         "unpublish_to_gone_s")}
    result = {"when": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "articles": 84, "rounds": rows, "summary": summary}
    out = ROOT / "bench" / "results" / "editor_publish.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
