"""Doorbell rings lost for real, and what finds their messages anyway
(bridge/flows/recovery.py): the canary, and the start-up pass."""

import pytest

from tests.fixtures import servers
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def start(tmp_path, rabbit, zaqar, names, canary_interval):
    """One worker whose subscriptions name a port nobody listens on:
    every ring Zaqar sends is refused, and lost after Zaqar's retries.
    The safety sweep is so slow it never comes round."""
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     [('conductor', '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = %s
        tenants = %s, %s
        allowed_methods = heartbeat
        doorbell_port = %d
        doorbell_url = http://127.0.0.1:%d/
        sweep_interval = 100000
        canary_interval = %d
        recovery_sweep_time = 1
        workers = 1
        ''' % (names.exchange, names.conductor, names.tenant_a,
               names.tenant_b, servers.free_port(), servers.free_port(),
               canary_interval))])
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    bridgeutil.doorbell_started(daemon, 1)
    return config, daemon


def test_canary_finds_a_message_whose_ring_was_lost(tmp_path, rabbit, zaqar,
                                                   names, conductor):
    config, daemon = start(tmp_path, rabbit, zaqar, names, 1)
    try:
        # Posted after the start-up sweep looked at every queue; its ring
        # can't arrive (nobody listens on the URL) and the safety sweep
        # never comes: only the canary's recovery sweep can find it.
        bridgeutil.post(zaqar, names.tenant_a, names.conductor,
                        bridgeutil.heartbeat(1)['body'])
        # The canary's ring is refused too: once its time is up (20 s),
        # the worker looks at every queue.
        daemon.wait_for_log(lambda t: 'doorbell rings can have been lost '
                            '(the canary ring was lost)' in t, timeout=60,
                            what='the recovery sweep')
        bridgeutil.wait_until(lambda: conductor.calls,
                              what='the heartbeat found by the sweep')
        assert bridgeutil.heartbeats_seen(conductor) == [1]
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)


def test_start_up_sweep_finds_what_was_posted_while_down(
        tmp_path, rabbit, zaqar, names, conductor):
    # Posted before the bridge ever subscribed: nothing rang for it.
    bridgeutil.post(zaqar, names.tenant_b, names.conductor,
                    bridgeutil.heartbeat(7)['body'])
    config, daemon = start(tmp_path, rabbit, zaqar, names, 0)
    try:
        bridgeutil.wait_until(lambda: conductor.calls,
                              what='the heartbeat found at start-up')
        assert bridgeutil.heartbeats_seen(conductor) == [7]
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
