# The two commands a new user needs: `make book` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= quick
NB ?= notebooks/01_interpreters.md
# Plain `torch` on PyPI is a multi-GB CUDA build; that is fine on a GPU machine, and on a
# CPU-only machine pip takes whatever torch the local wheel cache / constraints provide.
PIP_FLAGS ?=
# The packages are installed with uv (from PyPI, fetched in parallel: the same versions as pip picks,
# in about a fifth of the time on a fresh machine); INSTALLER=pip uses pip alone, and pip takes over
# by itself where uv cannot be installed or cannot reach its index (pip also reads pip.conf's indexes).
INSTALLER ?= uv

.PHONY: help install browser book book-student test test-fast chapter notebooks bench clean clean-cache

help:
	@echo "make book      - install, execute every chapter (quick profile, several at a time: WORKERS=n), build _build/html"
	@echo "make book-student - the book without the exercises' solutions: _build-student/_build/html"
	@echo "make test      - install and run the test suite"
	@echo "make browser   - install Debian's chromium + chromium-driver for the browser check (root or sudo)"
	@echo "make chapter NB=notebooks/01_interpreters.md [PROFILE=full] - re-execute one chapter"
	@echo "make notebooks - write classic .ipynb copies of every chapter next to the .md files"
	@echo "make bench     - run the benchmarks, JSON under benchmarks/results/"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
ifeq ($(INSTALLER),uv)
	( $(PY) -m pip install -q uv && $(VENV)/bin/uv pip install -q --python $(PY) $(PIP_FLAGS) -e '.[book,test]' ) \
	  || $(PY) -m pip install -q $(PIP_FLAGS) -e '.[book,test]'
else
	$(PY) -m pip install -q $(PIP_FLAGS) -e '.[book,test]'
endif
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium and its driver, for the test that reads the built book in a browser
# (tests/test_browser.py skips without them, unless XAIFOOL_REQUIRE_BROWSER is set, as in CI).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium and chromedriver present"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium chromium-driver || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }; fi

book: $(STAMP)
	XAIFOOL_PROFILE=$(PROFILE) $(PY) -m xaifool book $(if $(WORKERS),--workers $(WORKERS))
	@XAIFOOL_PROFILE=$(PROFILE) $(PY) -m xaifool exec-times _build --cells 10
	@echo "Open _build/html/index.html"

book-student: $(STAMP)
	XAIFOOL_PROFILE=$(PROFILE) $(PY) -m xaifool book --student $(if $(WORKERS),--workers $(WORKERS))
	@echo "Open _build-student/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

chapter: $(STAMP)
	XAIFOOL_PROFILE=$(PROFILE) $(PY) -m xaifool run $(NB)

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --to ipynb notebooks/*.md

bench: $(STAMP)
	$(PY) -m xaifool bench

clean:
	rm -rf _build _build-student

clean-cache:
	rm -rf .cache/xaifool
