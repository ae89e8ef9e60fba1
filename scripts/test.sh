#!/usr/bin/env bash
# Set up everything the tests need (venv with dev dependencies, Docker engine, default image, a local
# PostgreSQL) and run the whole suite: lint, then pytest. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_venv "[dev]"
ensure_docker
ensure_image
ensure_postgres
apt_install openssh-client  # the SSH tests drive the stock ssh, scp and sftp
apt_install docker-compose   # tests/api/test_packaging.py brings up docker-compose.yml
# The suite owns this engine: let the recovery test restart it (it is skipped when run beside others).
export DEVBOXD_TEST_RESTART_ENGINE="${DEVBOXD_TEST_RESTART_ENGINE:-1}"
cd "$ROOT"
"$VENV/bin/ruff" check --quiet app tests bench migrations
"$VENV/bin/ruff" format --check --quiet app tests bench migrations
"$VENV/bin/mypy"
exec "$VENV/bin/pytest" -q "$@"
