"""Regenerate the settings table in README.md from bot.settings.SETTINGS_DOC (the one list of
settings). Run with the application environment: .venv/bin/python scripts/readme_settings.py"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.settings import SETTINGS_DOC  # noqa: E402

HEADER = "| setting | default | meaning |"


def table() -> list[str]:
    rows = [HEADER, "|---|---|---|"]
    for key, (default, meaning) in SETTINGS_DOC.items():
        shown = f"`{default or '(empty)'}`"
        meaning = meaning.replace("|", "\\|")
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    return rows


def main() -> int:
    path = ROOT / "README.md"
    lines = path.read_text(encoding="utf-8").split("\n")
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    lines[start:end] = table()
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"README.md: settings table has {len(SETTINGS_DOC)} settings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
