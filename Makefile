# act2i: two commands on a fresh machine with Python 3.11 and pip.
#   make test        create .venv, install, run the test suite
#   make reproduce   create .venv, install, run the whole pipeline (PROFILE=smoke RUN=smoke)
#   make lab         JupyterLab on notebooks/ with the `act2i` kernel

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= smoke
RUN     ?= smoke
TORCH   ?= torch==2.13.0
PYTEST_ARGS ?=
STAMP   := $(VENV)/.installed

.PHONY: install test test-slow reproduce bench tiny clean browser lab

# torch goes first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name act2i --display-name "act2i" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's chromium (never a downloaded browser); installing it needs root.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "make: could not install chromium (needs root and apt-get); the browser test will be skipped"

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error $(BIN)/python -m pytest $(PYTEST_ARGS)

# The long simulations (coverage with thousands of studies) and slow compile checks as well.
test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error $(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

reproduce: $(STAMP)
	TRANSFORMERS_VERBOSITY=error $(BIN)/act2i run --profile $(PROFILE) --run $(RUN)

# Benchmarks (not tests): each prints a table and writes benchmarks/results/<name>.json.
bench: $(STAMP)
	@for b in generate clipscore vqa enrich import reproduce; do \
	  HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error $(BIN)/python benchmarks/bench_$$b.py || exit 1; done

# JupyterLab on the notebooks, with this checkout's kernel (`act2i`); open runs/smoke/report.html beside it.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

tiny: $(STAMP)
	$(BIN)/act2i tiny

clean:
	rm -rf $(VENV) .pytest_cache
