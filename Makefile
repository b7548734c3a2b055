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

.PHONY: run test conformance lint bench install check clean wheel-test translations browsers screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,postgres,redis,server]'
	for plugin in plugins/*/; do $(BIN)/pip install --quiet --no-deps -e "$$plugin" || exit 1; done
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The screens' message catalogs, compiled when a .po file changes (wheels
# compile them in setup.py's build hook).
CATALOGS := $(wildcard ui/translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)

$(COMPILED): %.mo: %.po | $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

install: $(STAMP) $(COMPILED)

# After changing a platform string in crmkit.ui: refresh both catalogs, then
# translate what is new (make test names every string without a translation).
translations: install
	$(BIN)/pybabel extract -F ui/babel.cfg -k lazy_gettext --add-location=file --sort-output --no-wrap \
		--project=crmkit -o $(VENV)/messages.pot platform/crmkit/ui ui/templates
	$(BIN)/pybabel update -i $(VENV)/messages.pot -d ui/translations --no-wrap --no-fuzzy-matching \
		--ignore-obsolete
	$(MAKE) install

# The browser tests' Chromium (Debian's, with CJK fonts for the Chinese
# screenshots); Playwright drives it, it never downloads a browser of its own.
browsers:
	@command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || \
		{ apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk; } || \
		{ echo "the browser tests need Chromium: apt-get install chromium fonts-noto-cjk"; exit 1; }

# The README's screenshots (docs/screenshots/<page>-<lang>.png), made by the browser tests.
screenshots: install browsers
	CRMKIT_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/browser

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

# The API against its own OpenAPI document, with schemathesis (several minutes;
# CI runs it, make test leaves it out).
conformance: install
	$(BIN)/python -m pytest -m conformance tests/test_api_conformance.py

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
