"""Properties of the pure code that reads untrusted input (hypothesis).

Whatever bytes or JSON arrive, the decoders and translators either return
a value or raise their one documented error; they never crash with
anything else (a crash would dead-letter as "bridge failed" at best).
"""

import json
import re
import string

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from bridge import envelope
from bridge import naming
from bridge import tokens
from bridge.translate import Reject
from bridge.translate import to_amqp
from bridge.translate import to_zaqar
from bridge import wire
from tests.unit import confutil
from tests.unit import test_translate

ROUTES = test_translate.ROUTES   # the same three routes
SECRET = 'test-secret'  # confutil's [rpc] reply_secret
VALID_NAME = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
# Keys the bridge looks at, so generated messages reach the deep paths.
KEYS = ['method', 'args', 'version', '_msg_id', '_reply_q', '_unique_id',
        '_timeout', '_context_project_id', '_context_is_admin',
        'event_type', 'payload', 'priority', 'result', 'failure', 'ending']

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
messages = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8),
                           json_values | st.sampled_from(['heartbeat',
                                                          'reply_q1']),
                           max_size=8)
envelopes = messages.map(lambda m: json.dumps(envelope.wrap(m)))
amqp_bodies = (st.binary(max_size=200) | envelopes.map(str.encode)
               | json_values.map(json.dumps).map(str.encode))
zaqar_bodies = json_values | st.fixed_dictionaries(
    {'bridge': st.sampled_from([1, 1.0, 2, '1']), 'message': messages},
    optional={'id': json_values, 'reply_token': st.text(max_size=80),
              'reply': json_values, 'encoding': st.just('base64')})


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    conf, routes = confutil.load(tmp_path_factory.mktemp('conf'), ROUTES,
                                 routes='fwd, raw, rev')
    return conf, {r.name: r for r in routes}


@given(body=amqp_bodies | st.text() | json_values)
@example(body=b'{"oslo.version": "2.0", "oslo.message": "[]"}')
def test_unwrap_returns_a_dict_or_envelope_error(body):
    try:
        assert isinstance(envelope.unwrap(body), dict)
    except envelope.EnvelopeError:
        pass


@given(body=amqp_bodies | zaqar_bodies | st.text())
def test_parse_returns_a_dict_or_wire_error(body):
    try:
        assert isinstance(wire.parse(body), dict)
    except wire.WireError:
        pass


@pytest.mark.parametrize('body', [b'[' * 100000, b'{"a":' * 100000])
def test_deeply_nested_json_is_an_envelope_error(body):
    for parse, error in ((envelope.unwrap, envelope.EnvelopeError),
                         (wire.parse, wire.WireError)):
        with pytest.raises(error):
            parse(body)


@settings(max_examples=300)
@given(name=st.sampled_from(['fwd', 'raw']), body=amqp_bodies,
       routing_key=st.text(max_size=80) | st.just('tenant-a.guest.1'),
       headers=st.dictionaries(st.text(max_size=8), json_values,
                               max_size=3),
       expiration=st.none() | st.text(max_size=8) | st.integers())
def test_forward_translate_returns_outgoing_or_reject(
        setup, name, body, routing_key, headers, expiration):
    conf, routes = setup
    properties = {} if expiration is None else {'expiration': expiration}
    try:
        out = to_zaqar.translate(routes[name], conf, lambda t: t, body,
                                 routes[name].exchange, routing_key,
                                 headers, properties, 'application/json')
    except Reject:
        return
    assert naming.is_valid(out.queue) and out.tenant == out.project
    json.dumps(out.message)


@pytest.mark.parametrize('where', ['expiration', '_timeout'])
def test_forward_translate_non_finite_timeout(setup, where):
    conf, routes = setup
    message = {'method': 'm', '_msg_id': 'x', '_reply_q': 'reply_1',
               '_context_project_id': 'tenant-a'}
    properties = {}
    if where == 'expiration':
        properties['expiration'] = '-inf'
    else:
        message['_timeout'] = '-inf'
    try:
        to_zaqar.translate(routes['fwd'], conf, lambda t: t,
                           json.dumps(envelope.wrap(message)).encode(),
                           'trove', 'guestagent.1', {}, properties)
    except Reject:
        pass


@settings(max_examples=300)
@given(body=zaqar_bodies, zaqar_id=st.none() | st.text(max_size=40))
def test_reverse_translate_returns_publish_or_reject(setup, body, zaqar_id):
    conf, routes = setup
    try:
        out = to_amqp.translate(routes['rev'], conf, 'tenant-a',
                                'trove-conductor', body, zaqar_id,
                                tokens.UsedTokens())
    except Reject:
        return
    assert out.headers['x-bridge-tenant'] == 'tenant-a'
    if out.kind in ('rpc', 'notification'):
        inner = envelope.unwrap(out.body)
        assert inner['_context_project_id'] == 'tenant-a'
        assert inner['_context_is_admin'] is False


@given(name=st.text() | st.binary() | json_values)
@example(name='a' * 64)
@example(name='a' * 65)
@example(name='é' * 200)
@example(name='guestagent.1234')
def test_queue_name_is_valid_or_refused(name):
    try:
        mapped = naming.queue_name(name)
    except naming.QueueNameError:
        # Only what is not a string, or empty: never the length.
        assert not isinstance(name, str) or name == ''
        return
    assert VALID_NAME.match(mapped)
    assert naming.queue_name(name) == mapped
    assert naming.queue_name(mapped) == mapped


@given(token=st.text(max_size=200) | json_values,
       kind=st.sampled_from([tokens.AMQP_REPLY, tokens.ZAQAR_REPLY]))
def test_verify_raises_only_token_error(token, kind):
    try:
        tokens.verify(SECRET, kind, token)
    except tokens.TokenError:
        pass


def one_flip(data):
    """A valid token and the same token with one character changed."""
    token = tokens.sign(SECRET, tokens.AMQP_REPLY,
                        data.draw(st.text(max_size=30)),
                        data.draw(st.text(max_size=30)), 'tenant-a', 600)
    index = data.draw(st.integers(0, len(token) - 1))
    flip = data.draw(st.integers(1, 255))
    return token, (token[:index] + chr(ord(token[index]) ^ flip)
                   + token[index + 1:])


@given(data=st.data())
def test_a_flipped_token_is_refused(data):
    token, flipped = one_flip(data)
    assert tokens.verify(SECRET, tokens.AMQP_REPLY, token, 'tenant-a')
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, tokens.AMQP_REPLY, flipped, 'tenant-a')


def test_a_token_has_one_spelling():
    token = tokens.sign(SECRET, tokens.AMQP_REPLY, 'reply_1', 'm1',
                        'tenant-a', 600)
    alphabet = (string.ascii_uppercase + string.ascii_lowercase
                + string.digits + '-_')
    # A 32-byte MAC is 43 characters: the last one has 2 unused bits.
    other = alphabet[alphabet.index(token[-1]) ^ 1]
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, tokens.AMQP_REPLY, token[:-1] + other,
                      'tenant-a')
