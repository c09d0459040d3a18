# Two entry points (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/crossattn translate "Hello, how are you?"

test: install
	$(PY) -m pytest

docs: install
	$(PY) docs/make_figures.py

# LibreTranslate (for bench/peers.py's server comparison) pins its own dependencies:
# it gets a virtual environment of its own
LT_VENV ?= .bench/libretranslate
$(LT_VENV)/bin/libretranslate:
	$(PYTHON) -m venv $(LT_VENV)
	$(LT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LT_VENV)/bin/python -m pip install -q torch==2.13.0 libretranslate spacy "rich<13"

bench: install $(LT_VENV)/bin/libretranslate
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py
	$(PY) bench/peers.py --libretranslate-venv $(LT_VENV)
	$(PY) bench/alignment.py --json bench/results/alignment.json

.PHONY: install demo test docs bench
