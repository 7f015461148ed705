"""Run the fault suite and print its table.

    .venv/bin/python tools/fault-report.py [--messages N] [pytest args...]

It runs tests/faults with pytest (the same servers and assertions as CI)
and prints one row per scenario and direction: sent, received, lost,
duplicated (with its bound, the bridge's in-flight window), the time from
the fault being lifted to the next delivery, and the workers' memory.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bridge  # noqa: E402,F401 (quiets eventlet's deprecation notice)
from tests.faults import scenarios  # noqa: E402


def print_table(path):
    with open(path) as report:
        results = [scenarios.Result(**json.loads(line))
                   for line in report.read().splitlines()]
    print()
    print('Fault suite (on a private RabbitMQ node):')
    print(scenarios.table(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--messages', type=int, default=10000)
    parser.add_argument('--table-only', metavar='JSONL',
                        help='only print the table of rows a test run wrote')
    args, pytest_args = parser.parse_known_args()
    if args.table_only:
        print_table(args.table_only)
        return 0
    with tempfile.NamedTemporaryFile('r', suffix='.jsonl') as report:
        env = dict(os.environ, BRIDGE_FAULT_REPORT=report.name,
                   BRIDGE_FAULT_MESSAGES=str(args.messages))
        rc = subprocess.call([sys.executable, '-m', 'pytest', '-q',
                              'tests/faults'] + pytest_args, cwd=ROOT,
                             env=env)
        print_table(report.name)
    return rc


if __name__ == '__main__':
    sys.exit(main())
