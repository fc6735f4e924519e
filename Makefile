# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install the exact pins from requirements.lock.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two shared cores: keep NumPy's BLAS from fighting JAX for them.
export OPENBLAS_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: setup demo test bench clean

setup: $(STAMP)

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

clean:
	rm -rf outputs/bench outputs/demo
