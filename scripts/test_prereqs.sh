#!/usr/bin/env bash
# Things only the tests need, installed or started when missing (idempotent):
#   Debian's Chromium, driven by Playwright in the browser tests (the widget, the inbox, the editor,
#   the dashboard); `playwright install` cannot download browsers here. Debian's nginx. The machine's
#   PostgreSQL, Redis and RabbitMQ, started when installed but stopped.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "Installing Chromium for the browser tests (apt-get) ..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing and apt-get is not available: the browser tests fail under CI=true, else are skipped" >&2
  fi
fi
# Debian's nginx: the load balancer of the cluster test (tests/test_cluster.py)
"$(dirname "$0")/cluster_prereqs.sh"

# The machine's PostgreSQL (5432), Redis (6379) and RabbitMQ (5672), used by the scale-out,
# event-stream, editor and cluster tests: each is started when it is installed but not running
# (directly: a container has no systemd). One that is not installed is not installed here: its tests
# fail under CI=true and are skipped, saying why, elsewhere (tests/conftest.py, missing_service).
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_listening() {  # $1 port, $2 name, $3 seconds
  for _ in $(seq "$3"); do
    if listening "$1"; then return 0; fi
    sleep 1
  done
  echo "warning: $2 was started but does not listen on 127.0.0.1:$1 after $3 s: its tests cannot run" >&2
  return 0
}

if ! listening 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ]; then
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    echo "Starting PostgreSQL $version (cluster main) for the tests ..."
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_listening 5432 PostgreSQL 30
  else
    echo "note: PostgreSQL is not installed: the tests that need it fail under CI=true, else are skipped" >&2
  fi
fi

if ! listening 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Starting Redis for the tests ..."
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_listening 6379 Redis 15
  else
    echo "note: Redis is not installed: the tests that need it fail under CI=true, else are skipped" >&2
  fi
fi

if ! listening 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "Starting RabbitMQ for the tests ..."
    $SUDO rabbitmq-server -detached || true
    wait_listening 5672 RabbitMQ 90  # the Erlang VM takes a while to boot
  else
    echo "note: RabbitMQ is not installed: the tests that need it fail under CI=true, else are skipped" >&2
  fi
fi
