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

.PHONY: help install book test test-fast chapter notebooks bench clean clean-cache

help:
	@echo "make book      - install, execute every chapter (quick profile, several at a time: WORKERS=n), build _build/html"
	@echo "make test      - install and run the test suite"
	@echo "make chapter NB=notebooks/01_interpreters.md [PROFILE=full] - re-execute one chapter"
	@echo "make notebooks - write classic .ipynb copies of every chapter next to the .md files"
	@echo "make bench     - run the benchmarks, JSON under benchmarks/results/"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_FLAGS) -e '.[book,test]'
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	XAIFOOL_PROFILE=$(PROFILE) $(PY) -m xaifool book $(if $(WORKERS),--workers $(WORKERS))
	@XAIFOOL_PROFILE=$(PROFILE) $(PY) -m xaifool exec-times _build --cells 10
	@echo "Open _build/html/index.html"

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
	rm -rf _build

clean-cache:
	rm -rf .cache/xaifool
