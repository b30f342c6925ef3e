# Every target creates the virtual environment first if it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench soak simulate clean vendor

# Parallel test processes: most tests wait on brokers, processes and timers rather than
# compute, so more workers than the 2 cores of CI pay (docs/benchmarks.md, "Test suite").
TEST_WORKERS ?= 4
PYTEST_BASE := $(BIN)/python -m pytest -q -p no:cacheprovider --durations=20 --dist worksteal
PYTEST := $(PYTEST_BASE) -n $(TEST_WORKERS)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/avisa dev

# Every test: both databases, the end-to-end, fault and browser tests. The fault tests (kill,
# cut, restart, provider storms) run after the rest, two at a time: they count timings and
# deliveries of whole systems, which a machine busy with the other tests would skew.
test: $(STAMP)
	$(PYTEST) --ignore=tests/faults; status=$$?; \
	$(PYTEST_BASE) -n 2 tests/faults || exit 1; exit $$status

# Unit and integration tests only (no service processes): the edit loop.
test-fast: $(STAMP)
	$(PYTEST) -m "not e2e"

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

# The deterministic simulator (sim/): SEED (default: a random one, printed) and CASES.
SEED ?=
CASES ?= 100000
simulate: $(STAMP)
	$(BIN)/python -m sim --cases $(CASES) $(if $(SEED),--seed $(SEED))

# The fault tests with many more kill rounds than `make test` runs.
soak: $(STAMP)
	AVISA_FAULT_ROUNDS=25 $(BIN)/python -m pytest -q tests/faults --timeout 1800 --durations 0

# Refresh the console's vendored GOV.UK Frontend (compiled without the GDS Transport font)
# and htmx from the npm registry, at the versions pinned in tools/vendor_console.sh.
vendor:
	bash tools/vendor_console.sh

clean:
	rm -rf $(VENV) var build *.egg-info
