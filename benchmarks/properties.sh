#!/usr/bin/env bash
# The long property and fuzzing run: every hypothesis test with 2,000 examples each
# (make test runs 40, seeded). Usage: bash benchmarks/properties.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
HYPOTHESIS_PROFILE=long exec .venv/bin/python -m pytest -q tests/test_properties.py tests/test_fuzz_loaders.py "$@"
