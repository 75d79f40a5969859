#!/usr/bin/env bash
# The prepared GPU check for a session that is lent a device (H100/H200), sized well under 8 minutes:
# the CUDA rows of the splatting benchmark, the real-size depth stage and whole pipeline (random weights), and
# the tests marked `gpu`. Record what it prints in bench/RESULTS.md with the card's name.
#
# The device image has PyTorch, transformers, huggingface_hub and safetensors but not diffusers.
# Prepare once, here (not on the device):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl diffusers==0.42.1
# then run with the device tool: command `bash bench/gpu_check.sh`, carry [".whl"].
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch, diffusers, transformers; print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__)'
echo "== bench/splat.py"; timeout 90 python3 bench/splat.py
echo "== bench/gpu_depth.py"; timeout 120 python3 bench/gpu_depth.py
echo "== bench/gpu_pipeline.py"; timeout 180 python3 bench/gpu_pipeline.py
echo "== pytest -m gpu"; timeout 45 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_splatting.py
