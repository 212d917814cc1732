"""Hand-off latencies with N concurrent conversations (default 20), through the real stack.

    .venv/bin/python bench/handoff.py [--conversations 20] [--replies 3] [--url URL]

Without --url it starts the whole stack itself (as `make run` does, BUSINESS_HOURS=always) on free
ports with private databases, adds an agent with the command line, and stops it afterwards. With
--url the gateway must use the database given by --database-url (for the agent) or already have
the agent given by --agent-email/--agent-password.

1. hand-off -> inbox: N customers talk to the real bot at once and complete its hand-off form
   ("I want to talk to a person", skip, skip). A signed-in agent's WebSocket client waits for each
   queued conversation. Measured: from the moment the router queued it (the conversation's
   queued_at, same machine clock) to the agent's client receiving it, and from the customer
   sending the message that completed the hand-off to the same moment.
2. agent reply -> customer: the agent claims all N and sends --replies replies to each, all
   conversations at once; each REST customer long-polls GET /webhooks/rest/messages. Measured: from
   the agent's POST to the customer's poll returning the reply.

Results (p50/p95/max in ms) go to bench/results/handoff.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e_latency import percentile  # noqa: E402

AGENT_EMAIL, AGENT_PASSWORD = "bench-agent@example.com", "bench password 1234"


def stats(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "max_ms": round(max(ms), 1) if ms else None}


async def bench(url: str, n: int, replies: int) -> dict:
    timeout = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=4 * n + 10)) as customers, \
            aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent:
        async with agent.post(url + "/api/inbox/login", json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf_token"]
        ws = await agent.ws_connect(url + f"/api/inbox/ws?csrf={csrf}", headers={"Origin": url})
        seen: dict[str, tuple[float, dict]] = {}  # token -> (receipt wall time, conversation)
        got = asyncio.Event()

        async def listen():
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                ev = json.loads(msg.data)
                if ev.get("type") == "conversation" and ev["conversation"]["status"] == "pending":
                    now = time.time()
                    summary = (ev["conversation"].get("handoff") or {}).get("summary") or ""
                    for token in pending_tokens:
                        if token in summary and token not in seen:
                            seen[token] = (now, ev["conversation"])
                            got.set()

        async def ask(sender: str, text: str) -> list:
            async with customers.post(url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
                assert r.status == 200, await r.text()
                return await r.json()

        pending_tokens: set[str] = set()
        listener = asyncio.create_task(listen())
        senders: dict[str, str] = {}
        sent_at: dict[str, float] = {}
        answered_at: dict[str, float] = {}

        async def customer(i: int) -> None:
            token = "ref" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])  # no digits
            sender = f"bench-handoff-{i}-{token}"
            senders[token] = sender
            pending_tokens.add(token)
            await ask(sender, f"How do I cancel my subscription? ({token})")
            replies = await ask(sender, "I want to talk to a person")
            for _ in range(4):  # skip name, email (and the order number when the bot asks for one)
                if not any(b.get("payload") == "/skip" for r in replies for b in r.get("buttons") or []):
                    break
                sent_at[token] = time.time()
                replies = await ask(sender, "/skip")  # the last one completes the form: the bot hands off
                answered_at[token] = time.time()

        t_start = time.time()
        await asyncio.gather(*(customer(i) for i in range(n)))
        deadline = time.time() + 60
        while len(seen) < n and time.time() < deadline:
            got.clear()
            try:
                await asyncio.wait_for(got.wait(), 5)
            except asyncio.TimeoutError:
                pass
        missing = n - len(seen)
        queued_to_inbox, sent_to_inbox, answer = [], [], []
        for token, (received, conv) in seen.items():
            queued = datetime.fromisoformat(conv["queued_at"].replace("Z", "+00:00")).timestamp()
            queued_to_inbox.append(received - queued)
            sent_to_inbox.append(received - sent_at[token])
            answer.append(answered_at[token] - sent_at[token])
        handoff_wall = time.time() - t_start

        # 2. replies
        convs = {token: conv["id"] for token, (_, conv) in seen.items()}
        for cid in convs.values():
            async with agent.post(url + f"/api/inbox/conversations/{cid}/claim", json={},
                                  headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200, await r.text()
        delivery: list[float] = []
        failures = 0

        async def last_id(sender: str) -> str:
            async with customers.get(url + "/webhooks/rest/messages", params={"sender": sender}) as r:
                return (await r.json())["messages"][-1]["id"]

        async def one_reply(token: str, cid: str, k: int, after: str) -> str | None:
            nonlocal failures
            sender = senders[token]
            text = f"Reply {k} to {token}"
            poll = asyncio.create_task(customers.get(url + "/webhooks/rest/messages",
                                                     params={"sender": sender, "after": after, "wait": "20"}))
            await asyncio.sleep(0.2)  # the poll is waiting
            t0 = time.time()
            async with agent.post(url + f"/api/inbox/conversations/{cid}/reply", json={"text": text},
                                  headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 201, await r.text()
            resp = await poll
            body = await resp.json()
            resp.release()
            t1 = time.time()
            texts = [m["text"] for m in body["messages"]]
            if text not in texts:
                failures += 1
                return None
            delivery.append(t1 - t0)
            return body["messages"][-1]["id"]

        afters = dict(zip(convs, await asyncio.gather(*(last_id(senders[tok]) for tok in convs))))
        for k in range(replies):
            results = await asyncio.gather(*(one_reply(tok, cid, k, afters[tok]) for tok, cid in convs.items()))
            for tok, new in zip(convs, results):
                if new:
                    afters[tok] = new
        listener.cancel()
        await ws.close()
    return {
        "conversations": n,
        "handoff_to_inbox": {"from_queued": stats(queued_to_inbox), "from_customer_message": stats(sent_to_inbox),
                             "missing": missing},
        "handoff_rest_answer": stats(answer),
        "handoff_phase_wall_seconds": round(handoff_wall, 1),
        "agent_reply_to_customer": {**stats(delivery), "replies_per_conversation": replies, "failures": failures},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running gateway (default: start the stack here)")
    ap.add_argument("--database-url", help="that gateway's DATABASE_URL (to add the bench agent)")
    ap.add_argument("--conversations", type=int, default=20)
    ap.add_argument("--replies", type=int, default=3, help="agent replies per conversation")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "handoff.json"))
    args = ap.parse_args()
    if not 1 <= args.conversations <= 200 or not 1 <= args.replies <= 20:
        print("error: --conversations must be 1..200 and --replies 1..20", file=sys.stderr)
        return 2

    stack = None
    env_extra: dict = {}
    if args.url:
        url = args.url.rstrip("/")
        if args.database_url:
            env_extra["DATABASE_URL"] = args.database_url
    else:
        from bot.ops.stack import start_private_stack

        stack, env_extra = start_private_stack("bench-handoff-", {"BUSINESS_HOURS": "always",
                                                                  "OUTGOING_WEBHOOK_URL": ""})
        url = stack.gateway_url
    try:
        if env_extra.get("DATABASE_URL"):
            p = subprocess.run([sys.executable, "-m", "bot", "agents", "add", AGENT_EMAIL, "--name", "Bench Agent"],
                               input=AGENT_PASSWORD + "\n", env={**os.environ, **env_extra}, capture_output=True,
                               text=True, cwd=ROOT)
            if p.returncode != 0 and "exists already" not in p.stderr:
                print(p.stderr, file=sys.stderr)
                return 1
        results = asyncio.run(bench(url, args.conversations, args.replies))
    finally:
        if stack is not None:
            stack.stop()
            import shutil

            shutil.rmtree(stack.var_dir, ignore_errors=True)
    out = {"benchmark": "handoff", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **results,
           "note": "handoff_to_inbox.from_queued: the router queued the conversation -> a signed-in agent's "
                   "WebSocket received it. from_customer_message: the customer sent the message that completed the "
                   "hand-off form (so it includes Rasa and the action server) -> the same. agent_reply_to_customer: "
                   "the agent's POST .../reply -> the REST customer's long poll returned it. All conversations at once, "
                   "SQLite, one gateway, the real Rasa and action server, on this machine."}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
