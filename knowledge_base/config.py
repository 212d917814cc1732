"""Knowledge-base settings, read from the environment (documented in README.md, "Settings")."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    pass


def _path(env: dict, key: str, default: Path) -> Path:
    raw = env.get(key)
    p = Path(raw) if raw else default
    return p if p.is_absolute() else (PROJECT_ROOT / p)


def _int(env: dict, key: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        val = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a whole number, got {raw!r}") from None
    if not lo <= val <= hi:
        raise SettingsError(f"{key} must be between {lo} and {hi}, got {val}")
    return val


def _float(env: dict, key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        val = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from None
    if not lo <= val <= hi:
        raise SettingsError(f"{key} must be between {lo} and {hi}, got {val}")
    return val


def _choice(env: dict, key: str, default: str, choices: tuple[str, ...]) -> str:
    val = env.get(key) or default
    if val not in choices:
        raise SettingsError(f"{key} must be one of {', '.join(choices)}, got {val!r}")
    return val


@dataclass(frozen=True)
class KBSettings:
    articles_dir: Path
    index_dir: Path
    encoder: str
    encoder_threads: int
    default_locale: str
    calibration_file: Path | None
    poll_seconds: float
    retrieval: str = "hybrid"
    secondary_encoder: str = "minilm"
    hybrid_max_entries: int = 50_000
    classifier_max_articles: int = 500
    max_handoff_rate: float = 0.10

    @classmethod
    def from_env(cls, env: dict | None = None) -> "KBSettings":
        env = dict(os.environ if env is None else env)
        calib_raw = env.get("KB_CALIBRATION_FILE", "data/eval/sample_validation.jsonl")
        calib = None if calib_raw.lower() in ("", "none", "off") else _path(env, "KB_CALIBRATION_FILE", Path(calib_raw))
        return cls(
            articles_dir=_path(env, "KB_ARTICLES_DIR", Path("data/knowledge_base")),
            index_dir=_path(env, "KB_INDEX_DIR", Path("var/index")),
            encoder=env.get("KB_ENCODER") or "use-multilingual",
            encoder_threads=_int(env, "KB_ENCODER_THREADS", 1, 1, 64),
            default_locale=env.get("KB_DEFAULT_LOCALE") or "en",
            calibration_file=calib,
            poll_seconds=_float(env, "KB_SNAPSHOT_POLL_SECONDS", 1.0, 0.1, 60.0),
            retrieval=_choice(env, "KB_RETRIEVAL", "hybrid", ("hybrid", "dense")),
            secondary_encoder=env.get("KB_SECONDARY_ENCODER") or "minilm",
            hybrid_max_entries=_int(env, "KB_HYBRID_MAX_ENTRIES", 50_000, 0, 10_000_000),
            classifier_max_articles=_int(env, "KB_CLASSIFIER_MAX_ARTICLES", 500, 0, 1_000_000),
            max_handoff_rate=_float(env, "KB_MAX_HANDOFF_RATE", 0.10, 0.0, 1.0),
        )
