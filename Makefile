# genflow — run `make help` for the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# two workers: the suite is many single-threaded tests (the CI machine has 2 cores)
PYTEST_ARGS ?= -n 2 --dist worksteal

.DEFAULT_GOAL := help
.PHONY: help install demo test notebooks clear-notebooks lint format clean

help: ## Show this help
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,inception,notebooks]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv (if missing) and install genflow with its dev tools and the offline Inception

demo: $(STAMP) ## Train a VAE on the embedded digits; write samples, reconstructions, test ELBO/IWAE
	GENFLOW_OFFLINE=1 $(PY) experiments/demo.py

test: $(STAMP) ## Run the whole test suite (CPU, offline)
	WANDB_MODE=offline WANDB_SILENT=true $(PY) -m pytest -q $(PYTEST_ARGS)

notebooks: $(STAMP) ## Run every notebook in notebooks/ in a fresh kernel and time it (as the tests do)
	$(PY) experiments/benchmarks/notebooks.py

clear-notebooks: $(STAMP) ## Strip outputs from notebooks/*.ipynb (the tests refuse stored outputs)
	$(PY) experiments/benchmarks/notebooks.py --clear

lint: $(STAMP) ## Check style with ruff
	$(VENV)/bin/ruff check genflow tests experiments notebooks
	$(VENV)/bin/ruff format --check genflow tests experiments notebooks

format: $(STAMP) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format genflow tests experiments notebooks
	$(VENV)/bin/ruff check --fix genflow tests experiments notebooks

clean: ## Remove caches (keeps .venv and runs/)
	rm -rf .pytest_cache .ruff_cache $$(find . -name __pycache__ -not -path './$(VENV)/*')
