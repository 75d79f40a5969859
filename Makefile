# Two commands on a fresh machine (see README): `make serve` and `make test`.
# Each creates .venv and installs the pinned set from requirements/ when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv tools serve demo demo-convert demo-long image image-smoke test test-slow test-all test-transformers-low lint bench bench-smoke lock clean

$(STAMP): requirements/runtime.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The service on http://127.0.0.1:8080 (GET /ping, POST /invocations). Weights come from
# $WEIGHTS_DIR (default /opt/ml/model/weights), downloaded first when $HF_TOKEN_ARN is set;
# without any, the server still starts and conversions answer 503 listing the missing files.
PORT ?= 8080
serve: venv
	$(BIN)/bentoml serve service:StereoCrafter --host 127.0.0.1 --port $(PORT)

# The whole service path on this machine: moto S3 on 127.0.0.1, a generated clip, the real service on
# TINY RANDOM weights, POST /invocations through the Python client (output: demo/sample_sbs.mp4).
demo: venv
	$(BIN)/python -m stereocrafter.demo demo

# The local converter alone (no service, no S3), also on tiny random weights, with the debug grid.
demo-convert: venv
	$(BIN)/python -m stereocrafter.testing demo --clip convert_input.mp4
	$(BIN)/stereocrafter convert demo/convert_input.mp4 demo/convert_sbs.mp4 --mode sbs \
	  --weights-dir demo/tiny-weights --save-grid demo/convert_grid.mp4

# A long file in segments with one depth scale (cut, depth, align, stereo, stitch), tiny weights,
# 2 steps per stage: 96 frames in 4 one-second segments -> demo/long_sbs.mp4 and the alignment table.
demo-long: venv
	$(BIN)/python -m stereocrafter.testing demo --clip long_input.mp4 --frames 96
	STEREOCRAFTER_DEPTH_STEPS=2 STEREOCRAFTER_INPAINT_STEPS=2 $(BIN)/stereocrafter convert-long \
	  demo/long_input.mp4 demo/long_sbs.mp4 --mode sbs --segment-seconds 1 --weights-dir demo/tiny-weights

# The container image without a Docker daemon (root, Debian): buildah with chroot isolation and the
# vfs driver; the python:3.11-slim base is made locally with debootstrap when no registry can be
# reached (containerize/local_base.sh). Several minutes and about 6.4 GB; run by hand, not in CI.
image: venv
	command -v buildah >/dev/null && command -v debootstrap >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap)
	bash containerize/build_image.sh

# The built image started as SageMaker starts it (entrypoint `serve`, port 8080, its non-root user):
# WEIGHTS_DIR writable by that user, /ping, one conversion against moto's S3 on tiny weights.
image-smoke: image
	STORAGE_DRIVER=vfs $(BIN)/python -m containerize.image_smoke

# ffprobe (Debian's ffmpeg, about 15 s to install): a reader nobody here wrote, which checks the stereo
# tags of the outputs (tests/media/test_stereotag.py); installed when missing and apt-get can.
tools:
	@command -v ffprobe >/dev/null || (command -v apt-get >/dev/null && (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null)) || \
	  echo "warning: no ffprobe: the stereo-tag tests skip (and fail under CI=true)"

test: venv tools
	$(BIN)/python -m pytest

# The slow end-to-end tests (torch.compile of both UNets); CI runs them after `make test`.
test-slow: venv tools
	$(BIN)/python -m pytest -m slow

# The low end of pyproject.toml's transformers range (the pinned set is its high end): VDA-S's
# checkpoint loads onto that version's DINOv2 too (tests/models/test_vda*.py, a few seconds).
TRANSFORMERS_LOW := $(shell sed -n 's/.*"transformers>=\([0-9.]*\),.*/\1/p' pyproject.toml)
test-transformers-low: venv
	rm -rf .transformers-low
	$(BIN)/python -m pip install -q --no-deps --target .transformers-low "transformers==$(TRANSFORMERS_LOW).0"
	PYTHONPATH=.transformers-low $(BIN)/python -c 'import transformers as t; print("transformers", t.__version__)'
	PYTHONPATH=.transformers-low $(BIN)/python -m pytest -q -p no:cacheprovider tests/models/test_vda.py tests/models/test_vda_checkpoint.py tests/models/test_vda_depth.py

# Both tiers, as CI runs them.
test-all: test test-slow

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stereocrafter containerize service.py
	$(BIN)/lint-imports --no-cache

bench: venv
	$(BIN)/python -m bench.splat
	$(BIN)/python -m bench.video_io
	$(BIN)/python -m bench.depth
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.gc_pause
	$(BIN)/python -m bench.ping_latency
	$(BIN)/python -m bench.depth_store
	$(BIN)/python -m bench.long_align
	$(BIN)/python -m bench.cli_start
	$(BIN)/python -m bench.vda
	$(BIN)/python -m bench.vda_align
	$(BIN)/python -m bench.preset_load
	$(BIN)/python -m bench.host_pipeline
	$(BIN)/python -m bench.nvenc_check
	$(BIN)/python -m bench.ff_chunking --check
	$(BIN)/python -m bench.fill_quality --check
	$(BIN)/python -m bench.instant_cpu
	$(BIN)/python -m bench.weights_verify
	$(BIN)/python -m bench.encode_determinism
	$(BIN)/python -m bench.traffic --check

bench-smoke: venv
	$(BIN)/python -m bench.splat --smoke
	$(BIN)/python -m bench.video_io --smoke
	$(BIN)/python -m bench.depth --smoke
	$(BIN)/python -m bench.gpu_depth --smoke
	$(BIN)/python -m bench.gpu_presets --smoke
	$(BIN)/python -m bench.gpu_rows imports --smoke
	$(BIN)/python -m bench.gpu_rows preset turbo --smoke
	$(BIN)/python -m bench.gpu_rows preset clean --smoke
	$(BIN)/python -m bench.gpu_rows preset instant --smoke
	$(BIN)/python -m bench.gpu_rows checks --smoke
	$(BIN)/python -m bench.flops --check
	$(BIN)/python -m bench.ff_chunking --smoke --check
	$(BIN)/python -m bench.preset_load
	$(BIN)/python -m bench.host_pipeline --smoke
	$(BIN)/python -m bench.nvenc_check --smoke
	$(BIN)/python -m bench.gc_pause --smoke
	$(BIN)/python -m bench.ping_latency --smoke
	$(BIN)/python -m bench.depth_store --smoke
	$(BIN)/python -m bench.long_align --smoke
	$(BIN)/python -m bench.cli_start --smoke
	$(BIN)/python -m bench.vda --smoke
	$(BIN)/python -m bench.fill_quality --check
	$(BIN)/python -m bench.instant_cpu --smoke
	$(BIN)/python -m bench.stereo_tag --smoke
	$(BIN)/python -m bench.weights_verify --smoke
	$(BIN)/python -m bench.encode_determinism --smoke
	$(BIN)/python -m bench.traffic --frames 16 --check

# Re-resolve the pinned set from the direct dependencies (needs the package index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q -e . && .lock-venv/bin/python -m pip freeze --exclude-editable \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements/runtime.txt.new
	@echo "review requirements/runtime.txt.new, keep its header, then move it into place"

clean:
	rm -rf $(VENV) .lock-venv .transformers-low .pytest_cache .mypy_cache .ruff_cache demo
