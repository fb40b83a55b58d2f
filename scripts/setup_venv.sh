#!/usr/bin/env bash
# Build .venv from nothing, or do nothing when it already matches the pinned requirements.
# The stamp is a hash of everything that decides the install (pins, package metadata, python version),
# so a fresh clone (new file times) does not reinstall, and a changed pin does.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.requirements.sha256"

want=$( { cat requirements.txt pyproject.toml; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

echo "setup: building $VENV (first time: about 2 minutes) ..." >&2
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
# Byte-compile once, on every core (about 30 s). Where PYTHONDONTWRITEBYTECODE is set (CI, many containers) Python
# never writes .pyc itself, and every process would recompile what it imports from source: 2.5x the start-up of
# `snakemake` and 3x of `dvc`, 2 s more per pipeline job (docs/environment.md). The few files that are not Python
# 3.11 (torch ships one for 3.12) stay uncompiled, which is why compileall's status is not checked.
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" alitok >/dev/null 2>&1 || true
"$VENV/bin/dvc" config --global core.analytics false >/dev/null 2>&1 || true
echo "$want" > "$STAMP"
echo "setup: $VENV ready" >&2
