# RecScope: `make demo` serves the dashboard on the sample data, `make test` runs the tests.
# Both create .venv and install what they need on first use.
#
# Torch: pinned to one release. On a machine whose pip has a local wheel of it (a CPU build)
# that file is taken and nothing large is downloaded; elsewhere PyPI's Linux wheel of the
# same release is the CUDA build, so a GPU machine gets CUDA. Override with
# `make TORCH_SPEC="torch==X --index-url ..."` for another build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.recscope-installed
PORT ?= 8501
# the demo's workspace; tests make their own throw-away ones
DEMO_HOME ?= $(CURDIR)/workspace
# `make share` listens here (every interface); the app then asks every visitor for the password
SHARE_ADDRESS ?= 0.0.0.0

.PHONY: demo share test lint e2e bench browser setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	RECSCOPE_HOME=$${RECSCOPE_HOME:-$(DEMO_HOME)} $(PY) -m core.cli ingest-sample
	RECSCOPE_HOME=$${RECSCOPE_HOME:-$(DEMO_HOME)} $(VENV)/bin/streamlit run dashboard/app.py --server.port $(PORT) --server.address 127.0.0.1 \
		--server.headless true --browser.gatherUsageStats false

# Serve the dashboard to the network: needs RECSCOPE_PASSWORD_FILE (a file outside the repo
# holding the password) or RECSCOPE_PASSWORD; every visitor must type it (dashboard/auth.py).
share: $(STAMP)
	@test -n "$$RECSCOPE_PASSWORD_FILE$$RECSCOPE_PASSWORD" || { echo "make share needs a \
	password: RECSCOPE_PASSWORD_FILE=/path/to/secret make share (or set RECSCOPE_PASSWORD)"; \
	exit 2; }
	RECSCOPE_HOME=$${RECSCOPE_HOME:-$(DEMO_HOME)} $(PY) -m core.cli ingest-sample
	RECSCOPE_HOME=$${RECSCOPE_HOME:-$(DEMO_HOME)} $(VENV)/bin/streamlit run dashboard/app.py \
		--server.port $(PORT) --server.address $(SHARE_ADDRESS) --server.headless true \
		--browser.gatherUsageStats false --server.enableXsrfProtection true

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

# RECSCOPE_HOME is unset so that no test can touch the user's own workspace by accident.
test: $(STAMP) browser lint
	env -u RECSCOPE_HOME $(PY) -m pytest -q -p no:cacheprovider

e2e: $(STAMP) browser
	$(PY) -m pytest -q -m e2e

# Headless Chromium for the browser test (Debian packages; Playwright drives that binary).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null; \
		else echo "chromium not found: browser tests will be skipped"; fi; }

# Benchmarks print one JSON document each; they are not run by `make test`.
bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/train.py
	$(PY) bench/explain.py
	$(PY) bench/index.py
	$(PY) bench/scenarios.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
