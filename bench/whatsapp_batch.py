"""Meta's batched WhatsApp webhooks: how long Meta waits for the 200, and how long until everything in
the batch is stored, for one POST of up to 1000 updates (customer messages from new customers and
"delivered"/"read" statuses of earlier answers), signed over escaped-unicode JSON like Meta's.

    .venv/bin/python bench/whatsapp_batch.py [--updates 1000] [--runs 3]

In-process: the real gateway (create_app, SQLite in a temporary folder, the real channel) with the
WhatsApp simulator as Meta and a scripted Rasa (tests/channels/test_whatsapp_channel.py); answering
is switched off so that only accepting and storing is measured. Two ways are measured, alternately:
"batched" (the channel as it is: a batch of more than INLINE_UPDATES is stored whole and split in
the background) and "inline" (every update stored before the 200, as before the batch journal).
Results go to bench/results/whatsapp_batch.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def one_run(updates: int, inline: bool) -> dict:
    from bot.channels import whatsapp, whatsapp_batches
    from tests.channels.test_whatsapp_channel import wait_until, whatsapp_gateway
    from tests.whatsapp_sim import meta_json, sign

    with tempfile.TemporaryDirectory() as folder:
        async with whatsapp_gateway(Path(folder)) as gw:
            first = [f"4915{i:09d}" for i in range(5)]
            for user in first:
                gw.sim.user(user).auto_statuses = ()
                await gw.sim.send_text(user, "Where is my parcel?")
            await wait_until(lambda: all(len(gw.sim.messages_to(u)) == 2 for u in first), timeout=60)
            outbound = [m["id"] for u in first for m in gw.sim.messages_to(u)]
            whatsapp.WhatsAppChannel._schedule = lambda self, mid: None  # accepting and storing only
            notes = [gw.sim.message_notification(f"4917{i:09d}", {"type": "text", "text": {
                "body": f"Frage {i}: Wo ist mein Paket? Ich habe es vor einer Woche bestellt. Grüße"}})[1]
                for i in range(updates - 2 * len(outbound))]
            notes += [gw.sim.status_notification(w, s) for w in outbound for s in ("delivered", "read")]
            raw = meta_json(gw.sim.batch(notes, one_value=True))
            whatsapp.INLINE_UPDATES = 10 ** 9 if inline else whatsapp_batches.INLINE_UPDATES
            t0 = time.perf_counter()
            status, _ = await gw.sim.deliver(raw, signature=sign(gw.sim.app_secret, raw), timeout=600)
            answered = time.perf_counter() - t0

            def stored() -> bool:
                with gw.db() as db:
                    n = db.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]
                    read = db.execute("SELECT count(*) FROM messages WHERE delivery_status = 'read'").fetchone()[0]
                return n == updates - 2 * len(outbound) + len(first) and read == len(outbound)

            while not stored():  # (polled seldom: the poll runs on the gateway's event loop)
                await asyncio.sleep(0.5)
            return {"status": status, "bytes": len(raw), "seconds_to_200": round(answered, 3),
                    "seconds_to_stored": round(time.perf_counter() - t0, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "whatsapp_batch.json"))
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    from bot.channels import whatsapp

    original_schedule = whatsapp.WhatsAppChannel._schedule
    out = {"benchmark": "whatsapp_batch", "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "updates": args.updates}
    runs: dict[str, list[dict]] = {"batched": [], "inline": []}
    for _ in range(args.runs):  # the two ways in turn, so that a busier moment of the machine hits both
        for way in runs:
            runs[way].append(asyncio.run(one_run(args.updates, inline=way == "inline")))
            whatsapp.WhatsAppChannel._schedule = original_schedule
            print(way, runs[way][-1], flush=True)
    for way, done in runs.items():
        out[way] = {"runs": done, "median_seconds_to_200": statistics.median(r["seconds_to_200"] for r in done),
                    "median_seconds_to_stored": statistics.median(r["seconds_to_stored"] for r in done)}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k not in ("batched", "inline")} |
                     {w: {k: v for k, v in out[w].items() if k != "runs"} for w in ("batched", "inline")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
