#!/usr/bin/env bash
# Runs as root while the image is built (bentofile.yaml: docker.setup_script).
# The service runs as the `bentoml` user (uid 1034) and downloads the weights at start-up into
# WEIGHTS_DIR (/opt/ml/model/weights): create it writable for that user. On SageMaker without a
# ModelDataUrl nothing is mounted over /opt/ml/model; with one, point WEIGHTS_DIR elsewhere.
set -euo pipefail
mkdir -p /opt/ml/model/weights
chown -R 1034:1034 /opt/ml/model

# Image hygiene: BentoML's Debian Dockerfile installs build-essential and git before the Python
# packages. Nothing needs them: every package of the pinned set is a binary wheel for CPython 3.11
# on manylinux x86_64 and none is a VCS URL (docs/deploy.md, "What is in it"). This script runs after the
# install, so they are purged here with what only they pulled in; a single-layer build (buildah,
# `make image`) is then that much smaller, and a layered one at least does not carry a compiler
# in the running image.
# The compiler is named too: other packages' Recommends (perl's make, libdpkg-perl's gcc) would
# otherwise keep it, so auto-removal here does not treat Recommends as important.
if dpkg -s build-essential >/dev/null 2>&1 || dpkg -s git >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --auto-remove -o APT::AutoRemove::RecommendsImportant=false \
    build-essential git gcc g++ make dpkg-dev cpp >/dev/null
fi
rm -rf /var/lib/apt/lists/*
