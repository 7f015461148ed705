"""The fault suite: 10,000 messages each way, one fault each; 0 lost.

Slow (a few minutes in all); loopback only; every wait is bounded.  Set
BRIDGE_FAULT_MESSAGES to run fewer messages while developing.
tools/fault-report.py runs the same scenarios and prints the table.

Every scenario runs on a private RabbitMQ node (``private_rabbit``,
tests/fixtures/rabbit_node.py), never on the machine's shared broker, and
proves its fault happened (scenarios.Faults); a fault that does not
happen fails the scenario (test_fault_that_does_not_happen_fails).
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
def test_fault_loses_nothing(scenario, direction, private_rabbit, zaqar,
                             tmp_path):
    if scenario == 'zaqar-server down 30s':
        zaqar.require_control()
    result = scenarios.run(scenario, direction, private_rabbit, zaqar,
                           tmp_path, count=COUNT)
    print('\n' + scenarios.table([result]))
    report = os.environ.get('BRIDGE_FAULT_REPORT')
    if report:   # tools/fault-report.py gathers the rows
        with open(report, 'a') as out:
            out.write(json.dumps(dataclasses.asdict(result)) + '\n')
    assert result.lost == 0
    assert result.duplicated <= result.window
    assert not math.isnan(result.recovery), 'the flow never resumed'


def faults_doing(act):
    """A Faults class whose every fault is ``act`` (its checks kept)."""
    return type('Faults', (scenarios.Faults,),
                dict.fromkeys(scenarios.SCENARIOS.values(), act))


def broken(error):
    """Faults whose injection fails with ``error`` (rabbitmqctl,
    zaqar-server.sh failing, a pytest.skip inside...)."""
    def fail(self):
        raise error
    return faults_doing(fail)


@pytest.mark.parametrize('scenario', scenarios.SCENARIOS)
def test_fault_that_does_not_happen_fails(scenario, private_rabbit, zaqar,
                                          tmp_path):
    """Without its fault, a scenario fails: every message arrived, and
    only the proof of the fault is missing."""
    with pytest.raises(scenarios.FaultNotSeen) as failed:
        scenarios.run(scenario, scenarios.FORWARD, private_rabbit, zaqar,
                      tmp_path, count=60,
                      faults=faults_doing(lambda self: None))
    result = failed.value.result
    assert (result.lost, result.duplicated) == (0, 0), result


@pytest.mark.parametrize('scenario', scenarios.SCENARIOS)
def test_fault_that_fails_to_inject_fails(scenario, private_rabbit, zaqar,
                                          tmp_path):
    with pytest.raises(RuntimeError, match='injection failed'):
        scenarios.run(scenario, scenarios.FORWARD, private_rabbit, zaqar,
                      tmp_path, count=60,
                      faults=broken(RuntimeError('injection failed')))


def test_skip_inside_a_fault_is_not_a_pass(private_rabbit, zaqar, tmp_path):
    """A pytest.skip raised in the fault's thread reaches the test."""
    with pytest.raises(pytest.skip.Exception, match='cannot stop it'):
        scenarios.run('zaqar-server down 30s', scenarios.FORWARD,
                      private_rabbit, zaqar, tmp_path, count=60,
                      faults=broken(pytest.skip.Exception('cannot stop it')))
