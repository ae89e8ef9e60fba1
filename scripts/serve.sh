#!/usr/bin/env bash
# Set up everything the server needs on this machine (venv, dependencies, Docker engine, default image,
# database migrations) and run it in the foreground. Settings come from DEVBOX_* env vars (README).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_venv
ensure_docker
ensure_image
"$VENV/bin/devboxd" migrate >/dev/null 2>&1
exec "$VENV/bin/devboxd" serve
