#!/usr/bin/env bash
# The test command: prepare the environment, then run pytest. Arguments go
# to pytest; with no path among them pytest.ini's testpaths (tests) applies,
# so "tools/run-tests.sh tests/unit -k tokens" runs only the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-env.sh
# The fault suite's rows, printed as one table at the end.
mkdir -p .run
export BRIDGE_FAULT_REPORT=$PWD/.run/fault-report.jsonl
: > "$BRIDGE_FAULT_REPORT"
rc=0
.venv/bin/python -m pytest -v "$@" || rc=$?
if [ -s "$BRIDGE_FAULT_REPORT" ]; then
    .venv/bin/python tools/fault-report.py --table-only "$BRIDGE_FAULT_REPORT"
fi
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
