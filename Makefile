# The two commands: `make run` and `make test`. Everything else is a step they take.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: run run-cluster test setup envs eval bench audit clean help

help:
	@echo "make run    - set up what is missing and start the whole product (Ctrl-C stops it)"
	@echo "make test   - set up what is missing and run the whole test suite"
	@echo "make run-cluster - nginx, 2 gateways, 2 Rasa and 2 action servers on PostgreSQL and Redis (Ctrl-C stops it)"
	@echo "make eval   - retrieval and answer-quality evaluation (writes bench/results/retrieval.json, quality.json)"
	@echo "make bench  - latency benchmarks (writes bench/results/)"
	@echo "make audit  - pip-audit of both Python environments (AUDIT_ADVISORY_DIR: an offline advisory folder)"

envs:
	@scripts/setup_envs.sh

setup: envs
	@$(PY) -m bot setup

run: setup
	@$(PY) -m bot run

run-cluster: setup
	@scripts/cluster_prereqs.sh
	@$(PY) -m bot cluster

test: envs
	@scripts/test_prereqs.sh
	@$(PY) -m bot setup
	@$(PY) -m bot audit
	@$(PY) -m pytest -q -rs

eval: setup
	@$(PY) bench/retrieval_eval.py
	@$(PY) bench/quality_eval.py

bench: setup
	@$(PY) bench/e2e_latency.py
	@$(PY) bench/handoff.py

audit: envs
	@$(PY) -m bot audit

clean:
	rm -rf var models
