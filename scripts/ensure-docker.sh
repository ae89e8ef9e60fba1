#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start one if not. Idempotent and quiet
# when an engine already answers.
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

engine_answers && exit 0

if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure-docker: installing docker.io from the distribution's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "ensure-docker: starting dockerd (log: /var/log/dockerd.log)" >&2
    nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
    engine_answers && exit 0
    sleep 1
done
echo "ensure-docker: no Docker engine answered after 60 s; see /var/log/dockerd.log" >&2
exit 1
