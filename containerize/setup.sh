#!/usr/bin/env bash
# Runs as root while the image is built (bentofile.yaml: docker.setup_script).
# The service runs as the `bentoml` user (uid 1034) and downloads the weights at start-up into
# WEIGHTS_DIR (/opt/ml/model/weights): create it writable for that user. On SageMaker without a
# ModelDataUrl nothing is mounted over /opt/ml/model; with one, point WEIGHTS_DIR elsewhere.
set -euo pipefail
mkdir -p /opt/ml/model/weights
chown -R 1034:1034 /opt/ml/model
