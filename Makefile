# make demo: set up .venv and run the main job offline; make test: the test suite. Both set up on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch; a bare `torch` requirement pulls a multi-GB CUDA build. On a GPU machine: make setup TORCH=torch
TORCH  ?= torch==2.13.0
DEMO   := runs/demo

.PHONY: docs setup system-deps demo test check-data test-data bench clean lock

setup: $(VENV)/.installed system-deps

# The test, docs and benchmark environment is pinned by requirements/constraints.txt (made by `make lock`);
# pyproject.toml's own ranges stay loose for users who pip install the package.
LOCK   := requirements/constraints.txt

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(LOCK) "$(TORCH)"
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[test,docs]"
	touch $@

# Re-pin every dependency of the package and its test, docs and tensorboard extras (PyPI names, any platform).
# The command is recorded in the lock's header; run it after changing a range in pyproject.toml.
lock: $(VENV)/.installed
	$(BIN)/python -m pip install -q uv
	cd $(dir $(LOCK)).. && $(abspath $(BIN))/uv pip compile pyproject.toml requirements/torch.in \
	  --extra test --extra docs --extra tensorboard --universal --python-version 3.10 -o $(LOCK)

# open3d (SDF sampling) needs the system's libusb-1.0 at import time: install it where we may, say so where not
system-deps: $(VENV)/.installed
	@$(BIN)/python -c "import open3d" >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq libusb-1.0-0; } ; \
	  else echo "note: SDF sampling needs libusb-1.0 (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)"; fi; }

demo: setup
	rm -rf $(DEMO)
	$(BIN)/implicit-gon fit images --dataset digits --out $(DEMO)
	$(BIN)/implicit-gon eval $(DEMO)
	$(BIN)/implicit-gon render $(DEMO) --res 128 --n 16 --out $(DEMO)/digits-128px.png

# Real test data: $$IMPLICIT_GON_DATA (CI sets it; a missing folder fails the tests), else test-data/ (make
# test-data), else ../shared/data beside the clone.
test: setup check-data
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

check-data:
	@[ -n "$${IMPLICIT_GON_DATA:-}" ] || [ -f test-data/SOURCES.md ] || [ -f ../shared/data/SOURCES.md ] || \
	  { echo "error: no real test data: run 'make test-data' (fetches it into test-data/) or set IMPLICIT_GON_DATA=DIR" >&2; exit 1; }

# Fetch the real test files from the datasets' published sources into test-data/, checked against
# tests/data/SHA256SUMS; FROM=DIR copies the files that have no stable public source from another copy.
test-data: setup
	$(BIN)/python tests/testdata.py --dest test-data $(if $(FROM),--copy-from $(FROM))

# make bench DATA=DIR: MNIST's IDX files in DIR (default: $$IMPLICIT_GON_DATA, else ../shared/data)
bench: setup
	$(BIN)/python benchmarks/step_speed.py $(if $(DATA),--data-dir $(DATA))

# The documentation site (MkDocs, Material theme) in site/, warnings as errors; the CLI and configuration references
# and the home page (from README.md) are generated first. Offline: no plugin fetches anything.
docs: setup
	$(BIN)/python docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) runs .pytest_cache site
