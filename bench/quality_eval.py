"""Answer quality of the shipped knowledge-base search, end to end, on questions it was not tuned on.

    .venv/bin/python bench/quality_eval.py [--lines sample,sample-en,...] [--quick] [--out FILE]

Every line builds the product's own snapshot with the product's code (knowledge_base.snapshot,
builder.fit_hybrid, builder.finish_calibration: what `make run` does), calibrates it on labelled
calibration questions or, in the "/self" lines, on nothing but its articles (what a knowledge base
imported with `python -m knowledge_base import --kb` gets), and asks the product's Searcher the
held-out test questions: ranking (top-1, recall@3, MRR), AUROC of the confidence (answerable against
unanswerable questions) and the outcomes of the decision at the shipped thresholds (see
knowledge_base.evaluate.search_metrics). No test question is used to choose anything.

Lines (/work/shared/eval and the product's sample help centre):
  sample            data/knowledge_base; calibrated on data/eval/sample_validation.jsonl; tested on
                    sample_test.jsonl (en, de, tr, ja; 12 unanswerable questions per language)
  sample-en         the English articles only: German, Turkish and Japanese questions to an English
                    knowledge base (cross-lingual)
  banking77-indomain  53 of the 77 banking intents are articles (title = one training utterance,
                    "also asked as" = the other training utterances but 10); calibration = those 10 per
                    intent + the training utterances of 12 held-out intents; test = the test utterances of
                    the 53 + those of 12 OTHER held-out intents: a bank's customers asking what its help
                    centre does not cover (in-domain, unlike CLINC's out-of-scope)
  clinc150          150 intents; calibration = val (with its 100 out-of-scope), test = test (1,000 out-of-scope)
  covid-de, covid-en  the COVID FAQ (question + answer, no "also asked as"): calibrated on one seeded half
                    of the queries, tested on the other, and the reverse (figures pooled over both)
  <line>/self       the same knowledge base calibrated on its own articles only (no labelled question)
Lines with messages of at most TOPIC_WORDS words ("refund", "iptal", ...) also report those apart.

Results: bench/results/quality.json (and a table on stdout). Embeddings are cached per text in
var/cache/embeddings/ (bench/eval_data.py's cache).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict

from eval_data import EVAL, ROOT, SEED, EmbeddingCache, _jsonl, log, write_results  # noqa: E402 (sets threads, sys.path)

import numpy as np  # noqa: E402

from knowledge_base.articles import Article, load_markdown_folder, published  # noqa: E402
from knowledge_base.builder import finish_calibration, fit_hybrid  # noqa: E402
from knowledge_base.confidence import TOPIC_WORDS, word_count  # noqa: E402
from knowledge_base.evaluate import Question, load_questions, search_metrics  # noqa: E402
from knowledge_base.search import Searcher  # noqa: E402
from knowledge_base.snapshot import prepare_snapshot  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "quality.json"
KEYS = ("top1", "recall@3", "mrr", "auroc", "in_scope_accuracy", "wrong_answer_rate", "clarify_rate",
        "in_scope_handoff_rate", "oos_recall", "wrong_share_of_answers")


class CachedEncoder:
    """The product's Encoder interface over the bench's per-text embedding cache."""

    def __init__(self, cache: EmbeddingCache, spec: str):
        self.cache, self.spec = cache, spec
        self.name = cache._name(spec)
        self.dim = 512 if spec == "use-multilingual" else 384

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        return self.cache.encode(self.spec, list(texts)).astype(np.float32)


def build(articles: list[Article], calibration: list[Question], encoders: dict, canonical: str = "en") -> Searcher:
    """The product's snapshot of ``articles``, calibrated on ``calibration`` (empty: on the articles)."""
    use, minilm = encoders["use"], encoders["minilm"]
    with tempfile.TemporaryDirectory() as tmp:
        snap = prepare_snapshot(tmp, articles, use, extra_encoders={"minilm": minilm})
    snap.hybrid = fit_hybrid(snap, use, minilm, calibration, classifier_max_articles=500, canonical=canonical)
    finish_calibration(snap, use, {"minilm": minilm}, canonical, calibration, "calibration questions")
    return Searcher(snap, use, canonical, extra_encoders={"minilm": minilm})


# ---- knowledge bases and question sets -----------------------------------------------------------
def intent_articles(texts_by_intent: dict[str, list[str]]) -> list[Article]:
    """One article per intent: its first utterance as the title, the others as "also asked as"."""
    return [Article(id=i, title=t[0], body="", locale="en", group=i, questions=tuple(t[1:]))
            for i, t in sorted(texts_by_intent.items()) if t]


def questions(rows, lang="en") -> list[Question]:
    return [Question(text, gold, lang) for text, gold in rows]


def sample_line(english_only: bool):
    arts = published(load_markdown_folder(ROOT / "data" / "knowledge_base").articles)
    if english_only:
        arts = [a for a in arts if a.locale == "en"]
    cal = load_questions(ROOT / "data/eval/sample_validation.jsonl")
    test = load_questions(ROOT / "data/eval/sample_test.jsonl")
    return [(arts, cal, test)]


def banking77_line():
    train, test = _jsonl(EVAL / "banking77" / "train.jsonl"), _jsonl(EVAL / "banking77" / "test.jsonl")
    by = defaultdict(list)
    for r in train:
        by[r["label"]].append(r["text"])
    labels = sorted(by)
    rng = np.random.default_rng(SEED)
    order = [labels[i] for i in rng.permutation(len(labels))]
    cal_out, test_out, kb = set(order[:12]), set(order[12:24]), sorted(order[24:])
    shuffled = {lab: [by[lab][i] for i in rng.permutation(len(by[lab]))] for lab in labels}
    arts = intent_articles({lab: shuffled[lab][10:] for lab in kb})
    cal = questions([(t, lab) for lab in kb for t in shuffled[lab][:10]] +
                    [(t, None) for lab in sorted(cal_out) for t in shuffled[lab][:40]])
    tst = questions([(r["text"], r["label"] if r["label"] in kb else None) for r in test
                     if r["label"] in kb or r["label"] in test_out])
    return [(arts, cal, tst)]


def clinc150_line():
    d = EVAL / "clinc150"
    train, val, test = (_jsonl(d / f"full_{s}.jsonl") for s in ("train", "val", "test"))
    by = defaultdict(list)
    for r in train:
        if r["in_scope"]:
            by[r["label"]].append(r["text"])
    arts = intent_articles(by)
    q = lambda rows: questions([(r["text"], r["label"] if r["in_scope"] else None) for r in rows])  # noqa: E731
    return [(arts, q(val), q(test))]


def covid_line(lang: str):
    docs = _jsonl(EVAL / "covid_faq_de_en" / f"kb_{lang}.jsonl")
    arts = [Article(id=d["doc_id"], title=d["question"], body=d.get("answer") or d["question"], locale=lang,
                    group=d["doc_id"]) for d in docs]
    rows = [r for r in _jsonl(EVAL / "covid_faq_de_en" / f"queries_{lang}.jsonl") if r["relevant_doc_ids"]]
    qs = [Question(r["text"], tuple(r["relevant_doc_ids"]), lang) for r in rows]  # any relevant FAQ is right
    perm = np.random.default_rng(SEED + 1).permutation(len(qs))
    a, b = [qs[i] for i in sorted(perm[: len(qs) // 2])], [qs[i] for i in sorted(perm[len(qs) // 2:])]
    return [(arts, a, b), (arts, b, a)]


LINES = {
    "sample": lambda: sample_line(False),
    "sample-en": lambda: sample_line(True),
    "banking77-indomain": banking77_line,
    "clinc150": clinc150_line,
    "covid-de": lambda: covid_line("de"),
    "covid-en": lambda: covid_line("en"),
}
SELF = ("sample", "sample-en", "banking77-indomain", "clinc150")  # the lines with "also asked as" questions


def pooled(parts: list[dict]) -> dict:
    """Figures of several folds, weighted by their questions."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for k in KEYS:
        vals = [(p[k], p["in_scope" if k not in ("oos_recall",) else "out_of_scope"]) for p in parts
                if p.get(k) is not None]
        tot = sum(w for _, w in vals)
        out[k] = round(sum(v * w for v, w in vals) / tot, 4) if tot else None
    out["questions"] = sum(p["questions"] for p in parts)
    return out


def run_line(name: str, self_calibrated: bool, encoders: dict, quick: bool) -> dict:
    t0 = time.time()
    parts, reports, per_lang = [], [], defaultdict(list)
    for arts, cal, test in LINES[name]():
        if quick and len(test) > 600:
            keep = np.sort(np.random.default_rng(SEED).choice(len(test), 600, replace=False))
            test = [test[i] for i in keep]
        searcher = build(arts, [] if self_calibrated else cal, encoders)
        m = search_metrics(searcher, test)
        topics = [q for q in test if word_count(q.text) <= TOPIC_WORDS]
        if topics:
            m["topics"] = {k: v for k, v in search_metrics(searcher, topics).items() if k != "per_lang"}
        parts.append(m)
        for lang, v in m.get("per_lang", {}).items():
            per_lang[lang].append(v)
        reports.append((searcher.snapshot.hybrid or {}).get("calibration"))
    res = {**pooled(parts), "seconds": round(time.time() - t0, 1), "articles": len({a.group for a in arts}),
           "calibration": reports if len(reports) > 1 else reports[0]}
    if any("topics" in p for p in parts):
        res["topics"] = pooled([p["topics"] for p in parts if "topics" in p])
    if len(per_lang) > 1:
        res["per_lang"] = {lang: pooled(v) for lang, v in per_lang.items()}
    return res


def table(results: dict) -> str:
    head = f"{'line':<32}" + "".join(f"{k[:12]:>13}" for k in KEYS)
    out = [head, "-" * len(head)]
    for name, r in results.items():
        rows = [(name, r)] + [(f"  [{lang}]", v) for lang, v in (r.get("per_lang") or {}).items()]
        if r.get("topics"):
            rows.append((f"  [<= {TOPIC_WORDS} words]", r["topics"]))
        for label, v in rows:
            out.append(f"{label:<32}" + "".join(f"{v[k]:>13.3f}" if v.get(k) is not None else f"{'-':>13}"
                                                 for k in KEYS))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [n for n in LINES] + [f"{n}/self" for n in SELF]
    ap.add_argument("--lines", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    ap.add_argument("--quick", action="store_true", help="at most 600 test questions a line")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    chosen = [n.strip() for n in args.lines.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        ap.error(f"unknown line(s): {', '.join(unknown)}")
    cache = EmbeddingCache()
    encoders = {"use": CachedEncoder(cache, "use-multilingual"), "minilm": CachedEncoder(cache, "minilm")}
    results = {}
    for n in chosen:
        base, _, mode = n.partition("/")
        log(f"{n} ...")
        results[n] = run_line(base, mode == "self", encoders, args.quick)
        cache.save()
        log(f"  {n}: " + ", ".join(f"{k} {results[n].get(k)}" for k in KEYS))
    text = table(results)
    print(text)
    out = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": args.quick, "seed": SEED,
           "results": results, "table_text": text}
    log(f"wrote {write_results(args.out, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
