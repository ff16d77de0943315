# Two commands for a fresh machine (see README):
#   make demo   install into .venv, then train and evaluate on the embedded synthetic dataset
#   make test   install into .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test benchmarks

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m varec.build_dataset --dataset=synthetic_adfes

test: install
	$(BIN)/python -m pytest -n 2 tests

benchmarks: install
	$(BIN)/python benchmarks/preprocessing_benchmark.py
