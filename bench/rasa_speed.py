"""Rasa server speed: the project's pipeline and policies (config.yml) against `rasa init`'s defaults
(DIET + TED, bench/configs/nlu_rasa_init_default.yml), trained on the same data and domain, served
side by side with the same action server, measured with the same load in one run.

    .venv/bin/python bench/rasa_speed.py [--messages 15] [--concurrency 1,10]

Results: bench/results/rasa_speed.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e_latency import load_questions, run_load  # noqa: E402

from bot.settings import Settings  # noqa: E402
from bot.ops.stack import (RASA_DATA_DIRS, Child, ensure_index, ensure_model, free_port, http_ok,  # noqa: E402
                       rasa_env, rasa_executable, write_rasa_config)


def train(config: str, out: Path, name: str) -> Path:
    target = out / f"{name}.tar.gz"
    if target.exists():
        return target
    t0 = time.time()
    proc = subprocess.run([str(rasa_executable()), "train", "--config", config, "--domain", "domain.yml",
                           "--data", *RASA_DATA_DIRS, "--out", str(out), "--fixed-model-name", name],
                          cwd=ROOT, env=rasa_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    print(f"trained {name} in {time.time() - t0:.0f} s", flush=True)
    return target


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=15)
    ap.add_argument("--concurrency", default="1,10")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    var = Path(tempfile.mkdtemp(prefix="bench-rasa-speed-"))
    ours, _ = ensure_model()
    default = train("bench/configs/nlu_rasa_init_default.yml", ROOT / "var" / "bench-models", "rasa-init-default")

    actions_port = free_port()
    env = {**os.environ, "ACTION_SERVER_PORT": str(actions_port), "ACTION_SERVER_URL": f"http://127.0.0.1:{actions_port}",
           "LOG_LEVEL": "WARNING"}
    settings = Settings.from_env(env)
    ensure_index(settings)
    children = [Child("actions", [sys.executable, "-m", "actions.server", "--port", str(actions_port)], env,
                      var / "actions.log", f"http://127.0.0.1:{actions_port}/ready")]
    urls = {}
    for label, model in (("project config.yml", ours), ("rasa init defaults", default)):
        port = free_port()
        sub = var / label.split()[0]
        s = Settings.from_env({**env, "RASA_TRACKER_STORE_URL": f"sqlite:///{sub / 'tracker.db'}"})
        endpoints, credentials = write_rasa_config(s, sub)
        children.append(Child(label, [str(rasa_executable()), "run", "--model", str(model), "--endpoints", str(endpoints),
                                      "--credentials", str(credentials), "--interface", "127.0.0.1", "--port", str(port)],
                              rasa_env(), sub / "rasa.log", f"http://127.0.0.1:{port}/webhooks/rest/"))
        urls[label] = f"http://127.0.0.1:{port}"
    for c in children:
        c.start()
    try:
        deadline = time.time() + 300
        while not all(http_ok(c.ready_url) for c in children):
            if time.time() > deadline or any(not c.alive() for c in children):
                raise RuntimeError("servers did not start: " + " | ".join(c.tail(500) for c in children))
            time.sleep(0.5)
        questions = load_questions()
        results: dict = {}

        async def measure():
            for label, url in urls.items():
                await run_load(url + "/webhooks/rest/webhook", 2, 2, questions, "warm")
            for c in levels:
                for label, url in urls.items():
                    r = await run_load(url + "/webhooks/rest/webhook", c, args.messages, questions, label[:4])
                    results.setdefault(label, []).append(r)
                    print(f"{label:20} concurrency {c:>3}: p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7} ms  "
                          f"{r['messages_per_s']:>6} msg/s  errors {r['errors']}", flush=True)

        asyncio.run(measure())
    finally:
        for c in children:
            c.stop()
    out = ROOT / "bench" / "results" / "rasa_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "rasa_speed", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "messages_per_conversation": args.messages, "results": results}, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
