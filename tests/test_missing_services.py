"""tests/conftest.py's rule for a test whose service (PostgreSQL, Redis, RabbitMQ, nginx, Chromium) is
missing: under CI=true it fails, on a developer's machine it is skipped with the reason. Each case runs
a small test file in its own pytest, as CI would, and reads the outcome pytest reports."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.ops.stack import free_port
from knowledge_base.config import PROJECT_ROOT

from .conftest import in_ci, require_service

NEEDS_REDIS = """
import redis

from tests.conftest import require_service


def test_needs_redis():
    with require_service("Redis", "127.0.0.1:{port}"):
        redis.Redis(port={port}, socket_connect_timeout=1).ping()
"""

NEEDS_CHROMIUM_AT_IMPORT = """
from tests.conftest import missing_service

missing_service("Chromium", "/nowhere/chromium is not installed")


def test_never_collected():
    pass
"""


def run_pytest(tmp_path, ci: str | None, port: int) -> subprocess.CompletedProcess:
    (tmp_path / "test_needs_redis.py").write_text(NEEDS_REDIS.format(port=port))
    (tmp_path / "test_needs_chromium.py").write_text(NEEDS_CHROMIUM_AT_IMPORT)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if ci is not None:
        env["CI"] = ci
    # Without the Hypothesis and Schemathesis plugins a run starts in 3 s instead of 11. A module's
    # collection error stops a run before any test: here the other module's outcome is wanted too.
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfsE", "-p", "no:cacheprovider",
                           "--continue-on-collection-errors",
                           "-p", "no:hypothesispytest", "-p", "no:schemathesis", "--rootdir", str(tmp_path),
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_under_ci_a_test_whose_service_is_unreachable_fails_and_says_why(tmp_path):
    port = free_port()  # nothing listens there
    out = run_pytest(tmp_path, "true", port)
    report = out.stdout + out.stderr
    assert out.returncode == 1 and "1 failed, 1 error" in out.stdout and "skipped" not in out.stdout, report
    assert f"Redis is not available: 127.0.0.1:{port}: ConnectionError" in out.stdout, report
    assert "CI=true: a test that needs Redis fails instead of skipping" in out.stdout, report
    # a module that needs a missing service at its top level fails its collection
    assert "ERROR test_needs_chromium.py" in out.stdout, report
    assert "Chromium is not available: /nowhere/chromium is not installed" in out.stdout, report


def test_without_ci_it_is_skipped_with_the_reason(tmp_path):
    port = free_port()
    out = run_pytest(tmp_path, None, port)
    report = out.stdout + out.stderr
    assert out.returncode == 0 and "2 skipped" in out.stdout and "failed" not in out.stdout, report
    assert f"Redis is not available: 127.0.0.1:{port}: ConnectionError" in out.stdout, report
    assert "Chromium is not available: /nowhere/chromium is not installed" in out.stdout, report


@pytest.mark.parametrize("value,ci", [("true", True), ("1", True), ("TRUE", True), ("false", False), ("", False),
                                      (None, False)])
def test_what_counts_as_ci(monkeypatch, value, ci):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_a_failed_check_while_reaching_the_service_stays_a_failure(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(AssertionError, match="the answer was wrong"):
        with require_service("Redis", "127.0.0.1:6379"):
            raise AssertionError("the answer was wrong")  # not skipped as "Redis is not available"
