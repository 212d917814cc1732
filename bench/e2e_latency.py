"""End-to-end latency through the gateway, side by side with the same load sent straight to
Rasa's own REST channel, in one run.

    .venv/bin/python bench/e2e_latency.py [--messages 20] [--concurrency 1,10,50] [--url URL --rasa-url URL]

Without --url it starts the whole stack itself (as `make run` does) on free ports with private
databases, and stops it afterwards. Each "conversation" is one sender sending questions back to back;
questions are the sample knowledge base's test questions in en/de/tr/ja. Results go to
bench/results/e2e_latency.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def load_questions() -> list[str]:
    path = ROOT / "data" / "eval" / "sample_test.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def run_load(url: "str | list[str]", concurrency: int, per_conversation: int, questions: list[str],
                   tag: str) -> dict:
    """Conversations sending back to back; with several URLs (several Rasa servers) conversation i
    goes to URL i modulo their number."""
    urls = [url] if isinstance(url, str) else list(url)
    latencies: list[float] = []
    errors = 0
    rng = random.Random(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 10)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def conversation(i: int) -> None:
            nonlocal errors
            sender = f"bench-{tag}-{concurrency}-{i}-{time.time_ns()}"
            target = urls[i % len(urls)]
            for _ in range(per_conversation):
                body = {"sender": sender, "message": rng.choice(questions)}
                t0 = time.perf_counter()
                try:
                    async with session.post(target, json=body) as resp:
                        raw = await resp.read()
                        # an empty answer is a failure too (e.g. an action that errored inside Rasa)
                        if resp.status != 200 or not json.loads(raw or b"[]"):
                            errors += 1
                            continue
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(conversation(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"concurrency": concurrency, "servers": len(urls), "messages": len(latencies), "errors": errors,
            "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "messages_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0}


async def bench(gateway: str, rasa: list[str], levels: list[int], per_conversation: int) -> dict:
    questions = load_questions()
    results: dict = {"gateway": [], "rasa_alone": []}
    rasa_hooks = [u + "/webhooks/rest/webhook" for u in rasa]
    # warm up both paths once
    await run_load(gateway + "/webhooks/rest/webhook", 2, 2, questions, "warm")
    await run_load(rasa_hooks, 2, 2, questions, "warm")
    for c in levels:
        g = await run_load(gateway + "/webhooks/rest/webhook", c, per_conversation, questions, "gw")
        r = await run_load(rasa_hooks, c, per_conversation, questions, "rasa")
        results["gateway"].append(g)
        results["rasa_alone"].append(r)
        print(f"concurrency {c:>3}: gateway p50 {g['p50_ms']:>7} ms  p95 {g['p95_ms']:>7} ms  "
              f"{g['messages_per_s']:>6} msg/s  errors {g['errors']}   |   Rasa alone p50 {r['p50_ms']:>7} ms  "
              f"p95 {r['p95_ms']:>7} ms  {r['messages_per_s']:>6} msg/s  errors {r['errors']}", flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running gateway (default: start the stack here)")
    ap.add_argument("--rasa-url", help="the Rasa server(s) behind that gateway (comma-separated)")
    ap.add_argument("--messages", type=int, default=20, help="messages per conversation")
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "e2e_latency.json"))
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if not 1 <= args.messages <= 1000 or not all(1 <= c <= 500 for c in levels):
        print("error: --messages must be 1..1000 and each concurrency 1..500", file=sys.stderr)
        return 2

    stack = None
    if args.url:
        if not args.rasa_url:
            print("error: --rasa-url is required with --url", file=sys.stderr)
            return 2
        gateway, rasa = args.url.rstrip("/"), [u.strip().rstrip("/") for u in args.rasa_url.split(",") if u.strip()]
    else:
        from bot.ops.stack import start_private_stack

        stack, _env = start_private_stack("bench-e2e-")
        gateway, rasa = stack.gateway_url, stack.rasa_urls
    try:
        results = asyncio.run(bench(gateway, rasa, levels, args.messages))
    finally:
        if stack is not None:
            stack.stop()
    out = {"benchmark": "e2e_latency", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "messages_per_conversation": args.messages, **results,
           "note": "Rasa alone = the same questions sent to Rasa's own REST channel (no gateway, no storage); "
                   "both paths run the same Rasa model and action server."}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
