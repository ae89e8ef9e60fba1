#!/usr/bin/env bash
# Build the images docker-compose.yml runs: devboxd-server (Dockerfile) and devboxd-postgres
# (deploy/postgres). No registry is reachable here, so both start from a local base image: the first
# argument, or by default the devbox image this checkout builds (`devboxd image tag`).
# The host's extra CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. a TLS-intercepting
# proxy's) are staged into deploy/extra-ca/ first, so pip inside the build trusts what the host trusts.
# Re-running is cheap: Docker's layer cache rebuilds only what changed.
#   scripts/build-server-image.sh [BASE_IMAGE]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVER_IMAGE=devboxd-server
POSTGRES_IMAGE=devboxd-postgres

base="${1:-}"
if [ -z "$base" ]; then
    [ -x "$ROOT/.venv/bin/devboxd" ] || { echo "usage: $0 BASE_IMAGE (or set up .venv)" >&2; exit 2; }
    base="$("$ROOT/.venv/bin/devboxd" image tag)"
fi
docker image inspect "$base" >/dev/null 2>&1 \
    || { echo "base image $base is missing: build it with \`devboxd image build\`" >&2; exit 1; }

staged="$ROOT/deploy/extra-ca"
find "$staged" -maxdepth 1 -name '*.crt' -delete
if [ -d /usr/local/share/ca-certificates ]; then
    find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$staged/" \;
fi

build() {
    # $1: tag, $2: context. The image it replaces is removed once nothing uses it, so rebuilds leave
    # no dangling images behind.
    local tag="$1" context="$2" previous current
    previous="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
    docker build --force-rm --build-arg BASE_IMAGE="$base" -t "$tag" "$context"
    current="$(docker image inspect -f '{{.Id}}' "$tag")"
    if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
}

build "$SERVER_IMAGE" "$ROOT"
build "$POSTGRES_IMAGE" "$ROOT/deploy/postgres"
echo "built $SERVER_IMAGE and $POSTGRES_IMAGE on $base"
