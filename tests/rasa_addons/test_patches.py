"""rasa_addons.patches in the Rasa environment: the fast check of action-server responses gives
jsonschema's verdict on Rasa's own response schema, for thousands of valid and broken responses."""
from __future__ import annotations

import json
import subprocess

from bot.ops.stack import PROJECT_ROOT, rasa_env, rasa_venv

HERE = PROJECT_ROOT / "tests" / "rasa_addons"


def test_action_result_check_agrees_with_jsonschema_on_every_response():
    proc = subprocess.run([str(rasa_venv() / "bin" / "python"), str(HERE / "patches_check.py"), "3000"],
                          cwd=PROJECT_ROOT, env=rasa_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["by_event_type_used"] is True
    assert found["disagree"] == 0, found["first_disagreement"]
    assert found["cases"] == 3000 and found["valid"] > 500 and found["invalid"] > 500, found
    # twenty of the event types in Rasa's schema were among the samples, as Rasa serialises them
    assert len(found["event_types"]) == 20, found["event_types"]
