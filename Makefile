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

bench: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

.PHONY: install demo test docs bench
