# The devboxd server as a container; docker-compose.yml runs it. No registry is reachable where this
# project is built, so the base is a local image: the default devbox image (`devboxd image tag`, Debian
# bookworm with Python 3.11). Build with scripts/build-server-image.sh, which also stages the host's
# extra CA certificates; on a machine with a registry any Debian bookworm image works:
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t devboxd-server .
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

USER root
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# CAs the build host trusts beyond the public ones, so pip below works behind an intercepting proxy.
COPY deploy/extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null

# Dependencies first, from pyproject.toml alone: a code change rebuilds only the layers below them.
WORKDIR /opt/devboxd
COPY pyproject.toml ./
RUN python3 -m venv /opt/venv \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -q --disable-pip-version-check -r /tmp/requirements.txt "setuptools>=77" \
 && rm /tmp/requirements.txt

# Editable, because the server reads openapi.yaml and migrations/ beside app/ in the source tree.
COPY README.md openapi.yaml ./
COPY migrations ./migrations
COPY app ./app
RUN /opt/venv/bin/pip install --no-cache-dir -q --disable-pip-version-check --no-deps --no-build-isolation -e .

# The server drives the host's engine through its socket and runs on the host's network (see
# docker-compose.yml), so it reaches devboxes, tunnels and its SSH gateway exactly as on the host.
# The data dir must be a host directory mounted at the same path: devboxes bind-mount parts of it.
ENV PATH=/opt/venv/bin:$PATH DEVBOX_DATA_DIR=/var/lib/devboxd DEVBOX_BUILD_IMAGE_ON_START=false
CMD ["devboxd", "serve"]
