"""Reverse path with a doorbell: no polling of empty queues."""

import pytest

from tests.functional import bridgeutil
from tests.functional import test_rpc

pytestmark = pytest.mark.functional


def start(tmp_path, rabbit, zaqar, names, sweep_interval):
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     [('conductor', '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = %s
        tenants = %s, %s
        allowed_methods = heartbeat
        doorbell_port = %d
        sweep_interval = %s
        workers = 2
        ''' % (names.exchange, names.conductor, names.tenant_a,
               names.tenant_b, bridgeutil.free_port(), sweep_interval))])
    return config, bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(2)


def heartbeat(zaqar, tenant, queue, n):
    test_rpc.post(zaqar, tenant, queue, {'bridge': 1, 'message': {
        'method': 'heartbeat', 'args': {'n': n}, '_unique_id': 'u%d' % n}})


def test_ring_wakes_the_bridge(tmp_path, rabbit, zaqar, names, conductor):
    # The sweep is so slow that only the doorbell can explain a delivery.
    config, daemon = start(tmp_path, rabbit, zaqar, names, 100000)
    try:
        for tenant in (names.tenant_a, names.tenant_b):
            bridgeutil.wait_until(
                lambda t=tenant: list(zaqar.client(t).queue(
                    names.conductor).subscriptions()),
                what='the doorbell subscription of %s' % tenant)
        for n in range(6):
            heartbeat(zaqar, (names.tenant_a, names.tenant_b)[n % 2],
                      names.conductor, n)
        bridgeutil.wait_until(lambda: len(conductor.calls) == 6,
                              what=lambda: 'six heartbeats, got %d'
                              % len(conductor.calls))
        projects = sorted(c[1]['project_id'] for c in conductor.calls)
        assert projects == sorted([names.tenant_a] * 3 + [names.tenant_b] * 3)
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)


def test_sweep_catches_a_lost_ring(tmp_path, rabbit, zaqar, names,
                                   conductor):
    proxy = bridgeutil.HttpProxy(zaqar.url)
    config, daemon = start(tmp_path, rabbit, proxy, names, 0.2)
    try:
        queue = zaqar.client(names.tenant_a).queue(names.conductor)
        subs = bridgeutil.wait_until(lambda: list(queue.subscriptions()),
                                     what='the doorbell subscription')
        for sub in subs:
            sub.delete()
        # The worker claims once right after subscribing; let that claim
        # go by first, so only the sweep can find the message.
        claims = '/v2/queues/%s/claims' % names.conductor
        bridgeutil.wait_until(
            lambda: [r for r in proxy.requests if r[0] == 'POST'
                     and r[1].startswith(claims) and r[2] == names.tenant_a],
            what='the claim that follows the subscription')
        heartbeat(zaqar, names.tenant_a, names.conductor, 1)
        bridgeutil.wait_until(lambda: conductor.calls, what='the sweep')
        daemon.wait_for_log(lambda t: 'safety sweep found messages' in t,
                            what='the sweep noticing the lost ring')
        # It subscribed again.
        bridgeutil.wait_until(lambda: list(queue.subscriptions()),
                              what='a new subscription')
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        proxy.close()
