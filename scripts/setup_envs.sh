#!/usr/bin/env bash
# Create or update the two Python environments, idempotently.
#   .venv       Python 3.11: gateway, action server, knowledge base (torch 2.13.0 CPU build)
#   .venv-rasa  Python 3.10: Rasa 3.6.21
# Each is (re)installed only when its requirements changed (a stamp file keeps their hash).
set -euo pipefail
cd "$(dirname "$0")/.."

APP_PYTHON="${APP_PYTHON:-}"
RASA_PYTHON="${RASA_PYTHON:-}"

find_python() {  # $1 = version like 3.11
  local v="$1"
  if command -v pyenv >/dev/null 2>&1; then
    local p
    p="$(PYENV_VERSION="$(pyenv versions --bare | grep -E "^${v}(\.|$)" | sort -V | tail -1)" pyenv which "python${v}" 2>/dev/null || true)"
    if [ -n "$p" ] && "$p" -c 'import sys' >/dev/null 2>&1; then echo "$p"; return; fi
  fi
  for c in "python${v}" "/usr/bin/python${v}" "/usr/local/bin/python${v}"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys' >/dev/null 2>&1; then command -v "$c"; return; fi
  done
  return 1
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# ---------- application environment ----------
APP_HASH="$(hash_of pyproject.toml scripts/setup_envs.sh)"
if [ ! -f .venv/.stamp ] || [ "$(cat .venv/.stamp)" != "$APP_HASH" ]; then
  [ -n "$APP_PYTHON" ] || APP_PYTHON="$(find_python 3.11)" || { echo "error: Python 3.11 not found (set APP_PYTHON)" >&2; exit 1; }
  echo "Setting up the application environment (.venv, $("$APP_PYTHON" --version))..."
  [ -x .venv/bin/python ] || "$APP_PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip wheel
  # The CPU build of torch first, so nothing later pulls a CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$APP_HASH" > .venv/.stamp
fi

# ---------- Rasa environment ----------
RASA_HASH="$(hash_of scripts/requirements-rasa.txt scripts/setup_envs.sh)"
if [ ! -f .venv-rasa/.stamp ] || [ "$(cat .venv-rasa/.stamp)" != "$RASA_HASH" ]; then
  [ -n "$RASA_PYTHON" ] || RASA_PYTHON="$(find_python 3.10)" || { echo "error: Python 3.10 not found (set RASA_PYTHON)" >&2; exit 1; }
  echo "Setting up the Rasa environment (.venv-rasa, $("$RASA_PYTHON" --version))..."
  [ -x .venv-rasa/bin/python ] || "$RASA_PYTHON" -m venv .venv-rasa
  .venv-rasa/bin/python -m pip install -q --upgrade pip  # not wheel: its packaging conflicts with Rasa 3.6
  .venv-rasa/bin/python -m pip install -q -r scripts/requirements-rasa.txt
  .venv-rasa/bin/rasa telemetry disable >/dev/null 2>&1 || true
  echo "$RASA_HASH" > .venv-rasa/.stamp
fi
