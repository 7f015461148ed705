"""Two bridges on the same configuration share the work, no duplicates."""

import json

import kombu
import oslo_messaging
import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional

N = 200


@pytest.fixture
def two_daemons(tmp_path, rabbit, zaqar, unique_name):
    names = type('Names', (), {})
    names.exchange = unique_name('ex')
    names.tenant = unique_name('tenant')
    names.conductor = unique_name('conductor')
    names.amqp_queue = unique_name('bridge-shared')
    routes = [
        ('guests', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            tenant = context:project_id
            amqp_queue = %s
            prefetch = 20
            ''' % (names.exchange, names.amqp_queue)),
        ('conductor', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = %s
            tenants = %s
            allowed_methods = heartbeat
            poll_interval = 0.1
            claim_limit = 5
            ''' % (names.exchange, names.conductor, names.tenant)),
    ]
    daemons = []
    for i in range(2):
        config = bridgeutil.write_config(tmp_path / ('b%d.conf' % i), rabbit,
                                         zaqar, routes)
        daemons.append(bridgeutil.Daemon(config, tmp_path / ('b%d.log' % i))
                       .start(3))
    yield names, daemons
    for d in daemons:
        assert d.stop() == 0
        bridgeutil.delete_queues(rabbit, d.config)
    with kombu.Connection(rabbit.kombu_url) as conn:
        conn.default_channel.queue_delete(names.amqp_queue)


def test_forward_shared_queue(two_daemons, rabbit, zaqar):
    names, daemons = two_daemons
    with kombu.Connection(rabbit.kombu_url) as conn:
        ok = conn.default_channel.queue_declare(names.amqp_queue,
                                                passive=True)
        assert ok.consumer_count == 2
    client = oslo_messaging.get_rpc_client(
        bridgeutil.rpc_transport(rabbit),
        oslo_messaging.Target(exchange=names.exchange, topic='guestagent.x'))
    for i in range(N):
        client.cast({'project_id': names.tenant}, 'm', n=i)
    got = bridgeutil.drain(zaqar.client(names.tenant).queue('guestagent_x'),
                           N, timeout=120)
    ids = [b['id'] for b in got]
    assert len(ids) == len(set(ids)) == N
    assert sorted(b['message']['args']['n'] for b in got) == list(range(N))


def test_reverse_claims_shared(two_daemons, rabbit, zaqar):
    names, daemons = two_daemons
    seen = []
    with kombu.Connection(rabbit.kombu_url) as conn:
        exchange = kombu.Exchange(names.exchange, 'topic', durable=False)
        queue = kombu.Queue('', exchange, routing_key=names.conductor,
                            exclusive=True, channel=conn.default_channel)
        queue.declare()
        zqueue = zaqar.client(names.tenant).queue(names.conductor)
        for start in range(0, N, 20):
            zqueue.post([{'ttl': 300, 'body': {'bridge': 1, 'message': {
                'method': 'heartbeat', 'args': {'n': n},
                '_unique_id': 'u%d' % n}}} for n in range(start, start + 20)])

        def more():
            message = queue.get(no_ack=True)
            while message is not None:
                seen.append(json.loads(json.loads(message.body)[
                    'oslo.message'])['args']['n'])
                message = queue.get(no_ack=True)
            return len(seen) >= N
        bridgeutil.wait_until(more, timeout=120, what=lambda: '%d of %d'
                              % (len(seen), N))
    assert sorted(seen) == list(range(N)), 'lost or duplicated'
    # Both bridges took part.
    for d in daemons:
        assert 'Route conductor: connected' in d.log()
