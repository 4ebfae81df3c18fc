# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# `make help` lists every target.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A PyTorch wheel index, e.g. the CPU-only one (no CUDA libraries, ~1 GB instead of ~5 GB):
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PY_OK := import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)

# A .venv whose Python is missing, broken or older than 3.10 (a first `make` with the
# wrong Python) is not trusted: forget the stamp, so the recipe below rebuilds it.
ifneq ($(shell $(PY) -c '$(PY_OK)' >/dev/null 2>&1 && echo ok),ok)
  $(shell rm -f $(STAMP))
endif

.PHONY: help demo test test-min lint docs bench gallery-figures clean

help:  ## list the targets
	@echo "make demo             create .venv (first time), run the gas drift demo (offline, ~2 min)"
	@echo "make test             create .venv (first time), run ruff and the test suite"
	@echo "make test-min         the same in a fresh .venv-min with every dependency at its"
	@echo "                      lower bound (.ci/min-versions.txt): the bounds are true"
	@echo "make lint             ruff on the whole repository"
	@echo "make docs             Sphinx site with the example gallery, in docs/_build/html"
	@echo "make bench            benchmarks; JSON in benchmarks/results/"
	@echo "make gallery-figures  redraw the committed figures of the CIFAR and monkeys examples"
	@echo "                      (needs their data in ../shared/data or \$$SKTRANSFER_DATA)"
	@echo "make clean            remove .venv, the docs build and results/"
	@echo "Variables: PYTHON=python3.12 (the interpreter .venv is made from),"
	@echo "           TORCH_INDEX=https://download.pytorch.org/whl/cpu (CPU-only PyTorch)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c '$(PY_OK)' 2>/dev/null || { \
	  echo "make: '$(PYTHON)' is not Python >= 3.10 ($$($(PYTHON) --version 2>&1))."; \
	  echo "      Run e.g. 'make $(MAKECMDGOALS) PYTHON=python3.12'."; exit 1; }
	@if [ -d $(VENV) ] && ! $(PY) -c '$(PY_OK)' 2>/dev/null; then \
	  echo "make: $(VENV) is broken or made from an old Python: rebuilding it"; \
	  rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "Installing sktransfer, PyTorch and the test/docs tools into $(VENV)" \
	      "(several minutes the first time)..."
	$(if $(TORCH_INDEX),$(PY) -m pip install torch torchvision --index-url $(TORCH_INDEX))
	$(PY) -m pip install --progress-bar on -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)  ## the gas drift demo on the embedded data
	$(VENV)/bin/sktransfer demo --out results/demo

test: $(STAMP)  ## ruff and the test suite
	$(VENV)/bin/ruff check sktransfer tests examples benchmarks
	$(PY) -m pytest -q

test-min:  ## ruff and the test suite at the minimum supported versions
	PYTHON=$(PYTHON) TORCH_INDEX=$(TORCH_INDEX) bash .ci/run-min -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

gallery-figures: $(STAMP)
	$(PY) scripts/make_gallery_figures.py

clean:
	rm -rf $(VENV) docs/_build docs/auto_examples results
