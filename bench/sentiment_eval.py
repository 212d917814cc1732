"""Accuracy of the sentiment model (knowledge_base/sentiment.py) on public labelled sets, per language.

    .venv/bin/python bench/sentiment_eval.py [--mirror DIR]

- en: the held-out fifth of data/sentiment/en_uci.tsv (Amazon and Yelp review sentences; never trained on);
- de: the held-out fifth of data/sentiment/de_sb10k.tsv (tweets): negative vs positive, and all three classes;
- tr: Turkish product reviews (e-ticaret_urun_yorumlari.csv, 0/1 rows) and ja: Japanese Amazon reviews
  (backend/data/test.csv) — no Turkish or Japanese is trained on, so these measure the transfer across
  languages. They are read from DIR (default: the folder beside the project where the team's
  fetch tool puts repositories) and skipped, said so, when absent.

Reported: rows, accuracy and negative-class F1 (binary sets: the label of the larger of P(negative)
and P(positive)); for de also the 3-class accuracy and macro F1. Results: bench/results/sentiment.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge_base import sentiment  # noqa: E402
from knowledge_base.encoders import load_encoder  # noqa: E402

TR = ("ssedayzc+Analysis-of-E-Commerce-Product-Reviews-with-NLP", "e-ticaret_urun_yorumlari.csv")
JA = ("ympnov22+japanese-sentiment-analyzer", "backend/data/test.csv")


def from_mirror(mirror: Path, repo: str, path: str) -> str | None:
    import subprocess

    git = mirror / repo / "repo"
    if not git.exists():
        return None
    p = subprocess.run(["git", f"--git-dir={git}", "show", f"HEAD:{path}"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def scores(model, encoder, rows: list[tuple[str, str]], binary: bool) -> dict:
    results = model.predict(encoder.encode([t for t, _ in rows]))
    if binary:
        pred = ["negative" if r["p_negative"] >= r["p_positive"] else "positive" for r in results]
    else:
        pred = [r["label"] for r in results]
    gold = [g for _, g in rows]

    def f1(label: str) -> float:
        tp = sum(1 for p, g in zip(pred, gold) if p == g == label)
        fp = sum(1 for p, g in zip(pred, gold) if p == label != g)
        fn = sum(1 for p, g in zip(pred, gold) if g == label != p)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    out = {"rows": len(rows), "accuracy": round(sum(p == g for p, g in zip(pred, gold)) / len(rows), 4),
           "negative_f1": round(f1("negative"), 4)}
    if not binary:
        out["macro_f1"] = round(sum(f1(c) for c in sentiment.LABELS) / len(sentiment.LABELS), 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=str(ROOT.parent / ".mirror"))
    ap.add_argument("--max-rows", type=int, default=2000, help="a seeded sample of at most this many rows per set")
    args = ap.parse_args()
    encoder = load_encoder("use-multilingual", 2)
    t0 = time.perf_counter()
    model = sentiment.ensure_model(encoder)
    train_s = time.perf_counter() - t0
    rng = random.Random(7)

    def sample(rows):
        rows = list(rows)
        rng.shuffle(rows)
        return rows[:args.max_rows]

    sets: dict[str, dict] = {}
    en = [r for r in sentiment.public_rows("en_uci.tsv") if sentiment.held_out(r[0])]
    sets["en_uci_reviews"] = scores(model, encoder, en, True)
    de = [r for r in sentiment.public_rows("de_sb10k.tsv") if sentiment.held_out(r[0])]
    sets["de_sb10k_tweets_pos_neg"] = scores(model, encoder, [r for r in de if r[1] != "neutral"], True)
    sets["de_sb10k_tweets_3_class"] = scores(model, encoder, de, False)
    mirror = Path(args.mirror)
    tr_text = from_mirror(mirror, *TR)
    if tr_text:
        rows = [(r[0], "negative" if r[1] == "0" else "positive") for r in csv.reader(tr_text.lstrip("\ufeff").splitlines(),
                                                                                    delimiter=";")
                if len(r) == 2 and r[1] in ("0", "1")]
        sets["tr_product_reviews"] = scores(model, encoder, sample(rows), True)
    else:
        sets["tr_product_reviews"] = {"skipped": f"{TR[0]} is not in {mirror}"}
    ja_text = from_mirror(mirror, *JA)
    if ja_text:
        rows = [(re.sub(r"\s+", "", r["text"]), "negative" if r["label"] == "0" else "positive")
                for r in csv.DictReader(ja_text.splitlines()) if r.get("label") in ("0", "1")]
        sets["ja_amazon_reviews"] = scores(model, encoder, sample(rows), True)
    else:
        sets["ja_amazon_reviews"] = {"skipped": f"{JA[0]} is not in {mirror}"}
    t1 = time.perf_counter()
    timing = model.predict(encoder.encode(["Where is my parcel? It is late again and nobody answers."] * 200))
    per_message_ms = (time.perf_counter() - t1) / len(timing) * 1000
    out = {"model": sentiment.model_path().name, "encoder": encoder.name, "train_or_load_s": round(train_s, 1),
           "batch_ms_per_message": round(per_message_ms, 2), "sets": sets}
    for name, s in sets.items():
        print(f"{name:28s} " + ("  ".join(f"{k} {v}" for k, v in s.items())))
    print(f"encode + classify: {per_message_ms:.2f} ms per message (batch of 200, 2 threads)")
    dest = ROOT / "bench" / "results" / "sentiment.json"
    dest.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written to {dest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
