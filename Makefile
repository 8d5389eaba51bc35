# Kokeilu: `make run` runs the platform, `make test` runs every test. Both set up what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint format run stop status cluster cluster-stop cluster-status test test-unit test-ops fuzz kafka postgres schemas deadletters bench bench-http bench-screening chaos chaos-cluster k8s-validate clean

# The venv gets the development set (runtime pins + tests, benches, linters); the image only requirements.txt.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# The official AsyncAPI parser, which tests/unit/platform/test_asyncapi.py runs on schemas/asyncapi.json
# (pinned in tools/asyncapi/package-lock.json; node_modules is not in git).
ASYNCAPI := tools/asyncapi
NPM_STAMP := $(ASYNCAPI)/node_modules/.installed

$(NPM_STAMP): $(ASYNCAPI)/package.json $(ASYNCAPI)/package-lock.json
	cd $(ASYNCAPI) && npm ci --ignore-scripts --no-audit --no-fund --no-update-notifier --loglevel=error
	touch $(NPM_STAMP)

# axe-core, which tests/browser injects into the portal's pages (pinned in tools/axe/package-lock.json).
AXE := tools/axe
AXE_STAMP := $(AXE)/node_modules/.installed

$(AXE_STAMP): $(AXE)/package.json $(AXE)/package-lock.json
	cd $(AXE) && npm ci --ignore-scripts --no-audit --no-fund --no-update-notifier --loglevel=error
	touch $(AXE_STAMP)

install: $(STAMP) $(NPM_STAMP) $(AXE_STAMP)

run: $(STAMP)          ## broker + four services (SQLite), in the background; `make stop` ends them (needs no Node.js)
	deploy/platform.sh start

stop:
	deploy/platform.sh stop

status:
	deploy/platform.sh status

cluster: install      ## three Kafka nodes, PostgreSQL, two instances of every service; `make cluster-stop` ends it
	deploy/cluster.sh start

cluster-stop:
	deploy/cluster.sh stop

cluster-status:
	deploy/cluster.sh status

kafka:
	deploy/kafka.sh start

postgres:
	deploy/postgres.sh start

# Static checks, configured in pyproject.toml: ruff's lint rules (isort included) and its
# formatter on the whole tree, and mypy (strict on kokeilu/ and services/, and on the unit tests'
# fakes, which it checks against each service's unit-of-work Protocol).
lint: $(STAMP)        ## ruff (lint + format check) and mypy (under a minute); `make test` runs it first
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)      ## apply ruff's import sorting, safe fixes and formatter to the whole tree
	$(PY) -m ruff check --fix --select I,UP .
	$(PY) -m ruff format .

test: install lint kafka postgres   ## static checks, then the whole suite against the real local broker and PostgreSQL
	KOKEILU_TEST_POSTGRES_URL="$$(deploy/postgres.sh url)" $(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-ops: install kafka   ## alert rule unit tests (promtool), Alertmanager routing (amtool), and the platform live under a real Prometheus and Alertmanager
	$(PY) -m pytest tests/ops

fuzz: install kafka postgres   ## the full fuzz run: 10 000 hostile requests (make test runs 300)
	KOKEILU_TEST_POSTGRES_URL="$$(deploy/postgres.sh url)" KOKEILU_FUZZ_REQUESTS=$${KOKEILU_FUZZ_REQUESTS:-10000} \
	  KOKEILU_FUZZ_REPORT=$${KOKEILU_FUZZ_REPORT:-.local/fuzz-report.json} $(PY) -m pytest tests/fuzz

schemas: install      ## regenerate schemas/ from the contract models
	$(PY) -m kokeilu.contracts.schemas

deadletters: $(STAMP)  ## list, show, redrive dead letters: `make deadletters ARGS="list --since 1h"`; docs/operations.md
	$(PY) -m kokeilu.deadletters $(ARGS)

.PHONY: asyncapi
asyncapi: install     ## validate schemas/asyncapi.json with the official parser; prints its diagnostics as JSON
	node $(ASYNCAPI)/validate.js schemas/asyncapi.json

bench: install kafka  ## ceiling, each stage and end to end in one table; `make bench ARGS="-n 5000"`; see bench/README.md
	$(PY) -m bench $(ARGS)

bench-http: install kafka  ## HTTP submit with oha (installed by bench/http_install.sh); see bench/HTTP.md
	bench/http_install.sh
	$(PY) -m bench.http_submit $(ARGS)

bench-screening: install postgres  ## screening with 100, 10,000 and 100,000 open proposals (SQLite and PostgreSQL)
	$(PY) -m bench.screening --postgres "$$(deploy/postgres.sh url)" $(ARGS)

chaos: install        ## chaos run: load, kill -9 everything, audit; `make chaos ARGS="--proposals 10000"`
	deploy/kafka.sh fetch
	$(PY) -m chaos $(ARGS)

chaos-cluster: install postgres  ## the same on three Kafka nodes and two instances of every service on PostgreSQL
	deploy/kafka.sh fetch
	$(PY) -m chaos --cluster --postgres "$$(deploy/postgres.sh url)" $(ARGS)

k8s-validate: install  ## render deploy/k8s (kubectl kustomize) and check it offline: schemas and what it says
	$(PY) -m pytest tests/test_k8s.py

clean: stop
	rm -rf .local
