#!/usr/bin/env bash
# The prepared GPU check for a session that is lent a device (H100/H200), sized well under 8 minutes
# (about 5 on an H100): an import check that fails at once without the carried wheels, the CUDA rows of
# the splatting benchmark, the three presets (turbo, fast, reference) end to end at real size (random
# weights, fp16; VDA-S in fp32 under autocast) at 1024x576 and
# 1920x1080 on 46 frames with s/frame per stage, peak memory and the UNets' share of the bf16 peak (each
# run through StereoPipeline as the service runs a job: under a deadline, every VAE decode checked for
# non-finite values; a retried decode is logged as "decoding the chunk again in float32"), and the tests
# marked `gpu`, then the encoder: whether NVENC opens (A100, H100 and H200 have none: it prints that
# auto fell back to libx264, and why), and what each usable encoder costs on a 3840x1080 frame
# (bench/nvenc_check.py), with the NVENC tests marked `gpu` (skipped with the reason where it has none).
# Results: $OUT/results.jsonl (when $OUT is set) and the printed tail. Record
# what it prints in bench/RESULTS.md with the card's name.
#
# The device image has PyTorch, transformers, huggingface_hub and safetensors but not diffusers.
# Prepare once, here (not on the device):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl diffusers==0.42.1
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl av==18.1.0
# (PyAV, when the image lacks it: its wheel carries FFmpeg with libx264 and the NVENC encoders).
# then run with the device tool: command `bash bench/gpu_check.sh`, carry [".whl"], timeout_s 540.
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# Fail at once, not minutes in, when a carried wheel is missing.
python3 -c 'import torch, diffusers, transformers; from stereocrafter.pipeline import StereoPipeline; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "diffusers", diffusers.__version__, "transformers", transformers.__version__)' || { echo "IMPORT CHECK FAILED: carry the wheels (see the header)"; exit 3; }
echo "== bench/splat.py"; timeout 60 python3 bench/splat.py
echo "== bench/gpu_presets.py (turbo, fast, reference) x (1024x576, 1920x1080), 46 frames"
timeout 330 python3 bench/gpu_presets.py --out "$OUT/results.jsonl"
echo "== pytest -m gpu"; timeout 45 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_splatting.py
echo "== bench/nvenc_check.py (the encoder auto picks; libx264 against NVENC at 3840x1080)"
timeout 90 python3 bench/nvenc_check.py
echo "== pytest -m gpu tests/test_encoders.py"; timeout 45 python3 -m pytest -q -rs -m gpu -p no:cacheprovider tests/test_encoders.py
echo "== results.jsonl"; cat "$OUT/results.jsonl" 2>/dev/null
