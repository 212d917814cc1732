"""Sentiment and severity of a customer's message, in any language the multilingual encoder reads.

A logistic regression (negative / neutral / positive) over USE-multilingual sentence vectors, trained
on public labelled data in English and German (data/sentiment/, see its README: review sentences and
tweets) and on this project's own Rasa examples in en/de/tr/ja (data/nlu: "complain" is negative,
"thanks" positive, questions and requests neutral). A fifth of the public rows, chosen by a hash of the
text, is held out for evaluation (bench/sentiment_eval.py), never trained on.

Severity: a message is ``high`` when P(negative) >= 0.85, ``medium`` from 0.6, ``low`` when it is
labelled negative below that, ``none`` otherwise.

The trained model is cached as models/sentiment-<hash of the data>.npz (built by ``python -m bot
setup``; the action server trains it at start when it is missing) and served by the action server's
internal POST /kb/sentiment.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import PROJECT_ROOT

DATA_DIR = PROJECT_ROOT / "data" / "sentiment"
NLU_DIR = PROJECT_ROOT / "data" / "nlu"
MODEL_DIR = PROJECT_ROOT / "models"
LABELS = ("negative", "neutral", "positive")
NLU_LABELS = {"complain": "negative", "thanks": "positive"}
NLU_NEUTRAL = ("faq", "provide_order_number", "provide_email", "provide_name", "request_human",
               "ask_something_else", "ask_for_help", "greet")
HIGH, MEDIUM = 0.85, 0.6


def held_out(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 5 == 0


def public_rows(name: str) -> list[tuple[str, str]]:
    """(text, label) of one file of data/sentiment."""
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                if r.get("label") in LABELS and r.get("text")]


def nlu_rows() -> list[tuple[str, str]]:
    import yaml

    out = []
    for path in sorted(NLU_DIR.glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            intent = item.get("intent") if isinstance(item, dict) else None
            label = NLU_LABELS.get(intent) or ("neutral" if intent in NLU_NEUTRAL else None)
            if label:
                out += [(line[2:].strip(), label) for line in str(item.get("examples", "")).splitlines()
                        if line.startswith("- ") and line[2:].strip()]
    return out


def training_rows() -> list[tuple[str, str]]:
    public = [r for name in ("en_uci.tsv", "de_sb10k.tsv") for r in public_rows(name) if not held_out(r[0])]
    return public + nlu_rows()


def data_hash() -> str:
    h = hashlib.sha256()
    for path in [*sorted(DATA_DIR.glob("*.tsv")), *sorted(NLU_DIR.glob("*.yml")), Path(__file__)]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class SentimentModel:
    coef: np.ndarray  # (classes, dim)
    intercept: np.ndarray  # (classes,)
    classes: tuple[str, ...]
    encoder: str

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        z = np.asarray(vectors, dtype=np.float32) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray) -> list[dict]:
        out = []
        for p in self.probabilities(vectors):
            probs = {c: float(p[i]) for i, c in enumerate(self.classes)}
            label = max(probs, key=probs.get)
            neg = probs["negative"]
            severity = "high" if neg >= HIGH else "medium" if neg >= MEDIUM else "low" if label == "negative" else "none"
            out.append({"label": label, "p_negative": round(neg, 4), "p_positive": round(probs["positive"], 4),
                        "severity": severity})
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, coef=self.coef, intercept=self.intercept, classes=np.array(self.classes),
                 encoder=np.array(self.encoder))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "SentimentModel":
        with np.load(path) as z:
            return cls(z["coef"].astype(np.float32), z["intercept"].astype(np.float32),
                       tuple(str(c) for c in z["classes"]), str(z["encoder"]))


def train(encoder) -> SentimentModel:
    from sklearn.linear_model import LogisticRegression

    rows = training_rows()
    vectors = encoder.encode([t for t, _ in rows])
    clf = LogisticRegression(max_iter=2000, C=2.0, class_weight="balanced", random_state=0)
    clf.fit(vectors, [label for _, label in rows])
    return SentimentModel(clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32),
                          tuple(str(c) for c in clf.classes_), encoder.name)


def model_path() -> Path:
    return MODEL_DIR / f"sentiment-{data_hash()}.npz"


def ensure_model(encoder, log=print) -> SentimentModel:
    """The cached model for the current data, trained (and cached) when missing."""
    path = model_path()
    if path.exists():
        model = SentimentModel.load(path)
        if model.encoder == encoder.name:
            return model
    import time

    t0 = time.perf_counter()
    model = train(encoder)
    model.save(path)
    log(f"Sentiment model trained in {time.perf_counter() - t0:.0f} s: {path.name}")
    return model
