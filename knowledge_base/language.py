"""Language identification for short customer messages.

Short messages ("ok", "hallo") are ambiguous, so the conversation's current language, then the
channel's or browser's hint, act as a prior; a message switches the language only when the
detector is confident.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

SUPPORTED = ("en", "de", "tr", "ja")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_TURKISH_CHARS = re.compile(r"[ğĞışŞİ]")
_GERMAN_CHARS = re.compile(r"[äöüßÄÖÜ]")
_WORD = re.compile(r"\w+", re.UNICODE)
# Emails, links, order numbers and numbers say nothing about the language.
_NEUTRAL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|https?://\S+|www\.\S+|\bBB-?\d+\b|\d+",
                      re.IGNORECASE)

# One-word messages the detector gets wrong without a prior: "ok" is written in every language (the
# detector said Turkish, .66), "Hallo" is German (it said English, .85); Japanese goes by its script.
_NEUTRAL_WORDS = {"ok", "okay", "okey", "k", "kk", "thx", "lol"}
_WORD_LANG = {"hallo": "de", "moin": "de", "servus": "de", "tschüss": "de", "tschüs": "de", "danke": "de",
              "hello": "en", "hi": "en", "hey": "en", "thanks": "en", "bye": "en",
              "merhaba": "tr", "selam": "tr", "tamam": "tr", "teşekkürler": "tr", "sağol": "tr"}

_detector = None
_detector_lock = threading.Lock()


def _lingua(languages: tuple[str, ...]):
    global _detector
    with _detector_lock:
        if _detector is None or _detector[0] != languages:
            from lingua import IsoCode639_1, LanguageDetectorBuilder

            codes = [getattr(IsoCode639_1, code.upper()) for code in languages if code != "ja"]
            if len(codes) < 2:  # lingua needs at least two candidates
                codes = codes + [IsoCode639_1.EN, IsoCode639_1.DE]
            det = LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_preloaded_language_models().build()
            _detector = (languages, det)
        return _detector[1]


@dataclass(frozen=True)
class Detection:
    lang: str
    confidence: float
    reason: str  # "script", "word", "detector", "previous", "hint", "default"


def normalise_hint(hint: str | None, supported: tuple[str, ...] = SUPPORTED) -> str | None:
    """'de-DE', 'de_AT', 'DE' -> 'de' when supported, else None."""
    if not hint or not isinstance(hint, str):
        return None
    code = re.split(r"[-_]", hint.strip().lower(), 1)[0]
    return code if code in supported else None


def detect(text: str, previous: str | None = None, hint: str | None = None,
           supported: tuple[str, ...] = SUPPORTED, default: str = "en",
           switch_confidence: float = 0.80) -> Detection:
    previous = normalise_hint(previous, supported)
    hint = normalise_hint(hint, supported)
    prior = previous or hint
    text = _NEUTRAL.sub(" ", (text or "").strip()).strip()
    if not _WORD.search(text) or text.startswith("/"):  # nothing language-bearing, or a button payload
        return Detection(prior or default, 0.0, "previous" if previous else ("hint" if hint else "default"))
    word = text.strip(" .!?,;:").lower()
    if word in _NEUTRAL_WORDS:
        return Detection(prior or default, 0.0, "previous" if previous else ("hint" if hint else "default"))
    if not prior and _WORD_LANG.get(word) in supported:
        return Detection(_WORD_LANG[word], 0.9, "word")
    if "ja" in supported and (_KANA.search(text) or (_CJK.search(text) and not re.search(r"[A-Za-z]{3}", text))):
        return Detection("ja", 1.0, "script")
    latin = tuple(code for code in supported if code != "ja")
    if not latin:
        return Detection(prior or default, 0.0, "default")
    words = _WORD.findall(text)
    scores: dict[str, float] = {}
    for cv in _lingua(latin).compute_language_confidence_values(text):
        code = cv.language.iso_code_639_1.name.lower()
        if code in latin:
            scores[code] = cv.value
    if "tr" in scores and _TURKISH_CHARS.search(text):
        scores["tr"] = max(scores["tr"], 0.9)
    if "de" in scores and _GERMAN_CHARS.search(text) and not _TURKISH_CHARS.search(text):
        scores["de"] = max(scores["de"], 0.85)
    best = max(scores, key=scores.get) if scores else default
    conf = scores.get(best, 0.0)
    source = "previous" if previous else "hint"
    if prior:
        if best == prior:
            return Detection(prior, conf, source)
        # Switching away from the conversation's language needs a real sentence, not a fragment or a
        # value typed into a form ("not-an-email", "Anna Schmidt"), and a clear lead over it.
        short = len(words) < 4 or len(text) < 16
        lead = conf - scores.get(prior, 0.0)
        if short or not (conf >= switch_confidence or lead >= 0.3):
            return Detection(prior, scores.get(prior, 0.0), source)
        return Detection(best, conf, "detector")
    if (len(words) < 3 or len(text) < 12) and conf < 0.6:
        return Detection(default, conf, "default")
    return Detection(best, conf, "detector")
