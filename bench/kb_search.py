"""Knowledge-base search speed at 1k, 10k and 100k index entries (chunks).

    .venv/bin/python bench/kb_search.py [--sizes 1000,10000,100000] [--queries 200]

For each size: index build throughput (entries/s, embedding included), search latency p50/p95 for
one query at a time (encode + search + decision, what the action server does per message), the
approximate index's recall@10 against exact search where one is used, the time from publishing a
one-article edit to the live searcher answering with it (embed that article only, write, swap),
and resident memory. Synthetic articles are built from the public evaluation utterances
(../shared/eval), so the text is real customer language. Results: bench/results/kb_search.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge_base.articles import Article  # noqa: E402
from knowledge_base.chunking import article_entries  # noqa: E402
from knowledge_base.encoders import load_encoder  # noqa: E402
from knowledge_base.index import VectorIndex  # noqa: E402
from knowledge_base.live import LiveKnowledgeBase  # noqa: E402
from knowledge_base.builder import fit_hybrid  # noqa: E402
from knowledge_base.snapshot import commit_snapshot, prepare_snapshot  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def text_pool() -> list[str]:
    texts: list[str] = []
    for rel in ("banking77/train.jsonl", "clinc150/full_train.jsonl", "bitext_customer_support/utterances.jsonl"):
        p = EVAL / rel
        if p.exists():
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    texts.append(json.loads(line)["text"])
    if not texts:
        raise SystemExit(f"error: no evaluation data under {EVAL}")
    return texts


def synthetic_articles(n_entries: int, pool: list[str], seed: int = 0) -> list[Article]:
    """Articles of ~10 entries each: a title, 3 alternative questions, 6 body paragraphs."""
    rng = random.Random(seed)
    arts, total, i = [], 0, 0
    while total < n_entries:
        title = rng.choice(pool)
        questions = tuple(rng.choice(pool) for _ in range(3))
        paras = ["\n\n".join(f"{rng.choice(pool)} {rng.choice(pool)}" for _ in range(2)) for _ in range(3)]
        body = paras[0] + "\n\n## Details\n" + paras[1] + "\n\n## If that did not help\n" + paras[2]
        art = Article(id=f"a{i:06d}-en", title=title, body=body, locale="en", group=f"a{i:06d}", questions=questions)
        arts.append(art)
        total += len(article_entries(art, max_chars=160))
        i += 1
    return arts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--encoder", default=os.environ.get("KB_ENCODER", "use-multilingual"))
    ap.add_argument("--classifier-max-articles", type=int,
                    default=int(os.environ.get("KB_CLASSIFIER_MAX_ARTICLES", 500)))
    ap.add_argument("--hybrid-max-entries", type=int, default=int(os.environ.get("KB_HYBRID_MAX_ENTRIES", 50000)))
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    encoder = load_encoder(args.encoder, threads=1)
    secondary = load_encoder("minilm", threads=1)
    pool = text_pool()
    queries = random.Random(1).sample(pool, args.queries)
    results = []
    for size in sizes:
        root = Path(tempfile.mkdtemp(prefix=f"kb-bench-{size}-"))
        arts = synthetic_articles(size, pool)
        t0 = time.perf_counter()
        # the synthetic articles have short paragraphs: chunk them small so sizes match the label.
        # Like the product: hybrid scoring up to KB_HYBRID_MAX_ENTRIES, dense (FAISS) above.
        hybrid = size <= args.hybrid_max_entries
        extra = {"minilm": secondary} if hybrid else None
        snap = prepare_snapshot(root, arts, encoder, max_chars=160, extra_encoders=extra)
        if hybrid:
            snap.hybrid = fit_hybrid(snap, encoder, secondary, [], classifier_max_articles=args.classifier_max_articles)
        snap = commit_snapshot(root, snap)
        build_s = time.perf_counter() - t0
        entries = snap.manifest["entries"]
        live = LiveKnowledgeBase(root, encoder, extra_encoders={"minilm": secondary})
        live.refresh()
        searcher = live.searcher
        for q in queries[:10]:
            searcher.search(q, lang="en")  # warm-up
        lat = []
        for q in queries:
            t = time.perf_counter()
            searcher.search(q, lang="en")  # English: the costlier path (both encoders)
            lat.append((time.perf_counter() - t) * 1000)
        recall = None
        if snap.index.kind != "flat":
            vecs = encoder.encode(queries[:100])
            exact = VectorIndex.build(encoder.dim, np.array(snap.order, dtype=np.int64), snap.vectors
                                      if snap.vectors is not None else np.load(snap.path / "vectors.npy"),
                                      approx_threshold=10 ** 12)
            a = snap.index.search(vecs, 10)[1]
            e = exact.search(vecs, 10)[1]
            recall = float(np.mean([len(set(a[i]) & set(e[i])) / 10 for i in range(len(vecs))]))
        # one-article edit: publish -> the live searcher answers with the new text
        edited = replace(arts[0], title="How do I order the limited winter roast gift box?",
                         questions=("winter roast gift box",))
        t = time.perf_counter()
        snap2 = prepare_snapshot(root, [edited] + arts[1:], encoder, max_chars=160, extra_encoders=extra)
        if hybrid:
            snap2.hybrid = fit_hybrid(snap2, encoder, secondary, [], classifier_max_articles=args.classifier_max_articles)
        commit_snapshot(root, snap2)
        live.refresh()
        hit = live.searcher.search("limited winter roast gift box", lang="en").hits[0]
        update_s = time.perf_counter() - t
        assert hit.article_id == edited.id
        row = {"entries": entries, "articles": len(arts), "retrieval": "hybrid" if hybrid else "dense",
               "index": snap.index.kind,
               "build_s": round(build_s, 1), "build_entries_per_s": round(entries / build_s, 1),
               "search_p50_ms": round(float(np.percentile(lat, 50)), 2),
               "search_p95_ms": round(float(np.percentile(lat, 95)), 2),
               "recall_at_10_vs_exact": None if recall is None else round(recall, 3),
               "one_article_publish_to_searchable_s": round(update_s, 2),
               "rss_mb": round(rss_mb(), 0)}
        results.append(row)
        print(json.dumps(row), flush=True)
    out = ROOT / "bench" / "results" / "kb_search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "kb_search", "encoder": encoder.name,
                               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results},
                              indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
