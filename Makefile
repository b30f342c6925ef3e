# Every target creates the virtual environment first if it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak clean vendor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/avisa dev

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# Figures go to the terminal and bench/results/; docs/benchmarks.md records them with commands.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench --events 2000
	$(BIN)/python -m bench.ingest_events
	$(BIN)/python -m bench.ingest_events --database-url postgresql
	$(BIN)/python -m bench.ingest_floor
	$(BIN)/python -m bench.ingest_claims --rows 100000
	$(BIN)/python -m bench.reminders --timers 100000 --database-url postgresql
	$(BIN)/python -m bench.reminders --timers 100000 --database-url postgresql --burst database \
		--pending 10000 100000 1000000 --rules-replicas 1 2
	$(BIN)/python -m bench.scale --events 2000
	$(BIN)/python -m bench.notifier_throughput --requests 1000 --latency-ms 50 --concurrency 8 32
	$(BIN)/python -m bench.rules_timers --pending 100000 --due 10000 --events 2000

# The fault tests with many more kill rounds than `make test` runs.
soak: $(STAMP)
	AVISA_FAULT_ROUNDS=25 $(BIN)/python -m pytest -q tests/faults --timeout 1800 --durations 0

# Refresh the console's vendored GOV.UK Frontend (compiled without the GDS Transport font)
# and htmx from the npm registry, at the versions pinned in tools/vendor_console.sh.
vendor:
	bash tools/vendor_console.sh

clean:
	rm -rf $(VENV) var build *.egg-info
