# Two commands for a fresh machine (see README):
#   make demo   install into .venv, then train and evaluate on the embedded synthetic dataset
#   make test   install into .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test demo lint browser test benchmarks

# The demo needs only what train.py, eval.py and predict.py import; TensorFlow and Beam
# (the `tfds build` command line, 1.5 GB installed) come with the tests.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-tfds-cli.txt requirements-test.txt
	$(BIN)/pip install -r requirements-test.txt
	touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

demo: install
	$(BIN)/python train.py --config=configs/demo.py --workdir=workdir/demo
	$(BIN)/python eval.py --checkpoint=workdir/demo

# One formatting dialect and a small lint rule set (pyproject.toml's [tool.ruff]).
lint: install-test
	@$(BIN)/ruff format --check . || { echo "formatting differs: run $(BIN)/ruff format ."; exit 1; }
	$(BIN)/ruff check .

# The HTML report's browser test drives Debian's Chromium: installed once (as root, or
# with sudo) where it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

test: install-test lint browser
	$(BIN)/python -m pytest -n 2 tests

benchmarks: install
	$(BIN)/python benchmarks/preprocessing_benchmark.py
	$(BIN)/python benchmarks/training_benchmark.py
