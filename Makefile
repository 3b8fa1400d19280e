# roomchat: `make run` serves on http://127.0.0.1:8000, `make test` runs the tests.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8000
BIN    := $(VENV)/bin

.PHONY: run test lint format bench fuzz chaos clean migrate

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "roomchat needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(VENV)/.bench: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

run: $(VENV)/.runtime
	$(BIN)/roomchat serve --host $(HOST) --port $(PORT)

# Bring ROOMCHAT_DATABASE_URL (from the environment or .env) to the latest schema. The
# embedded SQLite default does this by itself at startup; PostgreSQL needs it once per
# release, before the workers start.
migrate: $(VENV)/.runtime
	$(BIN)/roomchat migrate

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make bench BENCH_ARGS='--quick'`; see bench/README.md.
bench: $(VENV)/.bench
	$(BIN)/python -m bench $(BENCH_ARGS)

# Issue 12's attack scenario: one hostile account against a probe user, beside a quiet run.
# `make fuzz FUZZ_ARGS='--seconds 15'`; see bench/README.md, "The attack scenario".
fuzz: $(VENV)/.bench
	$(BIN)/python -m bench.attack $(FUZZ_ARGS)

# Issue 15's faults (kill -9, SIGSTOP, Redis and PostgreSQL away, a rolling restart) against
# real processes on a PostgreSQL and Redis of the run's own; a table of sent, acknowledged,
# delivered, lost, duplicated and recovery time. Not part of `make test` (~5 min).
# `make chaos CHAOS_ARGS='--scenario redis-restart --seconds 20'`; see bench/README.md.
chaos: $(VENV)/.bench
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
