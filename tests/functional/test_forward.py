"""Forward path through the running daemon: AMQP -> per-tenant Zaqar."""

import json

import kombu
from oslo_context import context
import oslo_messaging
import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


@pytest.fixture
def daemon(tmp_path, rabbit, zaqar, names):
    routes = [
        ('guests', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            tenant = context:project_id
            message_ttl = 300
            ''' % names.exchange),
        ('notify', '''
            direction = to_zaqar
            exchange = openstack
            binding_keys = %s.*
            tenant = context:project_id
            ''' % names.notify),
        ('direct', '''
            direction = to_zaqar
            envelope = raw
            exchange = %s-direct
            exchange_type = direct
            exchange_durable = true
            binding_keys = events
            tenant = header:x-tenant
            zaqar_queue = raw-{routing_key}
            ''' % names.exchange),
        ('fanout', '''
            direction = to_zaqar
            exchange = %s_fanout
            exchange_type = fanout
            tenant = context:project_id
            zaqar_queue = {exchange}
            ''' % names.guest),
    ]
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, routes,
        extra=bridgeutil.dead_letter_section(names.dlq))
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(4)
    yield d
    assert d.stop() == 0
    bridgeutil.delete_queues(rabbit, config)


def rpc_client(rabbit, exchange, topic, **kw):
    target = oslo_messaging.Target(exchange=exchange, topic=topic, **kw)
    return oslo_messaging.get_rpc_client(bridgeutil.rpc_transport(rabbit),
                                         target)


def test_oslo_cast_lands_in_tenant_queue_intact(daemon, rabbit, zaqar, names):
    client = rpc_client(rabbit, names.exchange, 'guestagent.%s' % names.guest)
    ctx = {'project_id': names.tenant_a, 'user_id': 'u-1',
           'request_id': 'req-1', 'roles': ['member']}
    client.cast(ctx, 'prepare', memory_mb=512, databases=['a', 'b'])
    (body,) = bridgeutil.drain(
        zaqar.client(names.tenant_a).queue('guestagent_%s' % names.guest), 1)
    msg = body['message']
    assert msg['method'] == 'prepare'
    assert msg['args'] == {'memory_mb': 512, 'databases': ['a', 'b']}
    assert msg['_context_project_id'] == names.tenant_a
    assert msg['_context_request_id'] == 'req-1'
    assert msg['_context_roles'] == ['member']
    assert body['id'] == msg['_unique_id']
    assert body['routing_key'] == 'guestagent.%s' % names.guest
    assert 'reply' not in body


def test_two_tenants_each_see_only_their_own(daemon, rabbit, zaqar, names):
    client = rpc_client(rabbit, names.exchange, 'guestagent.%s' % names.guest)
    for i in range(5):
        client.cast({'project_id': names.tenant_a}, 'm', n=i)
        client.cast({'project_id': names.tenant_b}, 'm', n=100 + i)
    queue = 'guestagent_%s' % names.guest
    got_a = bridgeutil.drain(zaqar.client(names.tenant_a).queue(queue), 5)
    got_b = bridgeutil.drain(zaqar.client(names.tenant_b).queue(queue), 5)
    assert sorted(b['message']['args']['n'] for b in got_a) == list(range(5))
    assert sorted(b['message']['args']['n'] for b in got_b) == \
        list(range(100, 105))


def test_notifier(daemon, rabbit, zaqar, names):
    notifier = oslo_messaging.Notifier(
        bridgeutil.notification_transport(rabbit), driver='messaging',
        publisher_id='trove.taskmanager', topics=[names.notify])
    # A dict context is dropped by the Notifier: use a real RequestContext.
    ctxt = context.RequestContext(project_id=names.tenant_a)
    notifier.info(ctxt, 'trove.instance.create', {'instance_id': 'i-1'})
    (body,) = bridgeutil.drain(zaqar.client(names.tenant_a).queue(
        '%s_info' % names.notify), 1)
    msg = body['message']
    assert msg['event_type'] == 'trove.instance.create'
    assert msg['payload'] == {'instance_id': 'i-1'}
    assert msg['priority'] == 'INFO'
    assert msg['_context_project_id'] == names.tenant_a


def test_raw_direct_exchange_with_header_tenant(daemon, rabbit, zaqar, names):
    with kombu.Connection(rabbit.kombu_url) as conn:
        exchange = kombu.Exchange('%s-direct' % names.exchange, 'direct',
                                  durable=True)
        producer = conn.Producer()
        producer.publish({'event': 'created'}, exchange=exchange,
                         routing_key='events', declare=[exchange],
                         headers={'x-tenant': names.tenant_b})
        producer.publish(b'\x00\x01binary', exchange=exchange,
                         routing_key='events', content_type='image/x-raw',
                         content_encoding='binary',
                         headers={'x-tenant': names.tenant_b})
    got = bridgeutil.drain(zaqar.client(names.tenant_b).queue('raw-events'),
                           2)
    by_encoding = {b['encoding']: b for b in got}
    assert by_encoding['json']['message'] == {'event': 'created'}
    assert by_encoding['base64']['content_type'] == 'image/x-raw'
    import base64
    assert base64.b64decode(by_encoding['base64']['message']) == \
        b'\x00\x01binary'


def test_oslo_fanout_cast(daemon, rabbit, zaqar, names):
    client = rpc_client(rabbit, names.exchange, names.guest, fanout=True)
    client.cast({'project_id': names.tenant_a}, 'refresh', x=1)
    (body,) = bridgeutil.drain(zaqar.client(names.tenant_a).queue(
        '%s_fanout' % names.guest), 1)
    assert body['message']['method'] == 'refresh'


def dead_letters(rabbit, queue, expect):
    got = []
    with kombu.Connection(rabbit.kombu_url) as conn:
        q = kombu.Queue(queue, channel=conn.default_channel, no_declare=True)

        def more():
            message = q.get(no_ack=True)
            while message is not None:
                got.append(message)
                message = q.get(no_ack=True)
            return len(got) >= expect
        bridgeutil.wait_until(more, what=lambda: '%d dead letters, got %s'
                              % (expect, [m.headers for m in got]))
    return got


def test_bad_input_goes_to_dead_letters_and_flow_continues(
        daemon, rabbit, zaqar, names):
    exchange = kombu.Exchange(names.exchange, 'topic', durable=False)
    good = json.dumps({'oslo.version': '2.0', 'oslo.message': json.dumps(
        {'method': 'ok', '_context_project_id': names.tenant_a,
         '_unique_id': 'good-1'})})
    cases = {
        'not-json': b'{{{',
        'bad-envelope': json.dumps({'oslo.version': '2.0',
                                    'oslo.message': 'nope'}),
        'no-tenant': json.dumps({'oslo.version': '2.0', 'oslo.message':
                                 json.dumps({'method': 'x'})}),
        'oversized': json.dumps({'oslo.version': '2.0', 'oslo.message':
                                 json.dumps({'method': 'x', 'args': {
                                     'b': 'x' * 300000},
                                     '_context_project_id': 't'})}),
    }
    with kombu.Connection(rabbit.kombu_url) as conn:
        producer = conn.Producer()
        for key, body in cases.items():
            producer.publish(body, exchange=exchange,
                             routing_key='guestagent.%s' % names.guest,
                             content_type='application/json',
                             content_encoding='utf-8',
                             headers={'case': key})
        producer.publish(good, exchange=exchange,
                         routing_key='guestagent.%s' % names.guest,
                         content_type='application/json')
    (body,) = bridgeutil.drain(zaqar.client(names.tenant_a).queue(
        'guestagent_%s' % names.guest), 1)
    assert body['message']['method'] == 'ok'
    dead = dead_letters(rabbit, names.dlq, 4)
    reasons = {m.headers['case']: m.headers['x-bridge-reason'] for m in dead}
    assert 'bad oslo.messaging envelope' in reasons['not-json']
    assert 'bad oslo.messaging envelope' in reasons['bad-envelope']
    assert 'tenant rule context:project_id' in reasons['no-tenant']
    assert 'Zaqar takes at most' in reasons['oversized']
    for m in dead:
        assert m.headers['x-bridge-route'] == 'guests'
        assert m.headers['x-bridge-routing-key'].startswith('guestagent.')
    assert dead[0].body  # the original body is kept for replay
    log = daemon.log()
    assert log.count('dead-lettered') == 4


def test_zaqar_outage_loses_nothing(daemon, rabbit, zaqar, names):
    client = rpc_client(rabbit, names.exchange, 'guestagent.%s' % names.guest)
    zaqar.stop()
    try:
        for i in range(50):
            client.cast({'project_id': names.tenant_a}, 'm', n=i)
        daemon.wait_for_log(lambda t: 'Zaqar unavailable' in t,
                            what='the outage to be noticed')
    finally:
        zaqar.start()
    got = bridgeutil.drain(zaqar.client(names.tenant_a).queue(
        'guestagent_%s' % names.guest), 50, timeout=90)
    assert sorted(b['message']['args']['n'] for b in got) == list(range(50))
    daemon.wait_for_log(lambda t: 'Zaqar is back' in t, what='recovery')
