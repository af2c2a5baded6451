#!/usr/bin/env bash
# Entry point of the README's two commands. Each runs the idempotent set-up first.
#   bash tools/dev.sh sim [isac-sim options]   set up, then run the main job (isac-sim)
#   bash tools/dev.sh test [pytest options]    set up, then run the whole test suite (pytest + ctest)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cmd="${1:-}"; shift || true
case "$cmd" in
  sim)
    bash tools/setup.sh
    exec "$ROOT/.venv/bin/isac-sim" "$@"
    ;;
  test)
    bash tools/setup.sh
    status=0
    "$ROOT/.venv/bin/python" -m pytest -q tests "$@" || status=$?
    ctest --test-dir "$ROOT/build" --output-on-failure || status=$?
    exit $status
    ;;
  *)
    echo "usage: bash tools/dev.sh sim|test [options]" >&2
    exit 2
    ;;
esac
