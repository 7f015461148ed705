#!/usr/bin/env bash
# The test command: prepare the environment, then run pytest. Arguments go
# to pytest; with no path among them pytest.ini's testpaths (tests) applies,
# so "tools/run-tests.sh tests/unit -k tokens" runs only the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-env.sh
rc=0
.venv/bin/python -m pytest -v "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
