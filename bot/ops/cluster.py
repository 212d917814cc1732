"""`make run-cluster` (``python -m bot cluster``): the product as a cluster on this machine's loopback.

    nginx (Debian's) on GATEWAY_HOST:GATEWAY_PORT ─┬─ gateway 1 ─┐             PostgreSQL: gateway database
        (WebSockets upgraded, a dead replica is    ├─ gateway 2 ─┤── Redis ──  and Rasa's tracker store
         skipped: proxy_next_upstream)             └─ ...        │  (fan-out, rate limits, Rasa's lock store)
    nginx, private ports: Rasa 1..R  ←── the gateways      Rasa ──→ action servers 1..A
                          action servers 1..A ←── Rasa and the gateways (publishing)

The same code and settings as ``make run``; the cluster only changes these defaults (the environment
or the settings file wins): ``DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/selfservice``,
``RASA_TRACKER_STORE_URL=postgresql://postgres@127.0.0.1:5432/selfservice_tracker``,
``REDIS_URL=redis://127.0.0.1:6379/0``, ``RASA_LOCK_STORE_URL=redis://127.0.0.1:6379/1``; databases that
do not exist yet are created. Every action server reads the same index folder (VAR_DIR/index), so a
publish through any of them is served by all (they follow the snapshot pointer). The gateways start
one after the other (the first migrates and seeds), then the cluster is ready when nginx answers
/healthz. A replica that dies is started again while nginx sends its traffic to the others.
Ctrl-C stops everything.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..settings import Settings
from .stack import (Child, Stack, _client_host, free_port, http_ok, rasa_env, rasa_executable, with_thread_defaults,
                    write_rasa_config)

CLUSTER_DEFAULTS = {
    "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/selfservice",
    "RASA_TRACKER_STORE_URL": "postgresql://postgres@127.0.0.1:5432/selfservice_tracker",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "RASA_LOCK_STORE_URL": "redis://127.0.0.1:6379/1",
}


def nginx_executable() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def cluster_settings(env: dict | None = None) -> Settings:
    from ..settings import load_environment

    merged = load_environment(dict(os.environ) if env is None else env)
    for key, value in CLUSTER_DEFAULTS.items():
        merged.setdefault(key, value)
    return Settings.from_env(merged)


def ensure_databases(settings: Settings) -> list[str]:
    """CREATE DATABASE for the PostgreSQL databases that are missing; the names created."""
    import asyncio

    import asyncpg

    created = []
    for url in (settings.database_url, settings.rasa_tracker_store_url):
        if not url.startswith("postgresql"):
            continue
        u = urlparse(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        name = (u.path or "/").lstrip("/")
        admin = u._replace(path="/postgres").geturl()

        async def create(name=name, admin=admin) -> bool:
            conn = await asyncpg.connect(admin, timeout=10)
            try:
                if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                    return False
                await conn.execute(f'CREATE DATABASE "{name}"')
                return True
            finally:
                await conn.close()

        if asyncio.run(create()):
            created.append(name)
    return created


def nginx_config(var: Path, public: tuple[str, int], gateways: list[int], rasa: tuple[int, list[int]],
                 actions: tuple[int, list[int]], whatsapp_webhook_bytes: int) -> str:
    def upstream(name: str, ports: list[int]) -> str:
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
        return f"  upstream {name} {{\n{servers}\n    keepalive 16;\n  }}\n"

    tmp = var / "nginx"
    to_gateways = """      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_connect_timeout 2s;
      proxy_read_timeout 3600s;
      proxy_next_upstream error timeout non_idempotent;
      proxy_next_upstream_tries 3;"""
    return f"""# written by bot/ops/cluster.py for `make run-cluster`
worker_processes 1;
pid {tmp / 'nginx.pid'};
error_log {var / 'logs' / 'nginx-error.log'} warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {tmp / 'body'};
  proxy_temp_path {tmp / 'proxy'};
  fastcgi_temp_path {tmp / 'fastcgi'};
  uwsgi_temp_path {tmp / 'uwsgi'};
  scgi_temp_path {tmp / 'scgi'};
  # bodies and answers stay in memory: nginx's worker may not be able to write temporary files here
  client_body_buffer_size 1m;
  proxy_max_temp_file_size 0;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
{upstream('gateways', gateways)}{upstream('rasa', rasa[1])}{upstream('actions', actions[1])}
  server {{
    listen {public[0]}:{public[1]};
    client_max_body_size 1m;
    location = /nginx-health {{ return 200 "ok"; }}
    # Meta batches up to 1000 WhatsApp updates in one POST: the webhook's own limit (WHATSAPP_WEBHOOK_MAX_BYTES)
    location = /webhooks/whatsapp/webhook {{
      client_max_body_size {whatsapp_webhook_bytes};
      client_body_buffer_size {whatsapp_webhook_bytes};
{to_gateways}
    }}
    location / {{
{to_gateways}
    }}
  }}
  server {{
    listen 127.0.0.1:{rasa[0]};
    client_max_body_size 10m;
    client_body_buffer_size 10m;
    location / {{ proxy_pass http://rasa; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_connect_timeout 2s; proxy_read_timeout 60s; proxy_next_upstream error timeout; }}
  }}
  server {{
    listen 127.0.0.1:{actions[0]};
    client_max_body_size 50m;
    client_body_buffer_size 50m;
    location / {{ proxy_pass http://actions; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_connect_timeout 2s; proxy_read_timeout 300s; proxy_next_upstream error timeout; }}
  }}
}}
"""


@dataclass
class Cluster(Stack):
    """A Stack whose children are nginx, A action servers, R Rasa servers and G gateways."""
    gateways: int = 2
    rasa_servers: int = 2
    action_servers: int = 2
    restarts: bool = True  # a replica that dies is started again while the others carry on

    def build_cluster(self, model: Path, env_extra: dict[str, str] | None = None) -> None:
        from ..editor.publishing import resolve_internal_token

        s = self.settings
        var = self.var_dir
        logs = var / "logs"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (var / "nginx" / sub).mkdir(parents=True, exist_ok=True)
        g_ports = [free_port() for _ in range(self.gateways)]
        r_ports = [free_port() for _ in range(self.rasa_servers)]
        a_ports = [free_port() for _ in range(self.action_servers)]
        rasa_lb, actions_lb = free_port(), free_port()
        self.internal = {"rasa": f"http://127.0.0.1:{rasa_lb}", "actions": f"http://127.0.0.1:{actions_lb}",
                         "gateways": g_ports, "rasa_ports": r_ports, "action_ports": a_ports}
        conf = var / "nginx" / "nginx.conf"
        conf.write_text(nginx_config(var, (s.gateway_host, s.gateway_port), g_ports, (rasa_lb, r_ports),
                                     (actions_lb, a_ports), s.whatsapp.webhook_max_bytes if s.whatsapp else 1024 * 1024),
                   encoding="utf-8")
        wiring = {"RASA_URL": self.internal["rasa"], "ACTION_SERVER_URL": self.internal["actions"],
                  "DATABASE_URL": s.database_url, "RASA_TRACKER_STORE_URL": s.rasa_tracker_store_url,
                  "REDIS_URL": s.redis_url, "RASA_LOCK_STORE_URL": s.rasa_lock_store_url, "VAR_DIR": str(var)}
        base_env = with_thread_defaults({**os.environ, **(env_extra or {}), **wiring,
                                         "INTERNAL_TOKEN": resolve_internal_token(s)})
        wired = Settings.from_env({**base_env})
        endpoints, credentials = write_rasa_config(wired, var)
        renv = {**rasa_env(), **(env_extra or {})}
        app_python = sys.executable
        children = [Child("nginx", [nginx_executable(), "-p", str(var / "nginx"), "-c", str(conf), "-g", "daemon off;"],
                          base_env, logs / "nginx.log", f"http://{_client_host(s.gateway_host)}:{s.gateway_port}/nginx-health")]
        for i, port in enumerate(a_ports, 1):
            children.append(Child(f"action server {i}", [app_python, "-m", "actions.server", "--host", "127.0.0.1",
                                                         "--port", str(port)],
                                  base_env, logs / f"actions-{i}.log", f"http://127.0.0.1:{port}/health"))
        for i, port in enumerate(r_ports, 1):
            children.append(Child(f"rasa {i}", [str(rasa_executable()), "run", "--model", str(model), "--endpoints",
                                                str(endpoints), "--credentials", str(credentials), "--interface",
                                                "127.0.0.1", "--port", str(port), "--response-timeout", "30"],
                                  renv, logs / f"rasa-{i}.log", f"http://127.0.0.1:{port}/webhooks/rest/"))
        for i, port in enumerate(g_ports, 1):
            children.append(Child(f"gateway {i}", [app_python, "-m", "bot", "serve"],
                                  {**base_env, "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)},
                                  logs / f"gateway-{i}.log", f"http://127.0.0.1:{port}/webhooks/rest/"))
        self.children = children

    def start(self) -> None:
        """Everything but the gateways at once; then the gateways one by one (the first migrates and seeds)."""
        others = [c for c in self.children if not c.name.startswith("gateway")]
        for c in others:
            c.start()
        for c in (c for c in self.children if c.name.startswith("gateway")):
            c.start()
            deadline = time.time() + 300
            while not http_ok(c.ready_url):
                if not c.alive():
                    raise RuntimeError(f"{c.name} exited during start-up; log {c.log_path}:\n{c.tail()}")
                if time.time() > deadline:
                    raise TimeoutError(f"{c.name} not ready after 300 s")
                time.sleep(0.3)

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)


def summary(cluster: Cluster) -> str:
    s = cluster.settings
    url = cluster.gateway_url
    return "\n".join([
        "",
        "The self-service support assistant is running as a cluster:",
        f"  nginx (public)       {url}  -> gateways on 127.0.0.1:{', '.join(map(str, cluster.internal['gateways']))}",
        f"  Rasa servers         {', '.join(map(str, cluster.internal['rasa_ports']))} behind {cluster.internal['rasa']}",
        f"  Action servers       {', '.join(map(str, cluster.internal['action_ports']))} behind {cluster.internal['actions']}",
        f"  Gateway database     {urlparse(s.database_url).hostname}:{urlparse(s.database_url).port or 5432}"
        f"{urlparse(s.database_url).path}",
        "  Redis                fan-out, rate limits, Rasa's lock store",
        f"  Logs                 {cluster.var_dir / 'logs'}",
        "Press Ctrl-C to stop.",
    ])
