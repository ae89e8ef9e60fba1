# Shared, idempotent setup steps for serve.sh and test.sh. Each step is silent when already done.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { echo "setup: $*" >&2; }

apt_install() {
    # Install Debian packages that are missing; `apt-get update` only when something must be installed.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_venv() {
    # $1: pip extras, e.g. "[dev]". Reinstalls only when pyproject.toml changed.
    local extras="${1:-}"
    local python
    python="$(command -v python3.11 || command -v python3)"
    [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$python" -m venv "$VENV"; }
    local stamp="$VENV/.installed$extras"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing Python dependencies$extras (log: $VENV/pip.log)"
        if ! { "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip \
                && "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT$extras"; } >"$VENV/pip.log" 2>&1; then
            cat "$VENV/pip.log" >&2
            return 1
        fi
        echo "$want" > "$stamp"
    fi
}

ensure_docker() {
    "$ROOT/scripts/ensure-docker.sh"
}

ensure_image() {
    apt_install debootstrap
    # Builds once per machine: the tag is a hash of the recipe.
    "$VENV/bin/devboxd" image build --quiet >/dev/null
}

ensure_postgres() {
    # A local PostgreSQL for the store tests; exports DEVBOX_TEST_POSTGRES_URL.
    apt_install postgresql
    local version
    version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $4}' | grep -q online; then
        pg_lsclusters -h 2>/dev/null | grep -q . || pg_createcluster "$version" main >/dev/null
        pg_ctlcluster "$version" main start
    fi
    su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='devbox'\"" | grep -q 1 \
        || su postgres -c "psql -qc \"CREATE ROLE devbox LOGIN PASSWORD 'devbox' CREATEDB\"" >/dev/null
    export DEVBOX_TEST_POSTGRES_URL="postgresql://devbox:devbox@127.0.0.1:5432/postgres"
}
