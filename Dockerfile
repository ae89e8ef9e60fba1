# The devboxd server as a container. No registry is reachable where this project is built, so the base
# is a local image: by default the devbox image that `devboxd image build` makes (Debian bookworm with
# Python 3.11). On a machine with a registry any Debian-based Python 3.11 image works, e.g.
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm -t devboxd .
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

USER root
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv debootstrap ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/devboxd
COPY pyproject.toml README.md openapi.yaml ./
COPY app ./app
COPY migrations ./migrations
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -q -e .

# The server drives the host's engine through its socket (mounted by docker-compose.yml).
ENV DEVBOX_HOST=0.0.0.0 DEVBOX_PORT=8000 DEVBOX_DATA_DIR=/data PATH=/opt/venv/bin:$PATH
VOLUME ["/data"]
EXPOSE 8000
CMD ["devboxd", "serve"]
