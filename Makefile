# Quick start: `make smoke` (set up + run the embedded pipeline end to end), `make test` (set up + all tests).
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup smoke test pull

setup:
	@scripts/setup_venv.sh

smoke: setup
	snakemake --workflow-profile workflow/profiles/local

test: setup
	python -m pytest

# `dvc pull`, then verify and mark up to date at once (plain `dvc pull` works too: the pipeline does this on
# its next invocation; docs/sharing.md).
pull: setup
	alitok pull
