#!/usr/bin/env bash
# What `make run-cluster` and the cluster test need beyond `make run`: Debian's nginx (the load
# balancer in front of the gateways). PostgreSQL and Redis are the machine's services (see README).
set -euo pipefail
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "Installing nginx for the cluster (apt-get) ..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null
  else
    echo "warning: nginx is missing and apt-get is not available: install nginx to run the cluster" >&2
  fi
fi
