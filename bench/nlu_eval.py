"""Choose the NLU pipeline by measurement: 5-fold cross-validation (`rasa test nlu`) of candidate
configs on data/nlu, intent macro-F1 overall and per language (en/de/tr/ja), and how the short
knowledge-base examples (one or two words: "refund", "iptal", "返金") of each held-out fold are read:
how many go to small talk (yes/no/hello/bye/thanks) or to the hand-off instead of the knowledge base.

    .venv/bin/python bench/nlu_eval.py [--configs a.yml,b.yml] [--folds 5]

Results: bench/results/nlu_eval.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ops.stack import rasa_env, rasa_executable  # noqa: E402
from knowledge_base.language import detect  # noqa: E402
from bench.nlu_heldout import HANDS_OFF, SMALL_TALK  # noqa: E402

DEFAULT_CONFIGS = ["bench/configs/nlu_light.yml", "bench/configs/nlu_light_use_s1.yml",
                   "bench/configs/nlu_light_use_s4.yml", "bench/configs/nlu_rasa_init_default.yml"]


def is_short(text: str) -> bool:
    """One or two words (a Japanese message without spaces counts by length)."""
    words = text.split()
    return len(words) <= 2 and (len(text) <= 8 or detect(text, supported=("en", "de", "tr", "ja")).lang != "ja")


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    labels = {g for g, _ in pairs} | {p for _, p in pairs}
    f1s = []
    for lab in {g for g, _ in pairs}:
        tp = sum(1 for g, p in pairs if g == lab and p == lab)
        fp = sum(1 for g, p in pairs if g != lab and p == lab)
        fn = sum(1 for g, p in pairs if g == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    del labels
    return sum(f1s) / len(f1s) if f1s else float("nan")


def run(config: str, folds: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    proc = subprocess.run([str(rasa_executable()), "test", "nlu", "--nlu", "data/nlu", "--config", config,
                           "--cross-validation", "--folds", str(folds), "--out", str(out), "--successes",
                           "--no-plot"], cwd=ROOT, env=rasa_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    elapsed = time.time() - t0
    preds = []
    for name in ("intent_successes.json", "intent_errors.json"):
        p = out / name
        if p.exists():
            for e in json.loads(p.read_text(encoding="utf-8")):
                preds.append((e["text"], e["intent"], (e.get("intent_prediction") or {}).get("name")))
    by_lang: dict[str, list] = defaultdict(list)
    for text, gold, pred in preds:
        by_lang[detect(text, supported=("en", "de", "tr", "ja")).lang].append((gold, pred))
    allp = [(g, p) for _, g, p in preds]
    short = [p for text, g, p in preds if g == "faq" and is_short(text)]
    return {"config": config, "examples": len(preds), "seconds": round(elapsed, 1),
            "accuracy": round(sum(g == p for g, p in allp) / max(1, len(allp)), 4),
            "macro_f1": round(macro_f1(allp), 4),
            "per_language": {lang: {"n": len(v), "accuracy": round(sum(g == p for g, p in v) / len(v), 4),
                                    "macro_f1": round(macro_f1(v), 4)} for lang, v in sorted(by_lang.items())},
            "short_faq": {"n": len(short), "as_small_talk": sum(p in SMALL_TALK for p in short),
                          "as_hand_off": sum(p in HANDS_OFF for p in short)}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    results = []
    for cfg in args.configs.split(","):
        r = run(cfg, args.folds, ROOT / "var" / "nlu_eval" / Path(cfg).stem)
        results.append(r)
        langs = "  ".join(f"{k} {v['macro_f1']:.3f}" for k, v in r["per_language"].items())
        sf = r["short_faq"]
        print(f"{Path(cfg).stem:28} acc {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  | {langs}  | short faq "
              f"as small talk {sf['as_small_talk']}/{sf['n']}, as hand-off {sf['as_hand_off']}  ({r['seconds']} s)",
              flush=True)
    out = ROOT / "bench" / "results" / "nlu_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"folds": args.folds, "results": results}, indent=2), encoding="utf-8")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
