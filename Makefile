# crmkit: `make run` serves the sample CRM, `make test` runs the whole suite.
# Both set everything up on a fresh machine (a virtual environment in .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= sample_configs/retail_crm
HOST ?= 127.0.0.1
PORT ?= 5000
SEED_SIZE ?= 200
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml plugins/*/pyproject.toml | cksum | cut -d' ' -f1)
export CRMKIT_INSTANCE ?= $(CURDIR)/instance

.PHONY: run test lint bench install check clean wheel-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,postgres,redis,server]'
	for plugin in plugins/*/; do $(BIN)/pip install --quiet --no-deps -e "$$plugin" || exit 1; done
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The first run loads demo data and users (password crmkit-demo, or CRMKIT_DEMO_PASSWORD)
# and then makes the first admin (password from CRMKIT_ADMIN_PASSWORD, else generated and
# printed once, last, where nobody scrolls past it).
run: export CRMKIT_CONFIG = $(CONFIG)
run: install
	@$(BIN)/crmkit migrate $(CONFIG) --apply
	@$(BIN)/crmkit seed $(CONFIG) --size $(SEED_SIZE) --if-empty
	@$(BIN)/crmkit user create-admin $(CONFIG) --if-missing
	@$(BIN)/crmkit serve $(CONFIG) --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Static checks: ruff (style, imports, likely bugs) and mypy over the whole crmkit package.
lint: install
	$(BIN)/ruff check platform tests bench plugins
	$(BIN)/mypy

check: install
	$(BIN)/crmkit check $(CONFIG)

bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
		(echo "bench needs wrk: apt-get install wrk"; exit 1)
	$(BIN)/python -m bench $(BENCH_ARGS)

wheel-test: install
	bash .ci/wheel-test

clean:
	rm -rf $(VENV) build *.egg-info platform/*.egg-info instance .pytest_cache
