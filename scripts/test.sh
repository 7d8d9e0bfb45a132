#!/usr/bin/env bash
# Set up molvae in a virtual environment and run the test suite (what CI runs).
#
#   bash scripts/test.sh            # extra arguments go to pytest, e.g. -k resume, or -m slow
#
# Needs only python3; installs torch==2.13.0 (CPU), molvae and its test extras into .venv, starts a
# throwaway PostgreSQL server on loopback for the shared-study optimizer tests (root, Debian), then
# runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MOLVAE_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"

PG_DIR=""
if [ -z "${MOLVAE_TEST_POSTGRES_URL:-}" ] && [ "$(id -u)" = 0 ]; then
    PG_DIR=$(mktemp -d /tmp/molvae-pg.XXXXXX)
    if URL=$(MOLVAE_PG_DIR="$PG_DIR" bash scripts/start_postgres.sh); then
        export MOLVAE_TEST_POSTGRES_URL="$URL"
        trap 'bash scripts/start_postgres.sh --stop "$PG_DIR" >/dev/null 2>&1 || true' EXIT
    else
        echo "test.sh: could not start PostgreSQL; the postgres tests will be skipped" >&2
        PG_DIR=""
    fi
fi
"$PY" -m pytest -q "$@"
