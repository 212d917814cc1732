"""`python -m bot run` (what `make run` runs): starts everything, prints the URLs, serves, and on
Ctrl-C (SIGINT) stops every child process and exits 0."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bot.settings import Settings
from bot.ops.stack import free_port
from knowledge_base.config import PROJECT_ROOT

from .conftest import get_json

pytestmark = pytest.mark.slow


def _children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def test_run_prints_urls_serves_and_stops_every_child_on_ctrl_c(tmp_path):
    gw, rasa, actions = free_port(), free_port(), free_port()
    env = {**os.environ, "GATEWAY_PORT": str(gw), "RASA_PORT": str(rasa), "RASA_URL": f"http://127.0.0.1:{rasa}",
           "ACTION_SERVER_PORT": str(actions), "ACTION_SERVER_URL": f"http://127.0.0.1:{actions}",
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
           "RASA_TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'tracker.db'}", "VAR_DIR": str(tmp_path)}
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        while True:
            line = proc.stdout.readline()
            assert line, "bot run exited before it was ready:\n" + "".join(lines)
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
            assert time.time() - t0 < 300, "not ready within 300 s"
        out = "".join(lines)
        assert f"http://127.0.0.1:{gw}" in out and f"http://127.0.0.1:{rasa}" in out
        assert f"http://127.0.0.1:{actions}" in out and "/webhooks/rest/webhook" in out
        status, body = get_json(f"http://127.0.0.1:{gw}/healthz")
        assert status == 200 and body["status"] == "ok"
        children = _children_of(proc.pid)
        servers = Settings.from_env(env).rasa_servers  # RASA_SERVERS=auto: 2 on two or more cores
        assert len(children) == 2 + servers  # the action server, the Rasa servers, the gateway
        assert out.count("Rasa server ") == servers
        assert (tmp_path / "logs" / "rasa.log").exists()
        assert (tmp_path / "logs" / f"rasa-{servers}.log").exists() or servers == 1
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "Stopped." in rest
        deadline = time.time() + 10
        while any(_alive(c) for c in children) and time.time() < deadline:
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)], "child processes survived Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_refuses_to_start_when_the_set_up_fails(tmp_path):
    """The index is checked in a forked child (the supervisor does not keep the encoders): its failure
    stops `run` with exit 1 and the reason, and nothing is started."""
    (tmp_path / "articles").mkdir()
    env = {**os.environ, "GATEWAY_PORT": str(free_port()), "VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "KB_ARTICLES_DIR": str(tmp_path / "articles"),
           "KB_INDEX_DIR": str(tmp_path / "index")}
    out = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "error: set-up failed: no valid articles found in" in out.stderr
    assert "Starting the action server" not in out.stdout
