# The README's two commands are `make run` and `make test`; the rest are their steps.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# `make serve` listens on 8080 and sizes gunicorn from the CPU count, unless told.
SERVE_PORT = $(if $(filter file,$(origin PORT)),8080,$(PORT))
SERVE_WORKERS = $(if $(filter file,$(origin WORKERS)),,$(WORKERS))
NGINX_APT := apt-get install nginx-light
export FLASK_APP := wsgi.py

.PHONY: run serve nginx test load bench lint format translations translations-update install install-dev e2e-deps clean

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

# The production shape: nginx on HOST:PORT in front of gunicorn (deploy/), on the
# DATABASE_URL and RATELIMIT_STORAGE_URI of the environment; Ctrl-C stops both.
serve: install translations instance/secret_key nginx
	DATABASE_STATEMENT_TIMEOUT=0 $(BIN)/flask db upgrade
	$(BIN)/flask barometer load-surveys
	HOST=$(HOST) PORT=$(SERVE_PORT) WORKERS=$(SERVE_WORKERS) $(BIN)/python deploy/serve.py

nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx \
		|| { echo "nginx est introuvable ; installez-le : sudo $(NGINX_APT)"; exit 1; }

test: install-dev translations e2e-deps
	$(BIN)/python -m pytest

# 200 residents for about 30 s against `make serve`'s shape (tests/load); on the
# database of TEST_DATABASE_URL, with Redis on 127.0.0.1:6379.
load: install-dev translations nginx
	$(BIN)/python -m pytest tests/load -m load -s

# bench_http.py drives gunicorn with wrk (Debian: `sudo apt-get install wrk`).
bench: install-dev translations
	@command -v wrk >/dev/null 2>&1 || { echo "wrk introuvable : sudo apt-get install wrk"; exit 1; }
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_analysis.py
	$(BIN)/python bench/bench_results.py
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_reports.py
	$(BIN)/python bench/bench_steering.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache
