# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install the exact pins from requirements.lock.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two shared cores: keep NumPy's BLAS from fighting JAX for them.
export OPENBLAS_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: setup demo test bench clean lab report gemma-env gemma-parity

# JupyterLab opens the percent .py notebooks as notebooks (jupytext viewer) with no
# environment variable: the repo's lab settings are installed into the venv's config dir.
LABCONFIG := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json

setup: $(STAMP) $(LABCONFIG)

$(LABCONFIG): .jupyter/labconfig/default_setting_overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/ouro demo

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m ouro.bench

lab: setup
	$(VENV)/bin/jupyter lab

# The committed report snapshot (plain `ouro report` writes outputs/report/, git-ignored).
report: setup
	$(VENV)/bin/ouro report --reports reports

clean:
	rm -rf outputs/bench outputs/demo
