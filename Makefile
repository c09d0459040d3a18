# Two entry points (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# pyproject.toml asks for a torch range; the CPU wheel pinned here goes in first, so the
# project's install meets the range with it. Where pip has no local CPU wheel (find-links),
# TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" avoids the CUDA build.
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)' $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/crossattn translate "Hello, how are you?"

# the import contracts of pyproject.toml's [tool.importlinter] (seconds)
lint: install
	$(VENV)/bin/lint-imports --no-cache

# the layering first, then the suite; PYTEST_ARGS adds options (.ci/run: timings)
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

docs: install
	$(PY) docs/make_figures.py

# LibreTranslate (for bench/peers.py's server comparison) pins its own dependencies:
# it gets a virtual environment of its own
LT_VENV ?= .bench/libretranslate
$(LT_VENV)/bin/libretranslate:
	$(PYTHON) -m venv $(LT_VENV)
	$(LT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LT_VENV)/bin/python -m pip install -q '$(TORCH)' libretranslate spacy "rich<13"

bench: install $(LT_VENV)/bin/libretranslate
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py
	$(PY) bench/peers.py --libretranslate-venv $(LT_VENV)
	$(PY) bench/alignment.py --json bench/results/alignment.json

# The prepared GPU run (scripts/train_general_gpu.sh) end to end on this CPU, on a 0.5% pack of
# ../shared/data: pack -> train 3 steps -> int8 return -> check -> evaluate and decide.
DRY ?= runs/gpu-dry-run
gpu-dry-run: install
	$(PY) -m pip install -q eflomal
	$(PY) scripts/pack_gpu_data.py $(DRY)/data --scale 0.005
	DATA=$(DRY)/data WORK=$(DRY)/work OUT=$(DRY)/out PY=$(PY) MINUTES=2 MAX_STEPS=3 MAX_TOKENS=1000 \
	  EVAL_SENTENCES=20 DEVICE=cpu bash scripts/train_general_gpu.sh
	$(PY) scripts/gpu_run.py check --carry $(DRY)/data --returned $(DRY)/out --assume-stashed
	$(PY) scripts/gpu_run.py after $(DRY)/out --data $(DRY)/data --limit 10 --train-heads all \
	  --head-steps 20 --head-pairs 500 --work $(DRY)/after --report $(DRY)/after.json

.PHONY: gpu-dry-run install demo lint test docs bench
