import hashlib
import json
import re
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


@pytest.mark.parametrize('bad', ['', None, b'guestagent'])
def test_queue_name_refuses(bad):
    with pytest.raises(naming.QueueNameError):
        naming.queue_name(bad)


UUID = '8f4c1f1e-3a5b-4c7d-9e0f-112233445566'


@pytest.mark.parametrize('length', [1, 63, 64])
def test_names_that_fit_map_as_before(length):
    # The rule before long names were shortened: the character mapping
    # alone, so every queue that worked keeps its name.
    name = ('g.x/' * 64)[:length]
    assert naming.queue_name(name) == ('g_x-' * 64)[:length]


@pytest.mark.parametrize('name, queue', [
    # 65 characters: 47 kept, "-", 16 hex of sha256('a' * 65) (also what
    # `printf 'a%.0s' $(seq 65) | sha256sum` prints).
    ('a' * 65, 'a' * 47 + '-635361c48bb9eab1'),
    # Trove's guest agent server queue, 84 characters once mapped.
    ('guestagent.%s.%s' % (UUID, UUID),
     'guestagent_%s-31d6325a1b7c3b55' % UUID),
    ('x' * 100000, 'x' * 47 + '-d69e689881578332'),
])
def test_long_names_keep_a_prefix_and_a_stable_digest(name, queue):
    assert naming.queue_name(name) == queue
    assert len(queue) == naming.MAX_LENGTH and naming.is_valid(queue)


def test_digest_is_over_the_whole_mapped_name():
    long_dots = 'guestagent.%s.%s' % (UUID, UUID)
    mapped = long_dots.replace('.', '_')
    digest = hashlib.sha256(mapped.encode('ascii')).hexdigest()[:16]
    assert naming.queue_name(long_dots) == mapped[:47] + '-' + digest
    # Same rule as for names that fit: "." and "_" meet, at any length.
    assert naming.queue_name(mapped) == naming.queue_name(long_dots)
    assert naming.queue_name('a.b') == naming.queue_name('a_b')


def test_long_names_with_a_shared_prefix_stay_apart():
    base = 'topic_%s_server_' % UUID
    queues = {naming.queue_name(base + str(i)) for i in range(10000)}
    assert len(queues) == 10000
    assert {q[:47] for q in queues} == {base[:47]}
    # The last character alone tells these two apart.
    assert naming.queue_name(base + UUID + 'a') != \
        naming.queue_name(base + UUID + 'b')


@pytest.mark.parametrize('name', [
    'a' * 64, 'a' * 65, 'guestagent.%s.%s' % (UUID, UUID), 'é' * 80])
def test_mapping_a_mapped_name_changes_nothing(name):
    once = naming.queue_name(name)
    assert naming.queue_name(once) == once


def test_non_ascii_names():
    assert naming.queue_name('café.ü') == 'caf-_-'
    # Each code point becomes one "-", then the length rule applies, on
    # ASCII only (no encoding question for the digest).
    queue = naming.queue_name('é' * 65)
    assert queue == '-' * 47 + '-' + hashlib.sha256(
        b'-' * 65).hexdigest()[:16]
    assert naming.queue_name('ü' * 65) == queue
    assert naming.is_valid(naming.queue_name('\ud800' * 70))


def test_fanout_of_a_long_topic_maps_the_whole_name():
    topic = 'guestagent.%s.%s' % (UUID, UUID)
    assert naming.fanout_queue_name(topic) == \
        naming.queue_name(topic + '_fanout')
    # Appending to an already shortened name gives another queue.
    assert naming.fanout_queue_name(topic) != \
        naming.queue_name(naming.queue_name(topic) + '_fanout')


def test_tenant_templates_keep_tenants_apart_when_shortened():
    a, b = 'a' * 32, 'b' * 32
    template = '{tenant}-guestagent_%s_%s' % (UUID, UUID)
    queue_a = naming.render(template, tenant=a)
    assert queue_a.startswith(a + '-') and len(queue_a) == 64
    assert naming.render(template, tenant=b) != queue_a
    # A guest's reply queue fits (the driver builds it to fit); "*"
    # never matches "-", so a shortened name matches no "{tenant}-*"
    # pattern: the "-" before the digest lies in what "*" stands for.
    pattern = naming.QueuePattern('{tenant}-*')
    reply_a = naming.render('{tenant}-reply_' + 'x' * 20, tenant=a)
    assert pattern.matches(reply_a, a)
    assert not pattern.matches(reply_a, b)
    shortened = naming.render('{tenant}-reply_' + 'x' * 40, tenant=a)
    assert not pattern.matches(shortened, a)
    assert not pattern.matches(shortened, b)


def test_tenant_pattern_counts_only_the_kept_prefix():
    # Tenant ids of 46 characters keep "<tenant>-" in a shortened name.
    pattern = naming.QueuePattern('{tenant}-*')
    t46 = 'c' * 46
    assert pattern.matches(t46 + '-reply_1', t46)
    # A 47-character tenant X would otherwise match the shortened name of
    # any tenant whose id starts with X (here X + 'y').
    long_tenant = 'd' * 47
    other = naming.render('{tenant}-' + 'r' * 20, tenant=long_tenant + 'y')
    assert other.startswith(long_tenant + '-') and len(other) == 64
    assert re.fullmatch(re.escape(long_tenant) + '-[A-Za-z0-9_]*', other)
    assert not pattern.matches(other, long_tenant)
    # Same with the tenant later in the pattern: where it ends counts.
    later = naming.QueuePattern('r_{tenant}-*')
    assert later.matches('r_%s-x' % ('e' * 44), 'e' * 44)
    assert not later.matches('r_%s-x' % ('e' * 45), 'e' * 45)


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
    used.check_and_add('t1', time.time() + 10)
    with pytest.raises(tokens.TokenError, match='replay'):
        used.check_and_add('t1', time.time() + 10)


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
