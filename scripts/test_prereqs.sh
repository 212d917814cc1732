#!/usr/bin/env bash
# Things only the tests need, installed when missing (idempotent):
#   Debian's Chromium, driven by Playwright in the website widget's browser tests
#   (tests/channels/test_webchat_browser.py); `playwright install` cannot download browsers here.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "Installing Chromium for the browser tests (apt-get) ..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing and apt-get is not available: the browser tests will be skipped" >&2
  fi
fi
# Debian's nginx: the load balancer of the cluster test (tests/test_cluster.py)
"$(dirname "$0")/cluster_prereqs.sh"
