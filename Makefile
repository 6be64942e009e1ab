# MBT: `make run` starts the whole mesh on the embedded default; `make test` runs the suite.
# Everything a fresh clone needs (virtualenv, packages, generated code, buf) is made on demand.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PROTOS := $(shell find protos -name '*.proto')
BUF_VERSION := 1.75.0
BUF    := build/node/node_modules/.bin/buf

.PHONY: help venv protos run test lint bench bench-venv lock clean

help:
	@echo "make run     start every service and the gateway (embedded default)"
	@echo "make test    run the test suite (PostgreSQL/Redis when MBT_TEST_* are set)"
	@echo "make protos  regenerate gen/ from protos/"
	@echo "make lint    ruff (lint, format check), mypy (strict on domain and use cases), buf lint"
	@echo "make bench   print benchmark figures (make bench matcher: one of them; python -m bench -h lists them;"
	@echo "             make bench-venv first for the NautilusTrader comparison)"

venv: $(VENV)/.installed

# The site-packages path is asked in the shell: make expands a whole recipe before its
# first line has created the venv.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[test,lint]'
	echo "$(CURDIR)/gen" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mbt_generated.pth"
	touch $@

protos: gen/.stamp

# Generated code lives in gen/ (never edited, never committed): Python modules,
# gRPC stubs, type stubs and one descriptor set the gateway builds its routes from.
gen/.stamp: $(VENV)/.installed $(PROTOS)
	rm -rf gen && mkdir -p gen
	$(PY) -m services.common.rpc.protogen protos gen
	touch $@

run: protos
	$(PY) -m services.run

test: protos $(BUF)
	$(PY) -m pytest $(PYTEST_ARGS)

$(BUF):
	mkdir -p build/node
	cd build/node && npm install --silent --no-audit --no-fund --prefix . @bufbuild/buf@$(BUF_VERSION)

# mypy --strict on every service's domain rules and use cases (migrations excluded);
# the rest of the tree is checked with the [tool.mypy] settings of pyproject.toml.
STRICT := $(shell find services -name migrations -prune -o \( -name domain.py -o -name usecases.py -o -type d -name domain -o -type d -name usecases \) -print | sort)

lint: protos $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services gateway bench
	$(VENV)/bin/mypy --strict $(STRICT)
	$(PY) -m services.common.rpc.protogen --lint protos $(BUF)

# `make bench matcher orders`: the words after bench name benchmarks, not targets.
ifeq (bench,$(firstword $(MAKECMDGOALS)))
BENCH_NAMES := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
ifneq ($(BENCH_NAMES),)
$(eval $(BENCH_NAMES):;@:)
endif
endif

bench: protos
	$(PY) -m bench $(BENCH_NAMES)

# The peer backtester (bench extra) in a virtualenv of its own: bench/backtest.py runs
# ../shared/peers/nautilus_quote_backtest.py with it when it exists.
BENCH_VENV := build/bench-venv
bench-venv: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q "$$(grep -o 'nautilus_trader==[0-9.]*' pyproject.toml)"
	touch $@

lock:
	$(PIP) freeze --exclude-editable | { echo "# Pinned versions for pip install -c; regenerate with 'make lock' after changing pyproject.toml."; cat; } > constraints.txt

clean:
	rm -rf gen build var .pytest_cache
