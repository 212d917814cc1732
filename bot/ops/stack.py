"""Set-up and supervision of the whole product: train the Rasa model and build the index when
their inputs changed, then start Rasa, the action server and the gateway as child processes and
stop them all cleanly.

Used by ``make run`` (python -m bot run) and by the tests (which start the same stack on free ports).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from knowledge_base.config import PROJECT_ROOT

from ..settings import Settings

RASA_VERSION = "3.6.21"
RASA_DATA_DIRS = ("data/nlu", "data/rules", "data/stories")
RASA_INPUT_FILES = ("config.yml", "domain.yml")
RASA_ADDONS = "rasa_addons"
# Rasa's SQL tracker store, with SQLite in WAL mode (rasa_addons/tracker_store.py)
TRACKER_STORE_CLASS = "rasa_addons.tracker_store.TunedSQLTrackerStore"


# Numerical libraries (OpenBLAS, OpenMP) start one thread per core that spins while it waits for
# work. The services encode one short text at a time, so on a small machine those threads only
# take CPU from the other processes (measured: 6.7 ms of CPU per knowledge-base search with them,
# 5.0 without, the same wall time). A value set in the environment wins.
THREAD_DEFAULTS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def with_thread_defaults(env: dict[str, str]) -> dict[str, str]:
    return {**THREAD_DEFAULTS, **env}


def rasa_venv() -> Path:
    return Path(os.environ.get("RASA_VENV") or PROJECT_ROOT / ".venv-rasa")


def rasa_executable() -> Path:
    exe = rasa_venv() / "bin" / "rasa"
    if not exe.exists():
        raise FileNotFoundError(f"Rasa is not installed at {exe}: run 'make setup' first")
    return exe


def rasa_inputs(root: Path = PROJECT_ROOT) -> list[Path]:
    files = [root / f for f in RASA_INPUT_FILES]
    for d in (*RASA_DATA_DIRS, RASA_ADDONS):
        base = root / d
        if base.is_dir():
            files.extend(sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".py")
                                and "__pycache__" not in p.parts))
    return files


def rasa_model_hash(root: Path = PROJECT_ROOT) -> str:
    """Hash of everything training depends on: config, domain, training data, custom components."""
    h = hashlib.sha256(f"rasa=={RASA_VERSION}\n".encode())
    for f in rasa_inputs(root):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def models_dir() -> Path:
    return Path(os.environ.get("RASA_MODELS_DIR") or PROJECT_ROOT / "models")


def model_path(root: Path = PROJECT_ROOT) -> Path:
    return models_dir() / f"{rasa_model_hash(root)}.tar.gz"


def rasa_env() -> dict[str, str]:
    env = with_thread_defaults(dict(os.environ))
    env.update({"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
                "PYTHONPATH": str(PROJECT_ROOT), "SANIC_WORKERS": "1", "LOG_LEVEL_LIBRARIES": "ERROR"})
    return env


def ensure_model(log=print) -> tuple[Path, bool]:
    """Train the Rasa model when (and only when) its inputs changed. Returns (path, trained?)."""
    target = model_path()
    if target.is_file():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"Training the Rasa model (inputs changed; cache key {target.name[:-len('.tar.gz')]}) ...")
    cmd = [str(rasa_executable()), "train", "--config", "config.yml", "--domain", "domain.yml",
           "--data", *[d for d in RASA_DATA_DIRS if (PROJECT_ROOT / d).is_dir()],
           "--out", str(target.parent), "--fixed-model-name", target.name[:-len(".tar.gz")],
           # No reuse of cached components: Rasa 3.6 restores a cached component under its old node
           # name when a component is added before it in config.yml, and the model fails to load.
           "--force"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=rasa_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode != 0 or not target.is_file():
        sys.stderr.write(proc.stdout[-8000:])
        raise RuntimeError(f"Rasa training failed (exit {proc.returncode}); see the output above")
    log(f"Rasa model trained in {time.time() - t0:.0f} s: {target}")
    return target, True


def ensure_index(settings: Settings, log=print) -> bool:
    """Build the index from the gateway database's published articles (the editors' source of truth;
    seeded from the articles folder when the table is empty), so a restart never reverts an edit."""
    import asyncio

    from knowledge_base.builder import ensure_index as build

    from ..editor.publishing import seeded_published_set

    try:
        articles = asyncio.run(seeded_published_set(settings))
    except Exception as exc:  # e.g. PostgreSQL not up yet: the gateway's start-up sync aligns the index later
        log(f"knowledge base: the gateway database is not reachable ({type(exc).__name__}: {exc}); "
            "indexing the articles folder instead")
        articles = None
    out = build(settings.kb, show_progress=True, articles=articles or None)
    for p in out.problems:
        log(f"knowledge base: skipped {p}")
    m = out.snapshot.manifest
    if out.built:
        log(f"Knowledge base indexed: {m['articles']} articles, {m['entries']} entries "
            f"({m['embedded_vectors']} embedded), version {m['version']}")
    return out.built


def ensure_sentiment(log=print) -> bool:
    """The sentiment model (knowledge_base.sentiment) for the current data: trained when missing."""
    from knowledge_base import sentiment
    from knowledge_base.encoders import load_encoder

    if sentiment.model_path().exists():
        return False
    sentiment.ensure_model(load_encoder("use-multilingual", 2), log=log)
    return True


def write_rasa_config(settings: Settings, var_dir: Path) -> tuple[Path, Path]:
    """endpoints.yml and credentials.yml for the Rasa server, from the settings."""
    import yaml

    rasa_dir = var_dir / "rasa"
    rasa_dir.mkdir(parents=True, exist_ok=True)
    # Selective domain: Rasa otherwise serialises the whole domain into every action call.
    endpoints: dict = {"action_endpoint": {"url": settings.action_server_url + "/webhook",
                                           "enable_selective_domain": True}}
    ts = settings.rasa_tracker_store_url
    if ts.startswith("sqlite:///"):
        db = ts[len("sqlite:///"):]
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        endpoints["tracker_store"] = {"type": TRACKER_STORE_CLASS, "dialect": "sqlite", "db": db}
    else:
        u = urlparse(ts)
        endpoints["tracker_store"] = {"type": TRACKER_STORE_CLASS, "dialect": "postgresql", "url": u.hostname or "127.0.0.1",
                                      "port": u.port or 5432, "db": (u.path or "/rasa").lstrip("/"),
                                      "username": u.username or "", "password": u.password or ""}
    if settings.rasa_lock_store_url:
        u = urlparse(settings.rasa_lock_store_url)
        endpoints["lock_store"] = {"type": "redis", "url": u.hostname or "127.0.0.1", "port": u.port or 6379,
                                   "db": int((u.path or "/0").lstrip("/") or 0), "key_prefix": "selfservice"}
    if settings.event_broker_url:  # Rasa's own tracker events, through its pika event broker
        u = urlparse(settings.event_broker_url)
        endpoints["event_broker"] = {"type": "pika", "url": u.hostname, "port": u.port or 5672,
                                     "username": unquote(u.username or "guest"),
                                     "password": unquote(u.password or "guest"),
                                     "queues": [settings.rasa_event_queue]}
    ep = rasa_dir / "endpoints.yml"
    ep.write_text(yaml.safe_dump(endpoints, sort_keys=False), encoding="utf-8")
    cred = rasa_dir / "credentials.yml"
    cred.write_text("rest: {}\n", encoding="utf-8")
    return ep, cred


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


@dataclass
class Child:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.cmd, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Stack:
    settings: Settings
    var_dir: Path
    children: list[Child] = field(default_factory=list)

    def build_children(self, model: Path, env_extra: dict[str, str] | None = None) -> None:
        s = self.settings
        base_env = with_thread_defaults(dict(os.environ))
        base_env.update(env_extra or {})
        from ..editor.publishing import resolve_internal_token

        # the gateway's calls to the action server's internal /kb routes (publishing) carry this secret
        base_env["INTERNAL_TOKEN"] = resolve_internal_token(s)
        logs = self.var_dir / "logs"
        endpoints, credentials = write_rasa_config(s, self.var_dir)
        app_python = sys.executable
        renv = rasa_env()
        renv.update(env_extra or {})
        gateway_env = dict(base_env)
        rasa_children = []
        if s.rasa_servers == 1:
            urls = [s.rasa_url]
            ports = [s.rasa_port]
        else:  # RASA_SERVERS: on RASA_PORT and the free ports after it; the gateway reaches them all
            ports = rasa_ports(s.rasa_host, s.rasa_port, s.rasa_servers)
            urls = [f"http://{_client_host(s.rasa_host)}:{p}" for p in ports]
            gateway_env["RASA_URL"] = ",".join(urls)
        for i, (port, url) in enumerate(zip(ports, urls)):
            rasa_children.append(Child(
                "rasa" if i == 0 else f"rasa {i + 1}",
                [str(rasa_executable()), "run", "--model", str(model), "--endpoints", str(endpoints),
                 "--credentials", str(credentials), "--interface", s.rasa_host, "--port", str(port),
                 "--response-timeout", "30"],
                renv, logs / ("rasa.log" if i == 0 else f"rasa-{i + 1}.log"), url + "/webhooks/rest/"))
        self.children = [
            Child("action server", [app_python, "-m", "actions.server", "--host", s.action_server_host,
                                    "--port", str(s.action_server_port)],
                  base_env, logs / "actions.log", s.action_server_url + "/health"),
            *rasa_children,
            Child("gateway", [app_python, "-m", "bot", "serve"], gateway_env, logs / "gateway.log",
                  f"http://{_client_host(s.gateway_host)}:{s.gateway_port}/webhooks/rest/"),
        ]

    @property
    def rasa_urls(self) -> list[str]:
        return [c.ready_url[:-len("/webhooks/rest/")] for c in self.children if c.name.startswith("rasa")]

    def start(self) -> None:
        for c in self.children:
            c.start()

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.time() + timeout
        pending = list(self.children)
        while pending:
            for c in list(pending):
                if not c.alive():
                    raise RuntimeError(f"{c.name} exited during start-up (exit {c.proc.returncode}); "
                                       f"log {c.log_path}:\n{c.tail()}")
                if http_ok(c.ready_url):
                    pending.remove(c)
            if pending and time.time() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f} s: {', '.join(c.name for c in pending)}")
            if pending:
                time.sleep(0.3)
        gateway = self.gateway_url
        while not http_ok(gateway + "/healthz"):
            if time.time() > deadline:
                raise TimeoutError(f"{gateway}/healthz did not report ready within {timeout:.0f} s")
            time.sleep(0.3)

    @property
    def gateway_url(self) -> str:
        return f"http://{_client_host(self.settings.gateway_host)}:{self.settings.gateway_port}"

    def stop(self) -> None:
        for c in reversed(self.children):
            c.stop()

    def check_alive(self) -> Child | None:
        return next((c for c in self.children if not c.alive()), None)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def rasa_ports(host: str, first: int, n: int) -> list[int]:
    """``first`` and the next n-1 ports after it that nothing listens on."""
    import socket

    ports, candidate = [first], first + 1
    while len(ports) < n and candidate < 65536:
        with socket.socket() as sock:
            try:
                sock.bind((_client_host(host), candidate))
                ports.append(candidate)
            except OSError:
                pass
        candidate += 1
    return ports


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(stack: Stack) -> str:
    s = stack.settings
    lines = [
        "",
        "The self-service support assistant is running:",
        f"  Gateway (public)     {stack.gateway_url}",
        f"    REST channel       POST {stack.gateway_url}/webhooks/rest/webhook",
        f"    Health             {stack.gateway_url}/healthz",
        f"    Agent inbox        {stack.gateway_url}/inbox  (add an agent: python -m bot agents add EMAIL --name N --role admin)",
        f"    Editors' API       {stack.gateway_url}/api/editor  (OpenAPI: {stack.gateway_url}/api/openapi.json; --role editor)",
        *(f"  Rasa server          {url}  (private)" for url in stack.rasa_urls),
        f"  Action server        {s.action_server_url}  (private)",
        f"  Logs                 {stack.var_dir / 'logs'}",
        "Try: curl -s -XPOST " + stack.gateway_url + "/webhooks/rest/webhook -H 'Content-Type: application/json' "
        + "-d '" + json.dumps({"sender": "me", "message": "How do I reset my password?"}) + "'",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def which_python310() -> str | None:
    return shutil.which("python3.10")


def start_private_stack(prefix: str, extra_env: dict[str, str] | None = None) -> tuple["Stack", dict[str, str]]:
    """The whole product on free loopback ports with private databases in a new temporary folder
    (for benchmarks). Returns the started, ready stack and the environment it runs with."""
    import tempfile

    var = Path(tempfile.mkdtemp(prefix=prefix))
    gw, rp, ap_ = free_port(), free_port(), free_port()
    env = {"GATEWAY_PORT": str(gw), "RASA_PORT": str(rp), "RASA_URL": f"http://127.0.0.1:{rp}",
           "ACTION_SERVER_PORT": str(ap_), "ACTION_SERVER_URL": f"http://127.0.0.1:{ap_}",
           "DATABASE_URL": f"sqlite+aiosqlite:///{var / 'gateway.db'}",
           "RASA_TRACKER_STORE_URL": f"sqlite:///{var / 'tracker.db'}", "LOG_LEVEL": "WARNING",
           "RATE_LIMIT_SENDER_PER_MINUTE": "0",  # benchmarks send back to back on purpose
           **(extra_env or {})}
    settings = Settings.from_env({**os.environ, **env})
    model, _ = ensure_model()
    ensure_index(settings)
    ensure_sentiment()
    stack = Stack(settings, var)
    stack.build_children(model, env_extra=env)
    stack.start()
    stack.wait_ready(timeout=300)
    return stack, env
