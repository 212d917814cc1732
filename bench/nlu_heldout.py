"""Intent classification of the trained model on a held-out test set that `rasa train` never sees
(tests/nlu_heldout/<lang>.yml), per language: accuracy, macro-F1, and how short topic messages
("payment", "iptal", "返金") and complaints about an order or product are read.

    .venv/bin/python bench/nlu_heldout.py [--model models/<hash>.tar.gz]

Writes bench/results/nlu_heldout.json. tests/test_nlu_heldout.py runs the same evaluation in
`make test` and asserts floors a little under these figures.

A message the FallbackClassifier marks `nlu_fallback` goes to the knowledge base exactly as `faq`
does (data/rules/faq.yml), so the two are one class here: what matters is where the message goes.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ops.stack import ensure_model, rasa_env, rasa_executable  # noqa: E402

HELDOUT_DIR = ROOT / "tests" / "nlu_heldout"
LANGUAGES = ("en", "de", "tr", "ja")
RESULTS = ROOT / "bench" / "results" / "nlu_heldout.json"
TO_KB = "faq"  # nlu_fallback is counted as this: both run action_answer_from_kb
# What a topic word must never be read as: each of these answers something the customer did not say.
SMALL_TALK = ("affirm", "deny", "greet", "goodbye", "thanks")
HANDS_OFF = ("complain", "request_human")


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    lang: str
    subset: str | None  # "short_topic", "product_complaint" or None


def _plain(text: str) -> str:
    """The text as Rasa reports it: entity annotations `[value](entity)` reduced to the value."""
    return re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text).strip()


def load_examples(folder: Path = HELDOUT_DIR) -> list[Example]:
    examples = []
    for lang in LANGUAGES:
        doc = yaml.safe_load((folder / f"{lang}.yml").read_text(encoding="utf-8"))
        for block in doc["nlu"]:
            subset = (block.get("metadata") or {}).get("set")
            for line in block["examples"].splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.append(Example(_plain(line[2:]), block["intent"], lang, subset))
    return examples


def training_texts() -> set[str]:
    """Every example text of data/nlu (lower-cased), to prove the test set is not in it."""
    texts = set()
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
            for line in (block.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    texts.add(_plain(line.strip()[2:]).lower())
    return texts


def predict(model: Path, folder: Path = HELDOUT_DIR) -> dict[str, str]:
    """`rasa test nlu` of the model on the folder: text -> predicted intent."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([str(rasa_executable()), "test", "nlu", "--model", str(model), "--nlu", str(folder),
                               "--out", out, "--successes", "--no-plot"],
                              cwd=ROOT, env=rasa_env(), capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
        predicted = {}
        for name in ("intent_successes.json", "intent_errors.json"):
            path = Path(out) / name
            if path.exists():
                for e in json.loads(path.read_text(encoding="utf-8")):
                    predicted[e["text"].strip()] = (e.get("intent_prediction") or {}).get("name") or "None"
    return predicted


def _where(intent: str) -> str:
    return TO_KB if intent == "nlu_fallback" else intent


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    f1s = []
    for label in sorted({g for g, _ in pairs}):
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def summarise(examples: list[Example], predicted: dict[str, str]) -> dict:
    """Figures per language, and every short topic or product complaint that went anywhere but the
    knowledge base."""
    per_lang: dict[str, dict] = {}
    misread: list[dict] = []
    for lang in LANGUAGES:
        mine = [e for e in examples if e.lang == lang]
        pairs = [(e.intent, _where(predicted[e.text])) for e in mine]
        row = {"n": len(pairs), "accuracy": round(sum(g == p for g, p in pairs) / len(pairs), 4),
               "macro_f1": round(macro_f1(pairs), 4)}
        for subset in ("short_topic", "product_complaint"):
            got = [_where(predicted[e.text]) for e in mine if e.subset == subset]
            row[subset] = {"n": len(got), "to_kb": sum(p == TO_KB for p in got),
                           "as_small_talk": sum(p in SMALL_TALK for p in got),
                           "as_hand_off": sum(p in HANDS_OFF for p in got)}
        per_lang[lang] = row
        misread += [{"lang": lang, "text": e.text, "subset": e.subset, "predicted": predicted[e.text]}
                    for e in mine if e.subset and _where(predicted[e.text]) != TO_KB]
    confusions = Counter((e.intent, _where(predicted[e.text])) for e in examples
                         if e.intent != _where(predicted[e.text]))
    everything = [(e.intent, _where(predicted[e.text])) for e in examples]
    return {"examples": len(examples),
            "accuracy": round(sum(g == p for g, p in everything) / len(everything), 4),
            "macro_f1": round(macro_f1(everything), 4),
            "per_language": per_lang, "misread_topics_and_complaints": misread,
            "confusions": [{"gold": g, "predicted": p, "count": n} for (g, p), n in confusions.most_common()]}


def evaluate(model: Path) -> dict:
    examples = load_examples()
    predicted = predict(model)
    missing = [e.text for e in examples if e.text not in predicted]
    if missing:
        raise RuntimeError(f"rasa test nlu reported no prediction for {missing[:5]}")
    return summarise(examples, predicted)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a trained model (default: the project's, trained if missing)")
    args = ap.parse_args()
    model = Path(args.model) if args.model else ensure_model()[0]
    t0 = time.time()
    result = {"model": model.name, **evaluate(model), "seconds": round(time.time() - t0, 1)}
    for lang, row in result["per_language"].items():
        st, pc = row["short_topic"], row["product_complaint"]
        print(f"{lang}: n {row['n']}  acc {row['accuracy']:.3f}  macro-F1 {row['macro_f1']:.3f}  "
              f"short topics to KB {st['to_kb']}/{st['n']} (small talk {st['as_small_talk']}, hand-off "
              f"{st['as_hand_off']})  product complaints to KB {pc['to_kb']}/{pc['n']}")
    print(f"all: acc {result['accuracy']:.3f}  macro-F1 {result['macro_f1']:.3f}")
    for m in result["misread_topics_and_complaints"]:
        print(f"  misread ({m['lang']}, {m['subset']}): {m['text']!r} -> {m['predicted']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
