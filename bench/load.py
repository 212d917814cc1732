"""Load test over the three customer channels at once, with a loss and duplicate check afterwards.

    .venv/bin/python bench/load.py [--customers 30] [--turns 4] [--max-seconds 300] [--no-rasa-alone] [--cluster]
                                   [--targets]

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
own REST channel on the same machine in the same run. With --cluster the same customers then go through
`make run-cluster` (nginx in front of 2 gateways, 2 Rasa and 2 action servers on new PostgreSQL
databases and Redis), verified the same way on PostgreSQL. Results: bench/results/load.json.

With --targets the same stack then runs the issue's target scenarios, FAQ questions only and every
customer sending back to back (no hand-offs): 50 and 10 conversations over the REST channel and the
widget's WebSocket (both tell the customer when the bot's turn is over), the same over WhatsApp
(where a customer only knows the turn is over when no reply came for RESPITE seconds, so its
conversations cannot be back to back), and Rasa alone at 50 and 10. Each scenario is verified like
the mixed run (every message it sent stored exactly once, every turn answered).
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
RESPITE = 0.3  # seconds without a WhatsApp reply after which a customer takes the bot's turn as over
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
            await asyncio.sleep(RESPITE)
            if len(sim.messages_to(wa_id)) == n:
                break
            n = len(sim.messages_to(wa_id))
        st.clarify += any((m.get("interactive") or {}).get("type") == "list" for m in sim.messages_to(wa_id)[before:])


def check_storage(rows: list[tuple[str, str | None]], st: Stats, warm: Stats) -> dict:
    """Every accepted customer message stored exactly once; counts per channel (with the warm-up's).
    ``rows``: (channel, platform_message_id) of every inbound message in the gateway database."""
    stored = {ch: sum(1 for c, _ in rows if c == ch) for ch in ("rest", "webchat", "whatsapp")}
    ids = [p for _, p in rows if p]
    return {"stored_inbound": stored, "duplicate_platform_ids": len(ids) - len(set(ids)),
            "sent": {"rest": st.sent["rest"] + warm.sent["rest"], "webchat": st.sent["ws"], "whatsapp": st.sent["whatsapp"]},
            "exactly_once": stored == {"rest": st.sent["rest"] + warm.sent["rest"], "webchat": st.sent["ws"],
                                       "whatsapp": st.sent["whatsapp"]} and len(ids) == len(set(ids)),
            "unanswered_turns": st.unanswered[:20], "every_turn_answered": not st.unanswered}


INBOUND = ("SELECT c.channel, m.platform_message_id FROM messages m JOIN conversations c "
           "ON c.id = m.conversation_id WHERE m.direction = 'in'")


def sqlite_rows(db_path: Path, after_id: int = 0) -> list[tuple]:
    """Inbound messages stored after message id ``after_id`` (one scenario's, as they run one by one)."""
    with sqlite3.connect(db_path) as db:
        return db.execute(INBOUND + " AND m.id > ?", (after_id,)).fetchall()


def sqlite_last_id(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]


async def postgres_rows(url: str) -> list[tuple]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(INBOUND)]
    finally:
        await conn.close()


def make_sim(gw_port: int):
    from tests.whatsapp_sim.simulator import WhatsAppSimulator

    return WhatsAppSimulator(webhook_url=f"http://127.0.0.1:{gw_port}/webhooks/whatsapp/webhook",
                             app_secret=WA_SETTINGS["WHATSAPP_APP_SECRET"],
                             access_token=WA_SETTINGS["WHATSAPP_ACCESS_TOKEN"],
                             phone_number_id=WA_SETTINGS["WHATSAPP_PHONE_NUMBER_ID"])


async def drive(url: str, sim, args, prefix: str, *, customers: int | None = None,
                channels: tuple[str, ...] = ("rest", "ws", "whatsapp"), faq_only: bool = False,
                wa_prefix: str = "4917") -> tuple[Stats, Stats, float]:
    """The customers of one run against the gateway (or the load balancer) at ``url``: customer i is
    on ``channels[i % len(channels)]``; every fifth one asks for a person unless ``faq_only``."""
    questions = load_questions()
    rng = random.Random(7)
    st, warm = Stats(), Stats()
    customers = customers or args.customers
    connector = aiohttp.TCPConnector(limit=customers + 20)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await rest_customer(http, url, f"{prefix}-warm-up", questions[:2], warm, time.monotonic() + 60)
        deadline = time.monotonic() + args.max_seconds
        jobs = []
        for i in range(customers):
            texts = [rng.choice(questions) for _ in range(args.turns)] if faq_only else script(i, args.turns, questions, rng)
            kind = channels[i % len(channels)]
            if kind == "rest":
                jobs.append(rest_customer(http, url, f"{prefix}-rest-{i}-{uuid.uuid4().hex[:6]}", texts, st, deadline))
            elif kind == "ws":
                jobs.append(ws_customer(http, url, f"{prefix}ws{i:04d}{uuid.uuid4().hex[:12]}", texts, st, deadline))
            else:
                jobs.append(wa_customer(sim, f"{wa_prefix}{i:08d}", texts, st, deadline))
        t0 = time.perf_counter()
        await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - t0
    await asyncio.sleep(1.0)  # let the last deliveries land before counting
    return st, warm, elapsed


async def run(args) -> dict:
    from bot.ops.stack import free_port, start_private_stack

    gw_port, sim_port = free_port(), free_port()
    sim = make_sim(gw_port)
    await sim.start(port=sim_port)
    loop = asyncio.get_running_loop()
    stack, env = await loop.run_in_executor(None, lambda: start_private_stack("bench-load-", {
        **WA_SETTINGS, "GATEWAY_PORT": str(gw_port), "WHATSAPP_API_BASE_URL": sim.base_url,
        "WIDGET_ALLOWED_ORIGINS": "*", "RATE_LIMIT_WHATSAPP_PER_MINUTE": "0"}))
    url, rasa = stack.gateway_url, stack.rasa_urls
    db_path = Path(env["DATABASE_URL"].split("///", 1)[1])
    rasa_hooks = [u + "/webhooks/rest/webhook" for u in rasa]
    try:
        st, warm, elapsed = await drive(url, sim, args, "load")
        result = {"rasa_servers": len(rasa), "gateway": st.summary(elapsed),
                  "verification": check_storage(sqlite_rows(db_path), st, warm)}
        if not args.no_rasa_alone:
            result["rasa_alone"] = await run_load(rasa_hooks, max(1, args.customers), args.turns, load_questions(), "load")
        if args.targets:
            result["targets"] = await run_targets(url, sim, args, db_path, rasa_hooks)
    finally:
        await loop.run_in_executor(None, stack.stop)
        await sim.stop()
    return result


TARGET_SCENARIOS = (  # name, conversations, channels
    ("faq_50_rest_ws", 50, ("rest", "ws")),
    ("faq_10_rest_ws", 10, ("rest", "ws")),
    ("faq_50_whatsapp", 50, ("whatsapp",)),
    ("faq_10_whatsapp", 10, ("whatsapp",)),
)


async def run_targets(url: str, sim, args, db_path: Path, rasa_hooks: list[str]) -> dict:
    """The issue's targets: FAQ questions only, every customer sending back to back."""
    out: dict = {}
    for k, (name, customers, channels) in enumerate(TARGET_SCENARIOS):
        before = sqlite_last_id(db_path)
        st, warm, elapsed = await drive(url, sim, args, f"t{k}", customers=customers, channels=channels, faq_only=True,
                                        wa_prefix=f"49{k + 2}")
        out[name] = {"conversations": customers, "channels": list(channels), **st.summary(elapsed),
                     "verification": check_storage(sqlite_rows(db_path, before), st, warm)}
        g = out[name]
        print(f"{name}: {g['messages_per_s']} msg/s, p50 {g['p50_ms']} / p95 {g['p95_ms']} ms, "
              f"errors {g['errors']}, stored exactly once: {g['verification']['exactly_once']}", flush=True)
    for customers in (50, 10):
        r = await run_load(rasa_hooks, customers, args.turns, load_questions(), f"target{customers}")
        out[f"rasa_alone_{customers}"] = r
        print(f"Rasa alone, {customers} conversations: {r['messages_per_s']} msg/s, p95 {r['p95_ms']} ms", flush=True)
    return out


async def run_cluster(args) -> dict:
    """The same customers through `make run-cluster` (nginx, 2 gateways, 2 Rasa, 2 action servers) on new
    databases of the machine's PostgreSQL and its Redis (dropped afterwards)."""
    import signal
    import subprocess
    import tempfile

    import asyncpg

    from bot.ops.stack import free_port

    tag = uuid.uuid4().hex[:8]
    pg = os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432")
    port, sim_port = free_port(), free_port()
    sim = make_sim(port)
    await sim.start(port=sim_port)
    var = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    db = f"bench_{tag}"
    env = {**os.environ, **WA_SETTINGS, "VAR_DIR": str(var), "GATEWAY_PORT": str(port), "LOG_LEVEL": "WARNING",
           "WHATSAPP_API_BASE_URL": sim.base_url, "WIDGET_ALLOWED_ORIGINS": "*", "REDIS_PREFIX": f"bench-{tag}",
           "DATABASE_URL": f"postgresql+asyncpg://{pg}/{db}", "RASA_TRACKER_STORE_URL": f"postgresql://{pg}/{db}_tracker",
           "RATE_LIMIT_SENDER_PER_MINUTE": "0", "RATE_LIMIT_WHATSAPP_PER_MINUTE": "0"}
    out = (var / "cluster.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "cluster", "--gateways", str(args.cluster_gateways),
                             "--rasa", str(args.cluster_rasa), "--actions", str(args.cluster_actions)],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        while b"(ready" not in (var / "cluster.out").read_bytes():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the cluster did not start: " + (var / "cluster.out").read_text()[-2000:])
            await asyncio.sleep(1)
        st, warm, elapsed = await drive(f"http://127.0.0.1:{port}", sim, args, "cluster")
        rows = await postgres_rows(f"postgresql://{pg}/{db}")
        return {"replicas": {"gateways": args.cluster_gateways, "rasa": args.cluster_rasa,
                             "action_servers": args.cluster_actions},
                "gateway": st.summary(elapsed), "verification": check_storage(rows, st, warm)}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
        await sim.stop()
        conn = await asyncpg.connect(f"postgresql://{pg}/postgres")
        try:
            for name in (db, f"{db}_tracker"):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=30, help="concurrent customers, split over the three channels")
    ap.add_argument("--turns", type=int, default=4, help="FAQ messages per customer (hand-off customers send 3)")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop starting new turns after this")
    ap.add_argument("--no-rasa-alone", action="store_true")
    ap.add_argument("--cluster", action="store_true",
                    help="also run the same customers through make run-cluster (PostgreSQL, Redis, nginx)")
    ap.add_argument("--targets", action="store_true",
                    help="also run the target scenarios (FAQ only, 50 and 10 conversations back to back)")
    for name in ("gateways", "rasa", "actions"):
        ap.add_argument(f"--cluster-{name}", type=int, default=2, choices=range(1, 9), metavar="1-8")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = ap.parse_args()
    if not 1 <= args.customers <= 300 or not 1 <= args.turns <= 100 or not 1 <= args.max_seconds <= 3600:
        print("error: --customers must be 1..300, --turns 1..100, --max-seconds 1..3600", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    result = asyncio.run(run(args))
    if args.cluster:
        result["cluster"] = asyncio.run(run_cluster(args))
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
    if "targets" in result:
        tv = [t["verification"] for name, t in result["targets"].items() if not name.startswith("rasa_alone")]
        v = {"exactly_once": v["exactly_once"] and all(x["exactly_once"] for x in tv),
             "every_turn_answered": v["every_turn_answered"] and all(x["every_turn_answered"] for x in tv)}
    if "cluster" in result:
        c, cv = result["cluster"]["gateway"], result["cluster"]["verification"]
        print(f"cluster {result['cluster']['replicas']}: {c['answered_turns']} turns in {c['seconds']} s = "
              f"{c['messages_per_s']} msg/s, p50 {c['p50_ms']} / p95 {c['p95_ms']} / p99 {c['p99_ms']} ms, "
              f"errors {c['errors']}; stored exactly once: {cv['exactly_once']}, every turn answered: "
              f"{cv['every_turn_answered']}")
        v = {"exactly_once": v["exactly_once"] and cv["exactly_once"],
             "every_turn_answered": v["every_turn_answered"] and cv["every_turn_answered"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"written {args.out}")
    return 0 if v["exactly_once"] and v["every_turn_answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
