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

# start_service PORT NAME SECONDS PROGRAM COMMAND...: when nothing listens on PORT and PROGRAM is
# installed, COMMAND starts NAME, which then has SECONDS to listen.
start_service() {
  local port="$1" name="$2" seconds="$3" program="$4"
  shift 4
  if listening "$port"; then return 0; fi
  if ! command -v "$program" >/dev/null 2>&1; then
    echo "note: $name is not installed: the tests that need it fail under CI=true, else are skipped" >&2
    return 0
  fi
  echo "Starting $name for the tests ..."
  "$@" || true
  for _ in $(seq "$seconds"); do
    if listening "$port"; then return 0; fi
    sleep 1
  done
  echo "warning: $name was started but does not listen on 127.0.0.1:$port after $seconds s: its tests cannot run" >&2
}

start_redis() {
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

pg_version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)"  # the newest cluster's version
start_service 5432 PostgreSQL 30 pg_ctlcluster $SUDO pg_ctlcluster --skip-systemctl-redirect "${pg_version:-none}" main start
start_service 6379 Redis 15 redis-server start_redis
start_service 5672 RabbitMQ 90 rabbitmq-server $SUDO rabbitmq-server -detached  # the Erlang VM boots slowly
