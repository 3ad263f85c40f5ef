# The two Quick start targets install what they need into .venv first (idempotent).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Spinning OpenMP workers made CPU training steps ~6x slower on a shared 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test install lint

# The main job, end to end, offline, on CPU, with the built-in defaults.
run: $(STAMP)
	$(VENV)/bin/labwarden prepare --profile tiny
	$(VENV)/bin/labwarden run --agent tuner --profile tiny --max-experiments 4
	$(VENV)/bin/labwarden results --tsv

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

install: $(STAMP)

# torch first and pinned: 2.13.0 is the CPU wheel; a looser spec can pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	# compat mode: a plain path .pth instead of an import-hook finder, ~30 ms less per start.
	$(PY) -m pip install --quiet -e '.[test,ray]' --config-settings editable_mode=compat
	# Bytecode up front: where PYTHONDONTWRITEBYTECODE is set, every start would recompile.
	$(PY) -m compileall -q agents guards labwarden sandbox
	touch $(STAMP)
