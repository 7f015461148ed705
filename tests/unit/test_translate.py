import json

import pytest

from bridge import envelope
from bridge import naming
from bridge.reject import Reject
from bridge import tokens
from bridge.translate import to_zaqar
from bridge.zaqar import options
from tests.unit import confutil
from tests.unit.confutil import fwd
from tests.unit.confutil import oslo_body
from tests.unit.confutil import rev

UUID = '8f4c1f1e-3a5b-4c7d-9e0f-112233445566'
TENANT = '0123456789abcdef0123456789abcdef'


@pytest.fixture
def setup(tmp_path):
    conf, routes = confutil.load(tmp_path, confutil.ROUTES,
                                 routes='fwd, raw, rev, shared-fwd, '
                                 'shared-rev, by-server')
    return conf, {r.name: r for r in routes}


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
    # Answers are taken from the reply queue only; no call monitor asked.
    assert address['answer_queue'] == 'bridge_replies'
    assert address['monitor'] == 0


@pytest.mark.parametrize('timeout,monitor', [
    (30, 30), ('7', 7), (1, 0), (None, 0), ('x', 0), (float('inf'), 0),
    (float('nan'), 0), (1e300, 2 ** 31)])
def test_forward_call_monitor_in_token(setup, timeout, monitor):
    conf, _ = setup
    out = fwd(setup, oslo_body(method='ping', _msg_id='m1',
                               _reply_q='reply_abc', _unique_id='u',
                               _timeout=timeout,
                               _context_project_id='tenant-a'))
    address = tokens.verify(conf.rpc.reply_secret, tokens.AMQP_REPLY,
                            out.message['body']['reply']['token'])
    assert address['monitor'] == monitor


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


def answer_token(conf, monitor=0, queue='bridge_replies'):
    return tokens.sign(conf.rpc.reply_secret, tokens.AMQP_REPLY, 'reply_c',
                       'm1', 'tenant-a', 60, answer_queue=queue,
                       monitor=monitor)


def answer(token, **message):
    return {'bridge': 1, 'reply_token': token, 'message': message}


def rev_answer(setup, body, used, **kw):
    return rev(setup, body, used=used, queue='bridge_replies', **kw)


def test_reverse_reply_token_checks(setup):
    conf, _ = setup
    tok = answer_token(conf)
    body = answer(tok, result=42, failure=None, ending=True)
    used = tokens.UsedTokens()
    with pytest.raises(Reject, match='another tenant'):
        rev_answer(setup, body, used, tenant='tenant-b')
    out = rev_answer(setup, body, used)
    assert (out.exchange, out.routing_key, out.mandatory) == ('', 'reply_c',
                                                              True)
    reply = envelope.unwrap(json.dumps(out.body))
    assert reply['_msg_id'] == 'm1' and reply['result'] == 42
    assert out.answer == (tok, tokens.verify(
        conf.rpc.reply_secret, tokens.AMQP_REPLY, tok)['expires'], True)
    # Translating records nothing: until the caller says the answer was
    # published, the same answer passes again.
    assert rev_answer(setup, body, used).answer == out.answer
    used.published(*out.answer)
    with pytest.raises(Reject, match='already answered'):
        rev_answer(setup, body, used)
    zaqar_tok = tokens.sign(conf.rpc.reply_secret, tokens.ZAQAR_REPLY,
                            'reply_c', 'm1', 'tenant-a', 60)
    with pytest.raises(Reject, match='signature'):
        rev_answer(setup, dict(body, reply_token=zaqar_tok), None)


def test_reverse_answer_only_from_its_reply_queue(setup):
    conf, _ = setup
    body = answer(answer_token(conf), result=1, failure=None)
    with pytest.raises(Reject, match="from queue 'bridge_replies', not "
                                     "'trove-conductor'"):
        rev(setup, body, used=tokens.UsedTokens())
    # A token signed without an answer queue (an older bridge) is refused.
    with pytest.raises(Reject, match='from queue None'):
        rev_answer(setup, answer(answer_token(conf, queue=None), result=1),
                   None)
    assert rev_answer(setup, body, tokens.UsedTokens()).kind == 'reply'


def test_rejected_answer_leaves_the_token_usable(setup):
    conf, _ = setup
    tok = answer_token(conf)
    used = tokens.UsedTokens()
    with pytest.raises(Reject, match='failure must be'):
        rev_answer(setup, answer(tok, result=None, failure={'x': 1}), used)
    out = rev_answer(setup, answer(tok, result='ok', failure=None), used)
    assert envelope.unwrap(json.dumps(out.body))['result'] == 'ok'


@pytest.mark.parametrize('message,reason', [
    ({'result': None, 'ending': False}, 'without a call-monitor timeout'),
    ({'result': 'x', 'ending': False}, 'carries no result nor failure'),
    ({'failure': 'x', 'ending': False}, 'carries no result nor failure'),
    ({'result': 1, 'ending': 'no'}, '"ending" must be true or false'),
    ({'result': 1, 'ending': None}, '"ending" must be true or false'),
])
def test_reverse_bad_heartbeats_rejected(setup, message, reason):
    conf, _ = setup
    with pytest.raises(Reject, match=reason):
        rev_answer(setup, answer(answer_token(conf), **message),
                   tokens.UsedTokens())


def test_reverse_heartbeats_normalised_limited_and_before_the_answer(setup):
    conf, _ = setup
    tok = answer_token(conf, monitor=20)
    used = tokens.UsedTokens()
    beat = answer(tok, result=None, failure=None, ending=False,
                  _msg_id='guest-chosen', extra={'x': 1})
    out = rev_answer(setup, beat, used)
    reply = envelope.unwrap(json.dumps(out.body))
    assert {k: v for k, v in reply.items() if k != '_unique_id'} == {
        'result': None, 'failure': None, 'ending': False, '_msg_id': 'm1'}
    assert out.answer[2] is False
    used.published(*out.answer)
    with pytest.raises(Reject, match='at most one every 5.0s'):
        rev_answer(setup, beat, used)
    final = rev_answer(setup, answer(tok, result='done', failure=None), used)
    used.published(*final.answer)
    for late in (beat, answer(tok, result='again', failure=None)):
        with pytest.raises(Reject, match='already answered'):
            rev_answer(setup, late, used)


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


def test_smallest_post_size_is_the_options_minimum(setup):
    opt, = [o for o in options.OPTS if o.dest == 'max_messages_post_size']
    assert opt.type.min == to_zaqar.SMALLEST_POST_SIZE


def test_forward_message_too_large_for_a_small_limit(setup):
    conf, _ = setup
    conf.set_override('max_messages_post_size', to_zaqar.SMALLEST_POST_SIZE,
                      group='zaqar')
    with pytest.raises(Reject, match='max_messages_post_size'):
        fwd(setup, oslo_body(method='m', args={'x': 'y' * 1000},
                             _unique_id='u', _context_project_id='t'))
