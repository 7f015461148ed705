import json

import pytest

from bridge import envelope
from bridge import naming
from bridge import tokens
from bridge.translate import Reject
from bridge.translate import to_amqp
from bridge.translate import to_zaqar
from tests.unit import confutil

UUID = '8f4c1f1e-3a5b-4c7d-9e0f-112233445566'
TENANT = '0123456789abcdef0123456789abcdef'

ROUTES = '''
[route:fwd]
direction = to_zaqar
exchange = trove
tenant = context:project_id
[route:raw]
direction = to_zaqar
envelope = raw
exchange = events
tenant = routing_key:^(?P<tenant>[a-z-]+)\\.
zaqar_queue = events-{topic}
[route:rev]
direction = to_amqp
exchange = trove
zaqar_queue = trove-conductor
tenants = tenant-a, tenant-b
allowed_methods = heartbeat
allowed_event_types = trove.instance.*
[route:shared-fwd]
direction = to_zaqar
exchange = trove
tenant = context:project_id
zaqar_queue = {tenant}-{routing_key}
reply_queue = {tenant}-replies
[route:shared-rev]
direction = to_amqp
exchange = trove
zaqar_queue = {tenant}-conductor
routing_key = trove-conductor
tenants = tenant-a, tenant-b
allowed_methods = heartbeat
guest_reply_queue = {tenant}-reply_*
[route:by-server]
direction = to_zaqar
exchange = trove
tenant = context:project_id
zaqar_queue = {server}
'''


@pytest.fixture
def setup(tmp_path):
    conf, routes = confutil.load(tmp_path, ROUTES,
                                   routes='fwd, raw, rev, shared-fwd, '
                                          'shared-rev, by-server')
    return conf, {r.name: r for r in routes}


def oslo_body(**msg):
    return json.dumps(envelope.wrap(msg)).encode()


def fwd(setup, body, routing_key='guestagent.abc', name='fwd', **kw):
    conf, routes = setup
    return to_zaqar.translate(routes[name], conf, lambda t: t, body,
                              routes[name].exchange, routing_key, **kw)


def test_forward_cast(setup):
    out = fwd(setup, oslo_body(method='prepare', args={'x': 1},
                               _unique_id='u1',
                               _context_project_id='tenant-a'))
    assert (out.project, out.queue, out.msg_id) == ('tenant-a',
                                                    'guestagent_abc', 'u1')
    body = out.message['body']
    assert body['message']['args'] == {'x': 1}
    assert 'reply' not in body
    assert out.message['ttl'] == 3600


def test_forward_call_gets_signed_reply_address(setup):
    conf, _ = setup
    out = fwd(setup, oslo_body(method='ping', _msg_id='m1',
                               _reply_q='reply_abc', _unique_id='u',
                               _context_project_id='tenant-a'),
              properties={'expiration': '5000'})
    reply = out.message['body']['reply']
    assert reply['queue'] == 'bridge_replies'
    address = tokens.verify(conf.rpc.reply_secret, tokens.AMQP_REPLY,
                            reply['token'], tenant='tenant-a')
    assert address['queue'] == 'reply_abc' and address['msg_id'] == 'm1'


def test_forward_call_reply_queue_per_tenant(setup):
    out = fwd(setup, oslo_body(method='ping', _msg_id='m1',
                               _reply_q='reply_abc', _unique_id='u',
                               _context_project_id='tenant-a'),
              name='shared-fwd')
    assert out.queue == 'tenant-a-guestagent_abc'
    assert out.message['body']['reply']['queue'] == 'tenant-a-replies'


@pytest.mark.parametrize('body, reason', [
    (b'\x00\xff', 'bad oslo.messaging envelope'),
    (b'{"oslo.version": "2.0", "oslo.message": "nope"}',
     'bad oslo.messaging envelope'),
    (oslo_body(method='m'), 'tenant rule context:project_id'),
    (oslo_body(method='m', _context_project_id='a/b'),
     'tenant rule context:project_id'),
])
def test_forward_rejects(setup, body, reason):
    with pytest.raises(Reject, match=reason):
        fwd(setup, body)


def test_forward_long_queue_name_is_shortened(setup):
    server_topic = 'guestagent.%s.%s' % (UUID, UUID)
    out = fwd(setup, oslo_body(method='m', _context_project_id='t'),
              routing_key=server_topic)
    assert out.queue == naming.queue_name(server_topic) == \
        'guestagent_%s-31d6325a1b7c3b55' % UUID
    out = fwd(setup, oslo_body(method='m', _context_project_id=TENANT),
              routing_key=server_topic, name='shared-fwd')
    assert out.queue == naming.queue_name('%s-%s' % (TENANT, server_topic))
    assert out.queue.startswith(TENANT + '-guestagent_') and \
        len(out.queue) == 64


def test_forward_empty_queue_name(setup):
    with pytest.raises(Reject, match='zaqar_queue: empty queue name'):
        fwd(setup, oslo_body(method='m', _context_project_id='t'),
            routing_key='guestagent', name='by-server')


def test_forward_oversized(setup):
    with pytest.raises(Reject, match='bytes once wrapped'):
        fwd(setup, oslo_body(method='m', _context_project_id='t',
                             args={'blob': 'x' * 300000}))


def test_forward_raw_json_and_binary(setup):
    out = fwd(setup, b'{"a": 1}', routing_key='tenant-x.created',
              name='raw', content_type='application/json')
    assert out.project == 'tenant-x' and out.queue == 'events-tenant-x'
    assert out.message['body']['message'] == {'a': 1}
    out = fwd(setup, b'\x89PNG', routing_key='tenant-x.img', name='raw',
              content_type='image/png')
    assert out.message['body']['encoding'] == 'base64'
    assert out.message['body']['content_type'] == 'image/png'


def rev(setup, body, tenant='tenant-a', used=None, name='rev'):
    conf, routes = setup
    return to_amqp.translate(routes[name], conf, tenant, 'trove-conductor',
                             body, 'zid', used)


def test_reverse_cast_forces_project(setup):
    out = rev(setup, {'bridge': 1, 'message': {
        'method': 'heartbeat', 'args': {}, '_context_project_id': 'tenant-b',
        '_context_is_admin': True}})
    msg = envelope.unwrap(json.dumps(out.body))
    assert msg['_context_project_id'] == 'tenant-a'
    assert msg['_context_is_admin'] is False
    assert out.headers['x-bridge-tenant'] == 'tenant-a'
    assert (out.exchange, out.routing_key) == ('trove', 'trove-conductor')


def test_reverse_guest_call_gets_bridge_reply_queue(setup):
    conf, _ = setup
    out = rev(setup, {'bridge': 1, 'message': {
        'method': 'heartbeat', '_msg_id': 'g1', '_reply_q': 'reply_x'}})
    msg = envelope.unwrap(json.dumps(out.body))
    assert msg['_reply_q'] == conf.rpc.amqp_reply_queue
    address = tokens.verify(conf.rpc.reply_secret, tokens.ZAQAR_REPLY,
                            msg['_msg_id'])
    assert address == dict(address, queue='reply_x', msg_id='g1',
                           tenant='tenant-a')


def call_from(tenant, reply_q):
    return {'bridge': 1, 'message': {'method': 'heartbeat', '_msg_id': 'g1',
                                     '_reply_q': reply_q}}


@pytest.mark.parametrize('tenant, reply_q', [
    ('tenant-a', 'tenant-a-reply_0123abc'),
    ('tenant-a', 'tenant-a-reply_'),
    ('tenant-b', 'tenant-b-reply_x'),
])
def test_reverse_guest_call_reply_queue_of_its_tenant(setup, tenant,
                                                      reply_q):
    conf, _ = setup
    out = rev(setup, call_from(tenant, reply_q), tenant=tenant,
              name='shared-rev')
    address = tokens.verify(conf.rpc.reply_secret, tokens.ZAQAR_REPLY,
                            envelope.unwrap(json.dumps(out.body))['_msg_id'])
    assert (address['queue'], address['tenant']) == (reply_q, tenant)


@pytest.mark.parametrize('tenant, reply_q', [
    ('tenant-a', 'tenant-b-reply_x'),       # another tenant's queue
    ('tenant-a', 'tenant-a-conductor'),     # not a reply queue
    ('tenant-a', 'x-tenant-a-reply_1'),
    ('tenant-a', 'tenant-a-reply_1-x'),     # "*" never takes a "-"
    ('tenant', 'tenant-a-reply_1'),         # tenant "tenant" vs "tenant-a"
])
def test_reverse_guest_call_to_foreign_reply_queue(setup, tenant, reply_q):
    with pytest.raises(Reject, match="_reply_q %r is not a reply queue of "
                       "tenant %s \\(route shared-rev guest_reply_queue"
                       % (reply_q, tenant)):
        rev(setup, call_from(tenant, reply_q), tenant=tenant,
            name='shared-rev')


@pytest.mark.parametrize('body, reason', [
    ('just text', 'not a bridge message'),
    ({'foo': 1}, 'not a bridge message'),
    ({'bridge': 1, 'message': {'method': 'delete_everything'}},
     "method 'delete_everything' is not in allowed_methods"),
    ({'bridge': 1, 'message': {'event_type': 'nova.x', 'payload': {}}},
     "event type 'nova.x' is not in allowed_event_types"),
    ({'bridge': 1, 'message': {'result': 1}}, 'without reply_token'),
    ({'bridge': 1, 'message': {'result': 1}, 'reply_token': 'abc.def'},
     'answer rejected: reply token signature invalid'),
    ({'bridge': 1, 'message': {'method': 'heartbeat', '_msg_id': 'g',
                               '_reply_q': '../etc'}},
     'a call needs'),
    ({'bridge': 1, 'message': {'blob': 'x' * 300000}}, 'bytes, more than'),
])
def test_reverse_rejects(setup, body, reason):
    with pytest.raises(Reject, match=reason):
        rev(setup, body)


def test_reverse_reply_token_checks(setup):
    conf, _ = setup
    tok = tokens.sign(conf.rpc.reply_secret, tokens.AMQP_REPLY, 'reply_c',
                      'm1', 'tenant-a', 60)
    body = {'bridge': 1, 'reply_token': tok,
            'message': {'result': 42, 'failure': None, 'ending': True}}
    used = tokens.UsedTokens()
    with pytest.raises(Reject, match='another tenant'):
        rev(setup, body, tenant='tenant-b', used=used)
    out = rev(setup, body, used=used)
    assert (out.exchange, out.routing_key, out.mandatory) == ('', 'reply_c',
                                                              True)
    reply = envelope.unwrap(json.dumps(out.body))
    assert reply['_msg_id'] == 'm1' and reply['result'] == 42
    with pytest.raises(Reject, match='replay'):
        rev(setup, body, used=used)
    zaqar_tok = tokens.sign(conf.rpc.reply_secret, tokens.ZAQAR_REPLY,
                            'reply_c', 'm1', 'tenant-a', 60)
    with pytest.raises(Reject, match='signature'):
        rev(setup, dict(body, reply_token=zaqar_tok))


def test_reply_to_guest_call(setup):
    conf, _ = setup
    tok = tokens.sign(conf.rpc.reply_secret, tokens.ZAQAR_REPLY, 'reply_g',
                      'g1', 'tenant-b', 60)
    route = type('R', (), {'name': 'rpc-replies'})
    out = to_zaqar.translate_reply(route, conf, lambda t: t, oslo_body(
        result='ok', failure=None, ending=True, _msg_id=tok), '', 'x')
    assert (out.project, out.queue) == ('tenant-b', 'reply_g')
    assert out.message['body']['message']['_msg_id'] == 'g1'
    with pytest.raises(Reject, match='signature'):
        to_zaqar.translate_reply(route, conf, lambda t: t, oslo_body(
            result='ok', _msg_id=tok + 'x'), '', 'x')
