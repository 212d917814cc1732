"""`python -m bot kb import|export` on a private database: the report names broken rows (exit 1)
and loads the rest, exports round-trip (Markdown folder, CSV), and usage errors exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from knowledge_base.config import PROJECT_ROOT


def kb(tmp_path, *args):
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "VAR_DIR": str(tmp_path),
           "ACTION_SERVER_URL": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "bot", "kb", *map(str, args)], env=env, capture_output=True,
                          text=True, cwd=PROJECT_ROOT, timeout=300)


def test_cli_import_and_export(tmp_path):
    p = kb(tmp_path, "export", "--format", "markdown", tmp_path / "md")
    assert p.returncode == 0, p.stderr
    files = sorted((tmp_path / "md").rglob("*.md"))
    assert len(files) == 84 and (tmp_path / "md" / "de" / "cancel-subscription-de.md").is_file()
    p = kb(tmp_path, "import", tmp_path / "md")
    report = json.loads(p.stdout)
    assert p.returncode == 0 and len(report["unchanged"]) == 84 and not report["skipped"]

    assert kb(tmp_path, "export", "--format", "csv", tmp_path / "kb.csv").returncode == 0
    text = (tmp_path / "kb.csv").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    broken = lines[0] + 'new-article-en,new-article,en,A new article,"Body of it.",faq,,published\n' + \
        'bad id,x,en,T,B,,,draft\n' + 'no-body-en,x,en,Title only,,,,draft\n'
    (tmp_path / "broken.csv").write_text(broken, encoding="utf-8")
    p = kb(tmp_path, "import", tmp_path / "broken.csv", "--publish")
    report = json.loads(p.stdout)
    assert p.returncode == 1, p.stderr
    assert report["created"] == ["new-article-en"] and report["published"] == ["new-article-en"]
    assert {(s["line"], s["id"]) for s in report["skipped"]} == {(3, "bad id"), (4, "no-body-en")}
    assert "the index was not updated now" in p.stderr  # no action server here: the next start syncs

    assert kb(tmp_path, "import", tmp_path / "nope.csv").returncode == 2
    assert kb(tmp_path, "import", tmp_path / "kb.csv", "--as-author", "nobody@example.com").returncode == 2
