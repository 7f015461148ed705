#!/usr/bin/env bash
# The test command: prepare the environment, then run the whole suite
# (extra arguments go to pytest, e.g. -m "not slow" or -k harness).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-env.sh
rc=0
.venv/bin/python -m pytest -v tests "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
