"""The fault suite: 10,000 messages each way, one fault each; 0 lost.

Slow (a few minutes in all); loopback only; every wait is bounded.  Set
BRIDGE_FAULT_MESSAGES to run fewer messages while developing.
tools/fault-report.py runs the same scenarios and prints the table.
"""

import dataclasses
import json
import math
import os

import pytest

from tests.faults import scenarios

pytestmark = [pytest.mark.functional, pytest.mark.slow]

COUNT = int(os.environ.get('BRIDGE_FAULT_MESSAGES', '10000'))


@pytest.mark.parametrize('direction', [scenarios.FORWARD, scenarios.REVERSE])
@pytest.mark.parametrize('scenario', scenarios.SCENARIOS)
def test_fault_loses_nothing(scenario, direction, rabbit, zaqar, tmp_path):
    if scenario == 'RabbitMQ restart' and rabbit.source != 'local':
        pytest.skip('restarts the local broker with rabbitmqctl')
    result = scenarios.run(scenario, direction, rabbit, zaqar, tmp_path,
                           count=COUNT)
    print('\n' + scenarios.table([result]))
    report = os.environ.get('BRIDGE_FAULT_REPORT')
    if report:   # tools/fault-report.py gathers the rows
        with open(report, 'a') as out:
            out.write(json.dumps(dataclasses.asdict(result)) + '\n')
    assert result.lost == 0
    assert result.duplicated <= result.window
    assert not math.isnan(result.recovery), 'the flow never resumed'
