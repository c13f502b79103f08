# The README's two commands are `make run` and `make test`; the rest are their steps.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
export FLASK_APP := wsgi.py

.PHONY: run test bench lint format translations translations-update install install-dev e2e-deps clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# axe-core, injected into pages by the browser tests (skipped when npm is absent).
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --silent && touch $@; \
	else echo "npm introuvable : les tests navigateur seront ignorés"; fi
e2e-deps: node_modules/.installed

translations: install
	$(BIN)/pybabel compile -d barometer/translations

translations-update: install-dev
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs ".* .venv node_modules __pycache__" -o messages.pot .
	$(BIN)/pybabel update -i messages.pot -d barometer/translations
	rm -f messages.pot

instance/secret_key:
	mkdir -p instance
	$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@
	chmod 600 $@

run: install translations instance/secret_key
	$(BIN)/flask db upgrade
	$(BIN)/flask barometer load-surveys
	@if $(BIN)/flask barometer is-empty; then $(BIN)/flask barometer demo --seed 1; fi
	@echo
	@$(BIN)/flask barometer urls --base http://$(HOST):$(PORT)
	@echo
	$(BIN)/gunicorn --workers $(WORKERS) --bind $(HOST):$(PORT) wsgi:app

test: install-dev translations e2e-deps
	$(BIN)/python -m pytest

bench: install-dev translations
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_analysis.py
	$(BIN)/python bench/bench_results.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache
