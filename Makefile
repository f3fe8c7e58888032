# wabot: `make demo` and `make test` set up their own virtualenv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test bench lint format clean

$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "wabot needs Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

## demo: real conversations through the receiver and a worker, on embedded defaults, with
## the metrics they move; ends with the dashboard URL, a builder token and an admin one
## made for the run, everything kept in .wabot/ (SERVE=1: keeps serving until Ctrl-C;
## BUILDER=id: your own builder's numbers; ASK=...: the question for its documents;
## PORT=8000: the receiver's port, refused at once when it is in use)
demo: $(INSTALLED)
	$(BIN)/wabot demo $(if $(SERVE),--serve) $(if $(BUILDER),--builder $(BUILDER)) \
		$(if $(PORT),--port $(PORT)) $(if $(ASK),--ask "$(ASK)")

# $(call debian_package,PROGRAM,WHAT NEEDS IT): apt-get install PROGRAM's Debian package
# when it is missing and we are root; else say what will fail.
define debian_package
@command -v $(1) >/dev/null || [ -x /usr/sbin/$(1) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -qq $(1) >/dev/null 2>&1 \
			|| { apt-get update -qq >/dev/null && apt-get install -y -qq $(1) >/dev/null; }; }; } \
		|| echo "$(1) is missing and could not be installed: $(2) will fail (apt-get install $(1))"
endef

## test: lint, then the whole suite on PostgreSQL and Redis (TEST_DATABASE_URL, REDIS_URL);
## the browser tests drive Debian's chromium, the receivers and workers reach Postgres
## through Debian's pgbouncer: both installed here when we are root
test: $(INSTALLED)
	$(call debian_package,chromium,the browser tests)
	$(call debian_package,pgbouncer,every test of a receiver or worker)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest

## bench: throughput and latency against baselines measured in the same run (BENCH_QUICK=1: short),
## each ratio compared with bench/baseline.json (SAVE=1: this run becomes it, to commit)
bench: $(INSTALLED)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get install -y -qq wrk >/dev/null; } \
		|| { echo "make bench loads the receivers with wrk: apt-get install wrk (or brew install wrk)"; exit 1; }
	$(BIN)/python -m bench $(if $(SAVE),--save-baseline)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .wabot .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
