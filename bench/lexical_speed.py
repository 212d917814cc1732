"""BM25 scoring speed on 100k synthetic texts (12 words each from a 20k-word vocabulary).

    .venv/bin/python bench/lexical_speed.py [--texts 100000] [--queries 200]

Prints the build time and per-query latency (p50/p95, six-word queries) and writes
bench/results/lexical_speed.json. Speed is measured here, never asserted in the tests.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval_data import write_results  # noqa: E402
from knowledge_base.lexical import BM25Index  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    words = vocab[rng.integers(0, len(vocab), size=(args.texts, 12))]
    texts = [" ".join(row) for row in words.tolist()]
    t0 = time.perf_counter()
    idx = BM25Index().build(texts, ["en"] * len(texts))
    build_s = time.perf_counter() - t0
    queries = [" ".join(rng.choice(vocab, size=6)) for _ in range(args.queries)]
    times = []
    for q in queries:
        t = time.perf_counter()
        idx.scores(q, "en")
        times.append((time.perf_counter() - t) * 1000)
    out = {"texts": args.texts, "queries": args.queries, "build_s": round(build_s, 3),
           "query_ms_p50": round(float(np.percentile(times, 50)), 3),
           "query_ms_p95": round(float(np.percentile(times, 95)), 3)}
    print(out)
    print("wrote", write_results(ROOT / "bench" / "results" / "lexical_speed.json", out))


if __name__ == "__main__":
    main()
