"""Doorbell rings lost for real, and what finds their messages anyway
(bridge/flows/recovery.py): the canary, and the start-up pass (and what
a restart skips)."""

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


def test_restart_skips_known_subscriptions_and_remakes_a_lost_one(
        tmp_path, rabbit, zaqar, names, conductor):
    # A working doorbell (its own port) with a canary, whose queue keeps
    # the record of what the worker subscribed.  A route name of its own:
    # its canary queue is not shared with the other tests' routes (the
    # dead subscribers left there would tie up Zaqar's notifier).
    port = servers.free_port()
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     [('restarted', '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = %s
        tenants = %s, %s
        allowed_methods = heartbeat
        doorbell_port = %d
        sweep_interval = 100000
        canary_interval = 3600
        recovery_sweep_time = 1
        workers = 1
        ''' % (names.exchange, names.conductor, names.tenant_a,
               names.tenant_b, port))])
    daemon = bridgeutil.Daemon(config, tmp_path / 'first.log').start(1)
    try:
        bridgeutil.doorbell_started(daemon, 1)
        assert 'subscribed by this worker' not in daemon.log()
    finally:
        assert daemon.stop() == 0
    # While the bridge is down, Zaqar loses one subscription, and a
    # message comes to that queue: nothing rings for it.
    queue = zaqar.client(names.tenant_b).queue(names.conductor)
    for sub in queue.subscriptions():
        sub.delete()
    bridgeutil.post(zaqar, names.tenant_b, names.conductor,
                    bridgeutil.heartbeat(1)['body'])
    daemon = bridgeutil.Daemon(config, tmp_path / 'second.log').start(1)
    try:
        bridgeutil.doorbell_started(daemon, 1)
        # The record matched: no create at start...
        assert 'subscribed by this worker' in daemon.log()
        # ...yet the start-up sweep made the lost one again and found the
        # message posted while it was missing,
        bridgeutil.wait_until(lambda: conductor.calls,
                              what='the heartbeat found by the sweep')
        assert bridgeutil.heartbeats_seen(conductor) == [1]
        assert len(list(queue.subscriptions())) == 1
        # and the doorbell rings for that queue again (the safety sweep
        # never comes round; the canary does not run again for an hour).
        bridgeutil.post(zaqar, names.tenant_b, names.conductor,
                        bridgeutil.heartbeat(2)['body'])
        bridgeutil.wait_until(
            lambda: bridgeutil.heartbeats_seen(conductor) == [1, 2],
            what='the ring of the subscription made again')
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
