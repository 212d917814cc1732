"""Load test over the three customer channels at once, with a loss and duplicate check afterwards.

    .venv/bin/python bench/load.py [--customers 30] [--turns 4] [--max-seconds 300] [--no-rasa-alone]

Starts the whole product on free loopback ports with private databases (as bench/e2e_latency.py
does) plus the WhatsApp simulator (tests/whatsapp_sim) as the Graph API, then runs N concurrent
customers split over the REST channel, the widget's WebSocket and WhatsApp webhooks (signed like
Meta signs them). Each customer sends its turns back to back: most ask FAQ questions from
data/eval/sample_test.jsonl (in en/de/tr/ja; some of them are answered with clarify buttons), every
fifth asks for a person and goes through the hand-off form. Latency is measured per turn: REST from
request to answer, WebSocket from sending to the end of the bot's turn (typing off), WhatsApp from
the webhook to the first message the simulator receives. Bounded by --max-seconds.

Afterwards it checks the gateway database: every message a customer sent and the gateway accepted
is stored exactly once (per channel; WhatsApp by wamid, the widget by client id), and every turn got
at least one reply. Then, unless --no-rasa-alone, the same number of REST conversations goes to Rasa's
own REST channel on the same machine in the same run. Results: bench/results/load.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from e2e_latency import load_questions, percentile, run_load  # noqa: E402

HANDOFF = ["I want to talk to a person", "/skip", "/skip"]
WA_SETTINGS = {"WHATSAPP_VERIFY_TOKEN": "load-verify", "WHATSAPP_APP_SECRET": "load-secret",
               "WHATSAPP_ACCESS_TOKEN": "load-token", "WHATSAPP_PHONE_NUMBER_ID": "100200300"}


class Stats:
    def __init__(self):
        self.latencies: dict[str, list[float]] = {"rest": [], "ws": [], "whatsapp": []}
        self.errors: dict[str, int] = {"rest": 0, "ws": 0, "whatsapp": 0}
        self.sent: dict[str, int] = {"rest": 0, "ws": 0, "whatsapp": 0}
        self.unanswered: list[str] = []
        self.clarify = 0

    def summary(self, elapsed: float) -> dict:
        every = [x for v in self.latencies.values() for x in v]
        return {
            "messages": sum(self.sent.values()), "answered_turns": len(every), "errors": dict(self.errors),
            "clarify_turns": self.clarify, "seconds": round(elapsed, 1),
            "messages_per_s": round(len(every) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(every, 50), 1), "p95_ms": round(percentile(every, 95), 1),
            "p99_ms": round(percentile(every, 99), 1),
            "per_channel": {ch: {"sent": self.sent[ch], "p50_ms": round(percentile(v, 50), 1),
                                 "p95_ms": round(percentile(v, 95), 1)} for ch, v in self.latencies.items()},
        }


def script(i: int, turns: int, questions: list[str], rng: random.Random) -> list[str]:
    return HANDOFF[:] if i % 5 == 4 else [rng.choice(questions) for _ in range(turns)]


async def rest_customer(http, url: str, name: str, texts: list[str], st: Stats, deadline: float) -> None:
    for text in texts:
        if time.monotonic() > deadline:
            return
        st.sent["rest"] += 1
        t0 = time.perf_counter()
        try:
            async with http.post(url + "/webhooks/rest/webhook", json={"sender": name, "message": text,
                                                                       "metadata": {"message_id": uuid.uuid4().hex}}) as r:
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            st.errors["rest"] += 1
            continue
        if r.status != 200 or not body:
            st.errors["rest"] += 1
            st.unanswered.append(f"rest:{name}:{text}")
            continue
        st.latencies["rest"].append((time.perf_counter() - t0) * 1000)
        st.clarify += any(len(m.get("buttons") or []) > 2 for m in body)


async def ws_customer(http, url: str, name: str, texts: list[str], st: Stats, deadline: float) -> None:
    try:
        ws = await http.ws_connect(url.replace("http", "ws", 1) + "/webhooks/webchat/ws", headers={"Origin": url})
    except (aiohttp.ClientError, asyncio.TimeoutError):
        st.errors["ws"] += len(texts)
        return
    try:
        await ws.send_json({"type": "hello", "visitor": name, "language": "en"})
        await _until(ws, lambda f: f["type"] == "ready", 30)
        await _until(ws, lambda f: f["type"] == "history", 30)
        for k, text in enumerate(texts):
            if time.monotonic() > deadline:
                return
            st.sent["ws"] += 1
            t0 = time.perf_counter()
            await ws.send_json({"type": "message", "id": f"c{k}", "text": text})
            got: list[dict] = []
            try:
                await _until(ws, lambda f: (got.append(f) if f["type"] == "message" and f.get("role") != "customer"
                                            else None) or (f["type"] == "typing" and not f["on"]), 60)
            except asyncio.TimeoutError:
                st.errors["ws"] += 1
                continue
            if not got:
                st.unanswered.append(f"ws:{name}:{text}")
                continue
            st.latencies["ws"].append((time.perf_counter() - t0) * 1000)
            st.clarify += any(len(m.get("buttons") or []) > 2 for m in got)
    finally:
        await ws.close()


async def _until(ws, done, timeout: float) -> None:
    async def read():
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise asyncio.TimeoutError(f"socket closed: {msg.type}")
            if done(json.loads(msg.data)):
                return
    await asyncio.wait_for(read(), timeout)


async def wa_customer(sim, wa_id: str, texts: list[str], st: Stats, deadline: float) -> None:
    for text in texts:
        if time.monotonic() > deadline:
            return
        before = len(sim.messages_to(wa_id))
        st.sent["whatsapp"] += 1
        t0 = time.perf_counter()
        _, statuses = await sim.send_text(wa_id, text)
        if statuses != [200]:
            st.errors["whatsapp"] += 1
            continue
        limit = time.monotonic() + 60
        while len(sim.messages_to(wa_id)) == before and time.monotonic() < limit:
            await asyncio.sleep(0.01)
        if len(sim.messages_to(wa_id)) == before:
            st.unanswered.append(f"whatsapp:{wa_id}:{text}")
            continue
        st.latencies["whatsapp"].append((time.perf_counter() - t0) * 1000)
        n = len(sim.messages_to(wa_id))  # the rest of the turn: wait until the replies stop coming
        while True:
            await asyncio.sleep(0.3)
            if len(sim.messages_to(wa_id)) == n:
                break
            n = len(sim.messages_to(wa_id))
        st.clarify += any((m.get("interactive") or {}).get("type") == "list" for m in sim.messages_to(wa_id)[before:])


def check_storage(db_path: Path, st: Stats, warm: Stats) -> dict:
    """Every accepted customer message stored exactly once; counts per channel (with the warm-up's)."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT c.channel, m.platform_message_id FROM messages m JOIN conversations c "
                          "ON c.id = m.conversation_id WHERE m.direction = 'in'").fetchall()
    stored = {ch: sum(1 for c, _ in rows if c == ch) for ch in ("rest", "webchat", "whatsapp")}
    ids = [p for _, p in rows if p]
    return {"stored_inbound": stored, "duplicate_platform_ids": len(ids) - len(set(ids)),
            "sent": {"rest": st.sent["rest"] + warm.sent["rest"], "webchat": st.sent["ws"], "whatsapp": st.sent["whatsapp"]},
            "exactly_once": stored == {"rest": st.sent["rest"] + warm.sent["rest"], "webchat": st.sent["ws"],
                                       "whatsapp": st.sent["whatsapp"]} and len(ids) == len(set(ids)),
            "unanswered_turns": st.unanswered[:20], "every_turn_answered": not st.unanswered}


async def run(args) -> dict:
    from bot.stack import free_port, start_private_stack
    from tests.whatsapp_sim.simulator import WhatsAppSimulator

    gw_port, sim_port = free_port(), free_port()
    sim = WhatsAppSimulator(webhook_url=f"http://127.0.0.1:{gw_port}/webhooks/whatsapp/webhook",
                            app_secret=WA_SETTINGS["WHATSAPP_APP_SECRET"],
                            access_token=WA_SETTINGS["WHATSAPP_ACCESS_TOKEN"],
                            phone_number_id=WA_SETTINGS["WHATSAPP_PHONE_NUMBER_ID"])
    await sim.start(port=sim_port)
    loop = asyncio.get_running_loop()
    stack, env = await loop.run_in_executor(None, lambda: start_private_stack("bench-load-", {
        **WA_SETTINGS, "GATEWAY_PORT": str(gw_port), "WHATSAPP_API_BASE_URL": sim.base_url,
        "WIDGET_ALLOWED_ORIGINS": "*"}))
    url, rasa = stack.gateway_url, stack.settings.rasa_url
    questions = load_questions()
    rng = random.Random(7)
    st, warm = Stats(), Stats()
    try:
        connector = aiohttp.TCPConnector(limit=args.customers + 20)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            await rest_customer(http, url, "warm-up", questions[:2], warm, time.monotonic() + 60)
            deadline = time.monotonic() + args.max_seconds
            jobs = []
            for i in range(args.customers):
                texts = script(i, args.turns, questions, rng)
                kind = ("rest", "ws", "whatsapp")[i % 3]
                if kind == "rest":
                    jobs.append(rest_customer(http, url, f"load-rest-{i}-{uuid.uuid4().hex[:6]}", texts, st, deadline))
                elif kind == "ws":
                    jobs.append(ws_customer(http, url, f"loadws{i:04d}{uuid.uuid4().hex[:12]}", texts, st, deadline))
                else:
                    jobs.append(wa_customer(sim, f"4917{i:08d}", texts, st, deadline))
            t0 = time.perf_counter()
            await asyncio.gather(*jobs)
            elapsed = time.perf_counter() - t0
        await asyncio.sleep(1.0)  # let the last deliveries land before counting
        result = {"gateway": st.summary(elapsed),
                  "verification": check_storage(Path(env["DATABASE_URL"].split("///", 1)[1]), st, warm)}
        if not args.no_rasa_alone:
            n_rest = max(1, args.customers)
            result["rasa_alone"] = await run_load(rasa + "/webhooks/rest/webhook", n_rest, args.turns, questions, "load")
    finally:
        await loop.run_in_executor(None, stack.stop)
        await sim.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=30, help="concurrent customers, split over the three channels")
    ap.add_argument("--turns", type=int, default=4, help="FAQ messages per customer (hand-off customers send 3)")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop starting new turns after this")
    ap.add_argument("--no-rasa-alone", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = ap.parse_args()
    if not 1 <= args.customers <= 300 or not 1 <= args.turns <= 100 or not 1 <= args.max_seconds <= 3600:
        print("error: --customers must be 1..300, --turns 1..100, --max-seconds 1..3600", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    result = asyncio.run(run(args))
    out = {"benchmark": "load", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "loadavg_before": [round(x, 2) for x in load_before],
                       "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
           "customers": args.customers, "turns": args.turns, **result}
    g, v = result["gateway"], result["verification"]
    print(f"gateway: {g['answered_turns']} turns in {g['seconds']} s = {g['messages_per_s']} msg/s, "
          f"p50 {g['p50_ms']} / p95 {g['p95_ms']} / p99 {g['p99_ms']} ms, errors {g['errors']}, clarify {g['clarify_turns']}")
    print(f"per channel: {g['per_channel']}")
    print(f"stored exactly once: {v['exactly_once']} {v['stored_inbound']} (sent {v['sent']}), "
          f"every turn answered: {v['every_turn_answered']}")
    if "rasa_alone" in result:
        r = result["rasa_alone"]
        print(f"Rasa alone (REST, {r['concurrency']} conversations): {r['messages_per_s']} msg/s, "
              f"p50 {r['p50_ms']} / p95 {r['p95_ms']} ms, errors {r['errors']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"written {args.out}")
    return 0 if v["exactly_once"] and v["every_turn_answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
