"""rasa_addons.tracker_store in the Rasa environment, against a real SQLite database: what it remembers
reads back exactly as Rasa's own SQL tracker store reads the rows, after deletions by the gateway,
writes by another server and a new session."""
from __future__ import annotations

import json
import subprocess

from bot.ops.stack import PROJECT_ROOT, rasa_env, rasa_venv

HERE = PROJECT_ROOT / "tests" / "rasa_addons"


def test_remembered_conversations_read_back_as_rasa_reads_the_database(tmp_path):
    proc = subprocess.run([str(rasa_venv() / "bin" / "python"), str(HERE / "tracker_store_check.py"),
                           str(tmp_path / "tracker.db"), str(PROJECT_ROOT / "domain.yml")],
                          cwd=PROJECT_ROOT, env=rasa_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"remembered_after_saves": True, "same_after_turns": True, "events": 2 + 4 * 5,  # from session_started on (action_session_start is earlier)
                     "deleted_reads_none": True, "after_deletion_only_new_rows": True, "other_writer_seen": True,
                     "new_session_same": True, "new_session_events": 7, "remembered_rows_match": True,
                     "off_same": True, "journal_mode": "wal"}
