# pyrec_pg: `make demo` runs the whole job end to end, `make test` runs the tests.
# PG_MAJOR picks the PostgreSQL major (docs/platforms.md): Debian's packages where the machine
# carries it (bookworm: 15), else a source build in .build/pg$(PG_MAJOR)/. PG_CONFIG names
# another server's pg_config instead.
PG_MAJOR    ?= 15
ifeq ($(origin PG_CONFIG),undefined)
PG_CONFIG   := $(shell PG_MAJOR=$(PG_MAJOR) ./scripts/provision.sh --pg-config)
endif
PYTHON      ?= python3
VENV        ?= .venv
SERVER_PY   ?= /usr/bin/python3
BIN         := $(VENV)/bin

.PHONY: help postgres venv ext server-deps setup install demo test eval lint typecheck layers check clean

help:
	@echo "make demo     provision Postgres, load MovieLens-100K, train in-database, recommend"
	@echo "make test     provision everything and run the test suite against a real server"
	@echo "make install  install the extension and pyrec_pg into an existing Postgres $(PG_MAJOR) server"
	@echo "make eval     offline metrics of every recipe on MovieLens-100K (3 seeds)"
	@echo "make check    ruff + mypy + the layering of pyrec_pg (tools/check_layers.py)"
	@echo "PG_MAJOR=17   (or make demo PG_MAJOR=17) another PostgreSQL major: docs/platforms.md"

postgres:
	PG_MAJOR=$(PG_MAJOR) ./scripts/provision.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

ext: postgres
	$(MAKE) -s -C sql PG_CONFIG=$(PG_CONFIG) install

# pinned pure-Python deps for the throwaway clusters' server Python (found via PYTHONPATH)
.build/server-site/.installed: requirements-server.txt requirements-text.txt $(VENV)/.installed
	rm -rf .build/server-site
	$(BIN)/pip install -q --no-deps --target .build/server-site -r requirements-server.txt \
		-r requirements-text.txt
	touch $@

server-deps: .build/server-site/.installed

setup: ext venv server-deps

# into an existing server: extension files + pyrec_pg and its pinned deps in the server's Python;
# the CLI, integrations and development tools stay out (the server never imports them)
SERVER_EXCLUDES := cli dev integrations
install: ext venv
	site=$$($(SERVER_PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') && \
	$(BIN)/pip install -q --no-deps --upgrade --target "$$site" -r requirements-server.txt . && \
	for d in $(SERVER_EXCLUDES); do rm -rf "$$site/pyrec_pg/$$d"; done

# the throwaway clusters of the demo, the tests and eval run the binaries of this pg_config
RUN := PYREC_PG_CONFIG=$(PG_CONFIG)

demo: setup
	$(RUN) $(BIN)/python -m pyrec_pg.cli demo

test: setup
	$(RUN) $(BIN)/python -m pytest $(PYTEST_ARGS)

# quality on MovieLens-100K (docs/design.md, section 5), every recipe, mean of 3 seeds
eval: setup
	$(RUN) $(BIN)/python -m bench.eval_movielens

lint:
	$(BIN)/ruff check pyrec_pg tests bench tools

typecheck:
	$(BIN)/mypy

# imports only point down the layers of pyrec_pg, and form no cycle (docs/architecture.md)
layers:
	$(BIN)/python tools/check_layers.py

check: lint typecheck layers

clean:
	$(MAKE) -s -C sql clean PG_CONFIG=$(PG_CONFIG)
	rm -rf .build
