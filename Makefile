# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: demo test test-stripe run worker emulator migrate bench clean

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

demo: $(BIN)/.installed  ## the end-to-end tour on the embedded defaults (SQLite, inline jobs, the emulator)
	$(BIN)/flask db upgrade
	$(BIN)/flask demo

test: $(BIN)/.installed  ## the whole suite (PostgreSQL/Redis when TEST_DATABASE_URL/TEST_REDIS_URL are set)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist worksteal

test-stripe: $(BIN)/.installed  ## the conformance tests and Stripe-facing flows against Stripe's test mode
	@test -n "$$STRIPE_TEST_SECRET_KEY" || { echo "set STRIPE_TEST_SECRET_KEY=sk_test_... (a test-mode key)"; exit 2; }
	$(BIN)/python -m pytest -q tests/emulator tests/integration/test_stripe_flows.py

run: $(BIN)/.installed  ## the API under gunicorn on :8000
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn --bind 127.0.0.1:8000 --workers 2 --threads 4 wsgi:app

worker: $(BIN)/.installed
	$(BIN)/flask worker

emulator: $(BIN)/.installed
	$(BIN)/python -m stripe_emulator --host 127.0.0.1 --port 12111

migrate: $(BIN)/.installed
	$(BIN)/flask db upgrade

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
