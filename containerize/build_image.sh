#!/usr/bin/env bash
# `make image`: the Bento (bentoml build) and its generated Dockerfile built with buildah, which
# needs no Docker daemon: chroot isolation and the vfs storage driver work inside an unprivileged
# sandbox. The base, python:3.11-slim, comes from the registry when it can be reached, else from
# containerize/local_base.sh. Prints the build time and the image size. Needs root and buildah.
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
TAG="${IMAGE_TAG:-stereocrafter:local}"
export BENTOML_HOME="${BENTOML_HOME:-/tmp/stereocrafter-bentoml}" BENTOML_DO_NOT_TRACK=true
started=$(date +%s)
buildah inspect --type image docker.io/library/python:3.11-slim >/dev/null 2>&1 || bash containerize/local_base.sh
version="local-$(git rev-parse --short=12 HEAD 2>/dev/null || echo dev)"
.venv/bin/bentoml delete -y "stereocrafter:$version" >/dev/null 2>&1 || true  # a rebuild of the same commit
# the commit the image is built from, named in every record of its outputs (jobs.provenance)
printf 'COMMIT = "%s"\n' "$(git describe --always --dirty --abbrev=12 2>/dev/null || echo dev)" > stereocrafter/_build.py
.venv/bin/bentoml build --version "$version" >/dev/null
rm -f stereocrafter/_build.py  # the checkout names itself with git describe
bento="$BENTOML_HOME/bentos/stereocrafter/$version"
# Behind a TLS-inspecting proxy (this sandbox), the build's pip and uv must trust the host's CA
# bundle: it is mounted into the RUN steps with a pip and a uv config pointing at it. Build-time
# only; nothing of it lands in the image.
mounts=()
ca="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
if [ -f "$ca" ]; then
  conf=$(mktemp -d)
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$conf/pip.conf"
  printf 'native-tls = true\n' >"$conf/uv.toml"
  mounts=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro" --volume "$conf/pip.conf:/etc/pip.conf:ro"
          --volume "$conf/uv.toml:/etc/uv/uv.toml:ro")
fi
buildah bud --isolation chroot --pull-never --layers=false "${mounts[@]}" \
  -f "$bento/env/docker/Dockerfile" -t "$TAG" "$bento"
echo "built $TAG from stereocrafter:$version in $(( $(date +%s) - started )) s"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$TAG"
