"""A reverse worker killed between claim and delete loses nothing.

RabbitMQ is made to block publishers (a memory alarm) so the worker is
stuck after claiming and before deleting; it is killed there.  The alarm
is raised on a private RabbitMQ node (tests/fixtures/rabbit_node.py), not
on the machine's shared broker: the whole module runs on that node.
"""

import os
import signal
import time

import kombu
import pytest

from tests.functional import bridgeutil

pytestmark = [pytest.mark.functional, pytest.mark.slow]


@pytest.fixture
def rabbit(private_rabbit):
    """This module's broker (and the conductor's): a private node."""
    return private_rabbit


@pytest.fixture
def conductor_declared(rabbit, names):
    """Deletes, after the conductor stopped, what its oslo.messaging
    server (c1) declared: its queues and the exchange."""
    yield
    with kombu.Connection(rabbit.kombu_url) as conn:
        for queue in (names.conductor, names.conductor + '.c1'):
            conn.default_channel.queue_delete(queue)
        conn.default_channel.exchange_delete(names.exchange)


@pytest.fixture
def publishing_blocked(rabbit):
    """Make RabbitMQ block publishers (a memory alarm), then lift it."""
    rabbit.ctl('set_vm_memory_high_watermark', 'absolute', '1')
    try:
        yield
    finally:
        rabbit.ctl('set_vm_memory_high_watermark', '0.4')


def test_kill_between_claim_and_delete(tmp_path, rabbit, conductor_declared,
                                       zaqar, names, conductor,
                                       publishing_blocked):
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     [('conductor', '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = %s
        tenants = %s
        allowed_methods = heartbeat
        poll_interval = 0.1
        ''' % (names.exchange, names.conductor, names.tenant_a))],
        extra=bridgeutil.dead_letter_section(names.dlq))
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        worker = daemon.pid_logging('Route conductor: connected')
        assert worker in daemon.worker_pids()
        bridgeutil.post(zaqar, names.tenant_a, names.conductor, {
            'bridge': 1, 'message': {'method': 'heartbeat', 'args': {'n': 1},
                                     '_unique_id': 'crash-1'}})
        queue = zaqar.client(names.tenant_a).queue(names.conductor)
        bridgeutil.wait_until(
            lambda: queue.stats['messages']['claimed'] == 1,
            what='the worker to claim the message')
        time.sleep(1)  # it is now blocked publishing, before any delete
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        rabbit.ctl('set_vm_memory_high_watermark', '0.4')
    try:
        # Killed after its claim, before its delete: the message is still
        # in Zaqar, held by the dead worker's claim.
        assert queue.stats['messages']['total'] == 1
        # The respawned worker gets it once the claim expires, publishes
        # it and deletes it.
        bridgeutil.wait_until(lambda: queue.stats['messages']['total'] == 0,
                              timeout=150, interval=1,
                              what='the message delivered again and deleted')
        assert time.monotonic() - killed_at > 50, 'the claim was not honoured'
        bridgeutil.wait_until(lambda: conductor.calls, what='delivery')
        time.sleep(1)
        # The killed worker's publish may have reached the broker too:
        # oslo.messaging drops the duplicate by its _unique_id.
        assert [c[2] for c in conductor.calls] == [{'n': 1}]
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
