# Health-inequalities pipeline. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
RAW ?= data/raw
PROCESSED ?= data/processed
REPORTS ?= reports
CONFIG ?= pipeline/default.toml
PATIENTS ?= 250000
SEED ?= 20240331
ICB ?= QHM
YEAR ?= 2022-23
REALDATA ?= data/public
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_COMPILE_BYTECODE := 1
export GX_ANALYTICS_ENABLED := false
ENGINE ?= duckdb
STAGE_ARGS := --raw $(RAW) --processed $(PROCESSED) --reports $(REPORTS) --config $(CONFIG)
DATA_ARGS := $(STAGE_ARGS) --engine $(ENGINE)

.PHONY: help install install-spark all demo-data ingest transform analyse report test test-fast lint clean clean-raw benchmark bench real notebook docs check

help: ## list the targets (this text)
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

.tools/bin/uv:
	@echo "uv not found: installing it into .tools/"
	$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --python $(PYTHON)
	@touch $@

# the Spark engine's packages (pyspark, sqlglot) are an optional extra: for the tests, benchmarks and ENGINE=spark
$(VENV)/.installed-spark: $(VENV)/.installed
	$(UV) sync --frozen --inexact --extra spark --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed $(if $(filter spark,$(ENGINE)),$(VENV)/.installed-spark) ## build .venv/ with uv from the lock file (installs uv first when missing; ENGINE=spark adds pyspark)

install-spark: $(VENV)/.installed-spark ## add the Spark engine's optional packages (pyspark, sqlglot) to .venv/

demo-data: install ## write the synthetic demo extract to data/raw when it is empty (PATIENTS=250000 SEED=...)
	@if [ -z "$$(ls -A $(RAW) 2>/dev/null | grep -v '^.gitkeep$$')" ]; then \
		$(PY) -m pipeline demo-data --out $(RAW) --patients $(PATIENTS) --seed $(SEED); \
	else echo "$(RAW) is not empty: keeping it (make clean-raw to start again)"; fi

all: demo-data ## everything: environment, demo data if data/raw is empty, every stage, the packs (ENGINE=spark for Spark)
	$(PY) -m pipeline run $(DATA_ARGS)

check: install ## pre-flight report on data/raw (rows, columns, date format, rejects, codelists, LSOAs); writes nothing
	$(PY) -m pipeline check --raw $(RAW) --config $(CONFIG)

ingest: install ## validate and load data/raw into data/processed/warehouse.duckdb
	$(PY) -m pipeline ingest $(DATA_ARGS)

transform: install ## SQL models: staging -> intermediate -> marts
	$(PY) -m pipeline transform $(DATA_ARGS)

analyse: install ## statistics: prevalence, inequality, funnel, trend tables (and Parquet exports)
	$(PY) -m pipeline analyse $(DATA_ARGS)

report: install ## PDF packs and their CSVs in reports/, disclosure control applied
	$(PY) -m pipeline report $(STAGE_ARGS)

test: install-spark ## run the test suite (unit, sql, integration) on TEST_WORKERS=2 processes
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-fast: install ## the unit and SQL tests without the slow ones, on TEST_WORKERS processes (under a minute; `make test` runs everything)
	$(PY) -m pytest tests/unit tests/sql -m "not slow" -p no:cacheprovider -n $(TEST_WORKERS) --dist load $(PYTEST_ARGS)

lint: install ## ruff
	$(VENV)/bin/ruff check pipeline tests benchmarks

benchmark: install ## speed benchmarks (statistics, 1M-patient run)
	$(PY) benchmarks/bench_stats.py --mc-areas 1000
	$(PY) benchmarks/bench_pipeline.py --patients 1000000

BENCH_DIR ?= $(or $(TMPDIR),/tmp)/pipeline-bench
bench: install-spark ## data stages at 100k, 1M, 10M patients (DuckDB) and 1M (local Spark) vs a hand-written baseline -> benchmarks/results.md
	$(PY) benchmarks/bench_scale.py --sizes 100000,1000000,10000000 --spark-sizes 1000000 --without-indicators --work $(BENCH_DIR) --results benchmarks/results.md

real: install ## packs from England's published files in REALDATA=DIR (ICB=QHM or all; YEAR=2022-23 or 2022-23,2024-25 for a trend)
	$(PY) -m pipeline public --in $(REALDATA) --year $(YEAR) --icb $(ICB) --processed data/processed_public --reports reports_public

docs: install ## regenerate the generated sections of docs/ from the code's declarations
	$(PY) -m pipeline.docs

notebook: install ## build notebooks/explore.ipynb from its jupytext .py twin
	$(VENV)/bin/jupytext --to notebook notebooks/explore.py

clean: ## remove what the pipeline writes in PROCESSED and REPORTS (never data/raw, nor your own files in REPORTS; see clean-raw)
	@test -n "$(strip $(PROCESSED))" && test -n "$(strip $(REPORTS))" || { echo "PROCESSED and REPORTS must name folders"; exit 2; }
	rm -rf $(addprefix $(PROCESSED)/,warehouse.duckdb warehouse.duckdb.tmp-* *.parquet boundaries.geojson .duckdb_spill spark .pipeline.lock)
	rm -rf $(addprefix $(REPORTS)/,README.txt pcn ics community england) data/processed_public reports_public

clean-raw: ## remove data/raw too (asked for explicitly)
	@test -n "$(strip $(RAW))" || { echo "RAW must name a folder"; exit 2; }
	rm -rf $(RAW)/*
	@touch $(RAW)/.gitkeep
