# Two commands on a fresh machine (see README): `make bench` and `make test`.
# Each creates .venv and installs the pinned set from requirements/ when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint bench bench-smoke gpu-check lock clean

$(STAMP): requirements/runtime.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stereocrafter

bench: venv
	$(BIN)/python bench/splat.py
	$(BIN)/python bench/video_io.py

bench-smoke: venv
	$(BIN)/python bench/splat.py --smoke
	$(BIN)/python bench/video_io.py --smoke

# Re-resolve the pinned set from the direct dependencies (needs the package index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q -e . && .lock-venv/bin/python -m pip freeze --exclude-editable \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements/runtime.txt.new
	@echo "review requirements/runtime.txt.new, keep its header, then move it into place"

clean:
	rm -rf $(VENV) .lock-venv .pytest_cache .mypy_cache .ruff_cache
