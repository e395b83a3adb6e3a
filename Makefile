# Two commands on a fresh machine:  make up  (the engine)  and  make test  (the tests).
# Both create the virtualenv in .venv on first use (Python 3.11+, PyPI reachable).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: up test lint install bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/nurture up $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy . \
		&& $(VENV)/bin/lint-imports

# The engine against Temporal underneath, at a size that finishes in about 10 minutes on 2
# cores: throughput and hand-off latency, start rate, idle footprint, instance cost, objects
# per cached lead (each a ratio to a baseline measured in the same run; figures in
# bench/results/, kept in bench/README.md).
bench: $(STAMP)
	$(VENV)/bin/python -m bench.engine_throughput --leads 300 --events 4 --repeats 2 --handoff-leads 100
	$(VENV)/bin/python -m bench.start_rate --leads 2000
	$(VENV)/bin/python -m bench.idle_scale --leads 2000
	$(VENV)/bin/python -m bench.instance_cost --runs 200
	$(VENV)/bin/python -m bench.cached_objects --leads 400
