import json
import time

import pytest

from bridge import envelope
from bridge import naming
from bridge import tokens
from bridge import wire


@pytest.mark.parametrize('topic, queue', [
    ('guestagent.8f4c1f1e-3a5b-4c7d-9e0f-112233445566',
     'guestagent_8f4c1f1e-3a5b-4c7d-9e0f-112233445566'),
    ('trove-conductor', 'trove-conductor'),
    ('notifications.info', 'notifications_info'),
    ('a b/c:d', 'a-b-c-d'),
])
def test_queue_name_mapping(topic, queue):
    assert naming.queue_name(topic) == queue
    assert naming.is_valid(queue)


@pytest.mark.parametrize('bad', ['', 'x' * 65, None])
def test_queue_name_refuses(bad):
    with pytest.raises(naming.QueueNameError):
        naming.queue_name(bad)


def test_render_unknown_field():
    with pytest.raises(naming.QueueNameError, match='missing'):
        naming.render('{missing}', tenant='t')


def test_token_roundtrip_and_checks():
    tok = tokens.sign('k', tokens.AMQP_REPLY, 'reply_1', 'm1', 'tenant-a', 60)
    got = tokens.verify('k', tokens.AMQP_REPLY, tok, tenant='tenant-a')
    assert (got['queue'], got['msg_id'], got['tenant']) == ('reply_1', 'm1',
                                                           'tenant-a')
    with pytest.raises(tokens.TokenError, match='another tenant'):
        tokens.verify('k', tokens.AMQP_REPLY, tok, tenant='tenant-b')
    with pytest.raises(tokens.TokenError, match='signature'):
        tokens.verify('other', tokens.AMQP_REPLY, tok)
    with pytest.raises(tokens.TokenError, match='signature'):
        tokens.verify('k', tokens.ZAQAR_REPLY, tok)
    with pytest.raises(tokens.TokenError, match='expired'):
        tokens.verify('k', tokens.AMQP_REPLY, tok, now=time.time() + 120)


def test_token_tampered_payload_refused():
    tok = tokens.sign('k', tokens.AMQP_REPLY, 'reply_1', 'm1', 'tenant-a', 60)
    head, mac = tok.split('.')
    forged = tokens._b64(tokens._unb64(head).replace(b'tenant-a',
                                                      b'tenant-b'))
    with pytest.raises(tokens.TokenError, match='signature'):
        tokens.verify('k', tokens.AMQP_REPLY, forged + '.' + mac)


def test_used_tokens_refuse_replay():
    used = tokens.UsedTokens()
    expires = time.time() + 10
    used.check_unanswered('t1')
    used.check_unanswered('t1')     # checking records nothing
    used.published('t1', expires, final=True)
    with pytest.raises(tokens.TokenError, match='already answered'):
        used.check_unanswered('t1')
    with pytest.raises(tokens.TokenError, match='already answered'):
        used.check_heartbeat('t1', 0)
    used.check_unanswered('t2')     # another token is not concerned


def test_used_tokens_rate_limit_heartbeats_before_the_answer():
    used = tokens.UsedTokens()
    expires = time.time() + 100
    used.check_heartbeat('t1', 5, now=1000)
    used.published('t1', expires, final=False, now=1000)
    with pytest.raises(tokens.TokenError, match='at most one every 5.0s'):
        used.check_heartbeat('t1', 5, now=1004)
    used.check_heartbeat('t1', 5, now=1005)
    used.check_unanswered('t1')     # the answer is never held back
    used.published('t1', expires, final=True, now=1006)
    with pytest.raises(tokens.TokenError, match='already answered'):
        used.check_heartbeat('t1', 5, now=2000)


def test_used_tokens_forget_expired_ones_when_full():
    used = tokens.UsedTokens(limit=2)
    used.published('old', 10, final=True, now=5)
    used.published('t2', 1000, final=True, now=5)
    used.published('t3', 1000, final=True, now=20)
    used.check_unanswered('old')
    for token in ('t2', 't3'):
        with pytest.raises(tokens.TokenError):
            used.check_unanswered(token)


def test_token_binds_answer_queue_and_call_monitor():
    tok = tokens.sign('k', tokens.AMQP_REPLY, 'reply_1', 'm1', 'tenant-a',
                      60, answer_queue='bridge_replies', monitor=10)
    got = tokens.verify('k', tokens.AMQP_REPLY, tok)
    assert (got['answer_queue'], got['monitor']) == ('bridge_replies', 10)
    plain = tokens.verify('k', tokens.AMQP_REPLY, tokens.sign(
        'k', tokens.AMQP_REPLY, 'reply_1', 'm1', 'tenant-a', 60))
    assert (plain['answer_queue'], plain['monitor']) == (None, 0)


def test_envelope_roundtrip():
    msg = {'method': 'echo', 'args': {'x': 1}, '_context_project_id': 'p'}
    body = json.dumps(envelope.wrap(msg)).encode()
    assert envelope.unwrap(body) == msg
    assert envelope.context(msg) == {'project_id': 'p'}
    assert envelope.kind(msg) == 'rpc'


@pytest.mark.parametrize('body', [
    b'\xff', b'not json', b'[1]',
    b'{"oslo.version": "9.9", "oslo.message": "{}"}',
    b'{"oslo.version": "2.0", "oslo.message": 3}'])
def test_envelope_errors(body):
    with pytest.raises(envelope.EnvelopeError):
        envelope.unwrap(body)


def test_force_project_strips_privileges():
    msg = {'method': 'm', '_context_project_id': 'victim',
           '_context_tenant': 'victim', '_context_is_admin': True,
           '_context_roles': ['admin'], '_context_auth_token': 'tok',
           '_context_user_id': 'u'}
    out = envelope.force_project(msg, 'tenant-a')
    assert out['_context_project_id'] == out['_context_tenant'] == 'tenant-a'
    assert out['_context_is_admin'] is False
    assert out['_context_roles'] == []
    assert '_context_auth_token' not in out
    assert out['_context_user_id'] == 'u'


def test_wire_parse_accepts_bridge_and_envelope():
    b = wire.body({'method': 'm'}, msg_id='i1')
    assert wire.parse(b)['message'] == {'method': 'm'}
    env = envelope.wrap({'method': 'm'})
    assert wire.parse(env)['message'] == {'method': 'm'}
    with pytest.raises(wire.WireError):
        wire.parse({'foo': 1})
    with pytest.raises(wire.WireError):
        wire.parse({'bridge': 1, 'message': {}, 'reply': {'queue': 1}})


def test_stable_id():
    assert wire.stable_id({'_unique_id': 'u'}) == 'u'
    assert wire.stable_id(None, b'abc') == wire.stable_id(None, b'abc')
    assert wire.stable_id(None, b'abc') != wire.stable_id(None, b'abd')
