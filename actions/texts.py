"""Texts the actions need outside a response (such as button titles), read from domain.yml.

Rasa does not send the domain with each action call (selective domain: it costs time on every
message), so the few texts an action builds itself come from the same file, loaded once.
"""
from __future__ import annotations

import functools

import yaml

from knowledge_base.config import PROJECT_ROOT


@functools.lru_cache(maxsize=1)
def _responses() -> dict:
    with (PROJECT_ROOT / "domain.yml").open(encoding="utf-8") as fh:
        return (yaml.safe_load(fh) or {}).get("responses") or {}


def response_text(name: str, lang: str | None) -> str:
    """The response's text in ``lang``, else its default (English) variant."""
    variants = _responses().get(name) or []
    default = name
    for v in variants:
        conds = v.get("condition") or []
        if not conds:
            default = v.get("text") or default
        elif any(c.get("name") == "language" and c.get("value") == lang for c in conds):
            return v.get("text") or default
    return default
