#!/usr/bin/env bash
# polyroute performance harness (issue #9). Usage: bash bench/perf/run.sh [--quick] [--no-litellm] [--db postgres]
# Needs wrk, nginx and taskset (apt-get install -y wrk nginx util-linux) and the project venv (.venv).
# Everything else (method, knobs, output) is in bench/perf/run.py and docs/adr/0003-benchmark-method.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the tree
exec "$ROOT/.venv/bin/python" "$ROOT/bench/perf/run.py" "$@"
