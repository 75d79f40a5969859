#!/usr/bin/env bash
# The prepared GPU check for a session that is lent a device (H100/H200): 300 s of command time at
# most (its rows' time-outs add up to 300; a 15-minute device budget keeps room for a rerun), each
# row a process of its own under its own time-out, the most expensive preset first, exit status 1
# when any row failed (2: no CUDA here, 3: a wheel missing). No CPU-only rows. What it prints:
#   imports    (20 s)  torch, its CUDA and arch list, the card and driver; diffusers, transformers
#                      and PyAV at the project's pins; one bf16 8192^3 matrix product (the measured peak)
#   reference  (86 s)  \  per preset, its models alone (random weights, fp16; VDA-S fp32 under fp16
#   fast       (40 s)   > autocast), at 1920x1080 then 1024x576: frames/s end to end (CUDA events, no
#   turbo      (25 s)  |  sync inside), max_memory_allocated/reserved and mem_get_info beside the
#   clean      (18 s)  |  counted estimate, ms per step of each model call eager with and without
#   instant    (16 s) /   feed-forward chunking, the UNets' share of the measured and datasheet peak
#                      (clean: MI-GAN's 512 tiles; instant: the weight-free fill, no FLOP figure);
#                      clean and instant add a "traffic" row: 16 frames at 1080p, the splat and the
#                      fill in ms per frame, the bytes bench/traffic.py counts for them and the GB/s
#                      that makes against the card's datasheet bandwidth
#   checks     (25 s)  a float16 decode with an injected inf (float32 retry, float16 after), SDPA at a
#                      batch of 70,000 split and unsplit, VDA-S under fp16 autocast against fp32
#   encoders   (15 s)  pytest -m gpu: NVENC on every GPU where the card has it (A100/H100/H200 have
#                      none: skipped, with the reason), the splatting kernels
#   compile    (55 s)  a turbo-only pipeline compiled by loading.compile_models (tiny weights, inductor)
#                      converting as it does eagerly, then the inpainting UNet at turbo's shape eager
#                      (whole and chunked) against inductor, with its compile time
# Rows go to $OUT/results.jsonl; record them in bench/RESULTS.md with the card's name.
#
# Wheels to carry (the device image has torch, numpy, huggingface_hub 1.33 and safetensors; its
# transformers 5.17 is below the project's range, and it has no PyAV), 53 MiB with a 1.4 MiB tree:
#   diffusers-0.42.1-py3-none-any.whl                     6.1 MiB
#   transformers-5.24.0-py3-none-any.whl                 12.9 MiB
#   av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl       34.1 MiB  (FFmpeg with libx264 and NVENC)
# Prepare once, here (not on the device):
#   echo /.whl/ >> .git/info/exclude
#   for p in diffusers==0.42.1 transformers==5.24.0 av==18.1.0; do python3 -m pip download --no-deps \
#     --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_17_x86_64 -d .whl "$p"; done
# then the device tool: command `bash bench/gpu_check.sh`, carry [".whl"], timeout_s 330.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none): this check runs only on a CUDA machine"
  exit 2
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: the carried wheels did not install"; exit 3; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1
OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"; rm -f "$OUT/results.jsonl" "$OUT/peak.json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
failed=()
row() {  # row NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local started=$SECONDS
  echo "== $name (time-out ${limit} s)"
  timeout "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc in $((SECONDS - started)) s"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
  return 0
}
rows="python3 -m bench.gpu_rows"
row imports 20 $rows imports --out "$OUT/results.jsonl"
if [ ${#failed[@]} -gt 0 ]; then echo "gpu_check: IMPORTS FAILED (carry the wheels in the header)"; exit 3; fi
row reference 86 $rows preset reference --out "$OUT/results.jsonl"
row fast 40 $rows preset fast --out "$OUT/results.jsonl"
row turbo 25 $rows preset turbo --out "$OUT/results.jsonl"
row clean 18 $rows preset clean --out "$OUT/results.jsonl"
row instant 16 $rows preset instant --out "$OUT/results.jsonl"
row checks 25 $rows checks --out "$OUT/results.jsonl"
row encoders 15 python3 -m pytest -q -rs -m gpu -p no:cacheprovider tests/media/test_encoders.py tests/stereo/test_splatting.py tests/stereo/test_fill.py
row compile 55 $rows compile --out "$OUT/results.jsonl"
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check: FAILED rows: ${failed[*]}"
  exit 1
fi
echo "gpu_check: every row passed"
