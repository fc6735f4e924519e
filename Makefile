# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install the exact pins from requirements.lock.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two shared cores: keep NumPy's BLAS from fighting JAX for them.
export OPENBLAS_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: setup demo test faults bench clean lab report gemma-env gemma-parity pod-sim plan-env

# JupyterLab opens the percent .py notebooks as notebooks (jupytext viewer) with no
# environment variable: the repo's lab settings are installed into the venv's config dir.
LABCONFIG := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json

# ...and opens them unmodified: jupytext's contents manager plus the kernel's language_info
# (ouro/runs/lab.py), installed as a server config file the same way.
SERVERCONFIG := $(VENV)/etc/jupyter/jupyter_server_config.d/ouro.json

setup: $(STAMP) $(LABCONFIG) $(SERVERCONFIG)

$(LABCONFIG): .jupyter/labconfig/default_setting_overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

$(SERVERCONFIG): .jupyter/jupyter_server_config.json $(STAMP)
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

# The gs:// tests (emulator, runs on gs://, pod in a box) share the xdist workers with the
# rest: the hang once seen there was gcsfs's zonal/HNS client, chosen when papermill imported
# gcsfs before the emulator's variables were set (ouro/data/storage.py _emulator_client).
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# The fault-injection suite with 10 seeded trials per randomised fault (make test runs 1).
faults: setup
	OURO_FAULT_TRIALS=10 $(PY) -m pytest -q -m faults tests/faults

# Pod in a box: 4 host processes (jax.distributed, 2 CPU devices each), each in its own mount
# namespace, sharing nothing but ouro's GCS emulator; every trial (preemption, a lost host,
# resume on 2 hosts, damaged checkpoints, a second run, storage errors), then a table.
pod-sim: setup
	$(PY) -m ouro.sim --hosts 4 --table outputs/pod-sim/table.md

bench: setup
	$(PY) -m ouro.bench

# Parity with the official gemma library, in its own venv (gemma 3.3.0 cannot share the
# main one: pip's resolver does not finish on its dependencies). ~3.5 min and ~590 MB once;
# the test then takes ~2-3 min on 2 cores (it loads the 270M weights into both models).
GEMMA_VENV ?= .venv-gemma

gemma-env: $(GEMMA_VENV)/.installed

$(GEMMA_VENV)/.installed: requirements-gemma.lock pyproject.toml
	test -x $(GEMMA_VENV)/bin/python || $(PYTHON) -m venv $(GEMMA_VENV) || python3 -m venv $(GEMMA_VENV)
	$(GEMMA_VENV)/bin/python -m pip install --quiet -r requirements-gemma.lock
	$(GEMMA_VENV)/bin/python -m pip install --quiet --no-deps gemma==3.3.0 kauldron==1.4.2
	$(GEMMA_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

gemma-parity: gemma-env
	OURO_REQUIRE_GEMMA=1 $(GEMMA_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/text/test_gemma_parity.py

# Deviceless TPU compilation for `ouro plan --topology v5e:4x8` (libtpu 0.0.42.1, ~700 MB
# download, 1.5 GB installed), in its own venv so the main one never loads libtpu (every JAX
# process would print TPU start-up noise). Then: .venv-tpu/bin/ouro plan --fit
TPU_VENV ?= .venv-tpu

plan-env: $(TPU_VENV)/.installed

$(TPU_VENV)/.installed: requirements-tpu.lock pyproject.toml
	test -x $(TPU_VENV)/bin/python || $(PYTHON) -m venv $(TPU_VENV) || python3 -m venv $(TPU_VENV)
	$(TPU_VENV)/bin/python -m pip install --quiet -r requirements-tpu.lock
	$(TPU_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

lab: setup
	$(VENV)/bin/jupyter lab

# The committed report snapshot (plain `ouro report` writes outputs/report/, git-ignored).
report: setup
	$(VENV)/bin/ouro report --reports reports

clean:
	rm -rf outputs/bench outputs/demo
