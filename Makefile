# Two commands for a fresh machine (see README):
#   make demo   install into .venv, then train and evaluate on the embedded synthetic dataset
#   make test   install into .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo lint browser test benchmarks

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python train.py --config=configs/demo.py --workdir=workdir/demo
	$(BIN)/python eval.py --checkpoint=workdir/demo

# One formatting dialect and a small lint rule set (pyproject.toml's [tool.ruff]).
lint: install
	@$(BIN)/ruff format --check . || { echo "formatting differs: run $(BIN)/ruff format ."; exit 1; }
	$(BIN)/ruff check .

# The HTML report's browser test drives Debian's Chromium: installed once (as root, or
# with sudo) where it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

test: install lint browser
	$(BIN)/python -m pytest -n 2 tests

benchmarks: install
	$(BIN)/python benchmarks/preprocessing_benchmark.py
	$(BIN)/python benchmarks/training_benchmark.py
