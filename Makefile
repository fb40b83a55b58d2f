# Quick start: `make smoke` (set up + run the embedded pipeline end to end), `make test` (set up + all tests).
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup smoke test lint pull

setup:
	@scripts/setup_venv.sh

# `dvc repro` runs the pipeline's one DVC stage, `snakemake --workflow-profile workflow/profiles/local`, and records
# what it computed in dvc.lock, so `dvc push` shares it (docs/sharing.md).
smoke: setup
	dvc repro

# Two workers (one test file each, so module fixtures and the session's tiny run are built once) for everything but
# the tests that time themselves, then those alone. Plain `python -m pytest` runs the same tests one after another.
test: setup lint
	python -m pytest -m "not alone" -n 2 --dist loadfile
	python -m pytest -m alone

# ruff's lint and format rules (pyproject.toml); `ruff format .` and `ruff check --fix .` repair most of it.
lint: setup
	ruff check .
	ruff format --check .

# `dvc pull`, then verify every pulled file against dvc.lock and mark the results up to date (after a plain
# `dvc pull`: `alitok pull --no-fetch`; docs/sharing.md).
pull: setup
	alitok pull
