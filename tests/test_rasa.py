"""Rasa's own checks, run in the Rasa environment: the training data validates, and the
conversation tests in tests/test_stories.yml pass against the trained model."""
from __future__ import annotations

import subprocess

import pytest

from bot.ops.stack import PROJECT_ROOT, ensure_model, rasa_env, rasa_executable

pytestmark = pytest.mark.slow


def test_rasa_data_validate_is_clean():
    proc = subprocess.run(
        [str(rasa_executable()), "data", "validate", "--config", "config.yml", "--domain", "domain.yml",
         "--data", "data/nlu", "data/rules", "data/stories", "--fail-on-warnings"],
        cwd=PROJECT_ROOT, env=rasa_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_conversation_stories_pass(tmp_path):
    model, _ = ensure_model()
    out = tmp_path / "results"
    proc = subprocess.run(
        [str(rasa_executable()), "test", "core", "--model", str(model), "--stories", "tests/test_stories.yml",
         "--out", str(out), "--fail-on-prediction-errors"],
        cwd=PROJECT_ROOT, env=rasa_env(), capture_output=True, text=True, timeout=900)
    failed = out / "failed_test_stories.yml"
    detail = failed.read_text(encoding="utf-8") if failed.exists() else ""
    assert proc.returncode == 0, detail[-6000:] + proc.stdout[-3000:] + proc.stderr[-3000:]
