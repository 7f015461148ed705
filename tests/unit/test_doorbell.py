"""The doorbell's proofs: only rings the bridge subscribed are taken."""

import hashlib
import hmac
import json
import logging

import pytest
from zaqarclient.transport import errors as zerrors

from bridge.zaqar import doorbell
from tests.fixtures import web

KEY = doorbell.key('test-secret')


def refused(tenant, queue, given):
    with pytest.raises(doorbell.RingRefused) as info:
        doorbell.check(KEY, tenant, queue, given)
    return info.value.reason


def test_proof_of_the_tenant_and_queue_is_taken():
    doorbell.check(KEY, 't1', 'q', doorbell.proof(KEY, 't1', 'q'))


@pytest.mark.parametrize('tenant, queue', [
    ('t2', 'q'),       # another tenant's ring with t1's proof
    ('t1', 'q2'),      # t1's other queue
])
def test_proof_of_another_tenant_or_queue_is_invalid(tenant, queue):
    assert refused(tenant, queue, doorbell.proof(KEY, 't1', 'q')) == \
        'invalid'


def test_moving_the_boundary_between_tenant_and_queue_is_invalid():
    given = doorbell.proof(KEY, 'ab', 'c')
    assert refused('a', 'bc', given) == 'invalid'


def test_proof_under_another_secret_is_invalid():
    given = doorbell.proof(doorbell.key('other-secret'), 't1', 'q')
    assert refused('t1', 'q', given) == 'invalid'


@pytest.mark.parametrize('given', ['', None])
def test_missing_proof(given):
    assert refused('t1', 'q', given) == 'missing'


@pytest.mark.parametrize('given', [
    'junk',
    doorbell.proof(KEY, 't1', 'q')[:-1],           # too short
    doorbell.proof(KEY, 't1', 'q') + '0',          # too long
    doorbell.proof(KEY, 't1', 'q').upper(),        # not our spelling
    doorbell.proof(KEY, 't1', 'q')[:-1] + '\xe9',  # not ASCII
    doorbell.proof(KEY, 't1', 'q') + '\n',
])
def test_malformed_proof(given):
    assert refused('t1', 'q', given) == 'malformed'


@pytest.mark.parametrize('tenant, queue', [('', 'q'), ('t1', None),
                                           ('t1', ''), ('t1', ['q'])])
def test_ring_without_tenant_or_queue_is_malformed(tenant, queue):
    assert refused(tenant, queue, doorbell.proof(KEY, 't1', 'q')) == \
        'malformed'


def test_key_is_derived_for_the_doorbell_alone():
    # A proof (which tenants read) is no MAC under the reply secret itself.
    assert KEY != b'test-secret'
    assert doorbell.proof(KEY, 't1', 'q') != hmac.new(
        b'test-secret', json.dumps(['t1', 'q'], separators=(',', ':'))
        .encode(), hashlib.sha256).hexdigest()
    with pytest.raises(ValueError, match='reply_secret'):
        doorbell.key('')


def test_refusals_are_logged_once_per_interval(caplog):
    log = doorbell._RefusalLog('r1', interval=60)
    exc = doorbell.RingRefused('missing', 'no X-Bridge-Proof header')
    with caplog.at_level(logging.WARNING):
        for now in (100.0, 101.0, 150.0, 159.9, 160.0):
            log.refused(exc, 't1', 'q', '10.0.0.1', now=now)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "Route r1: doorbell ring from 10.0.0.1 for tenant 't1' queue " \
        "'q' refused (no X-Bridge-Proof header)" in lines[0]
    assert '3 other ring(s) refused since the last such line' in lines[1]


class Recorder:
    def __init__(self):
        self.rings = []
        self.refused = []

    def ring(self, tenant, queue):
        self.rings.append((tenant, queue))

    def ring_refused(self, route, reason):
        self.refused.append((route, reason))


@pytest.fixture
def bell():
    seen = Recorder()
    server = doorbell.Doorbell('r1', '127.0.0.1', 0, 'http://x/',
                               'test-secret', seen.ring, seen).start()
    server.seen = seen
    yield server
    server.stop()


def test_doorbell_takes_proven_rings_only(bell):
    port = bell.server.server_port
    good = {doorbell.TENANT_HEADER: 't1',
            doorbell.PROOF_HEADER: doorbell.proof(KEY, 't1', 'q')}
    assert web.post_json(port, good, {'queue_name': 'q'}) == 204
    assert web.post_json(port, dict(good, **{doorbell.TENANT_HEADER: 't2'}),
                         {'queue_name': 'q'}) == 403
    assert web.post_json(port, good, {'queue_name': 'q2'}) == 403
    assert web.post_json(port, {doorbell.TENANT_HEADER: 't1'},
                         {'queue_name': 'q'}) == 403
    assert web.post_json(port, good, b'not json') == 403
    assert bell.seen.rings == [('t1', 'q')]
    assert bell.seen.refused == [('r1', 'invalid'), ('r1', 'invalid'),
                                 ('r1', 'missing'), ('r1', 'malformed')]


class FakeSubscriptions:
    """zaqarclient's subscription calls, recorded; a queue's
    subscriptions as Zaqar would list them."""

    def __init__(self, monkeypatch, listed):
        self.listed = listed
        self.calls = []
        for name in ('subscription_list', 'subscription_update'):
            monkeypatch.setattr(doorbell.zcore, name,
                                self._record(name))

    def _record(self, name):
        def call(trans, req, queue, *args, **kwargs):
            self.calls.append(name)
            if name == 'subscription_list':
                return {'subscriptions': self.listed}
            if name == 'subscription_create':
                return {'subscription_id': 'new'}
        return call

    def _request_and_transport(self):
        return None, None

    def create_subscription(self, queue, body):
        self.calls.append('subscription_create')
        return 'new'


URL = 'http://127.0.0.1:9/'


def listed(options, ttl=doorbell.SUBSCRIPTION_TTL, age=0):
    return [{'id': 's1', 'subscriber': URL, 'options': options, 'ttl': ttl,
             'age': age}]


def test_subscription_with_the_right_options_is_kept(monkeypatch):
    key = doorbell.key('s3cret')
    fake = FakeSubscriptions(monkeypatch, listed(
        doorbell.options(key, 't1', 'q')))
    assert doorbell.subscribe(fake, 'q', URL, 't1', key) == 'kept'
    assert fake.calls == ['subscription_list']


@pytest.mark.parametrize('old', [
    {'post_headers': {doorbell.TENANT_HEADER: 't1'}},          # no proof
    doorbell.options(doorbell.key('other secret'), 't1', 'q')])
def test_subscription_with_other_options_gets_them(monkeypatch, old):
    key = doorbell.key('s3cret')
    fake = FakeSubscriptions(monkeypatch, listed(old))
    assert doorbell.subscribe(fake, 'q', URL, 't1', key) == 'updated'
    assert fake.calls == ['subscription_list', 'subscription_update']


def test_missing_subscription_is_created(monkeypatch):
    key = doorbell.key('s3cret')
    fake = FakeSubscriptions(monkeypatch, [])
    assert doorbell.subscribe(fake, 'q', URL, 't1', key) == \
        'listed and created'
    assert fake.calls == ['subscription_list', 'subscription_create']


def test_create_only_is_one_request(monkeypatch):
    key = doorbell.key('s3cret')
    fake = FakeSubscriptions(monkeypatch, [])
    assert doorbell.subscribe(fake, 'q', URL, 't1', key,
                              check=False) == 'created'
    assert fake.calls == ['subscription_create']


def test_shard_digest_is_the_same_set_of_queues_and_settings():
    key = doorbell.key('s3cret')
    pairs = [('t1', 'q'), ('t2', 'q'), ('t3', 'r')]
    same = doorbell.shard_digest(URL, key, reversed(pairs))
    assert doorbell.shard_digest(URL, key, pairs) == same
    for other in (doorbell.shard_digest(URL, key, pairs[:2]),
                  doorbell.shard_digest(URL, key, pairs + [('t4', 'q')]),
                  doorbell.shard_digest(URL, key, [('t1', 'q'), ('t2', 'q'),
                                                   ('t3', 'q')]),
                  doorbell.shard_digest('http://127.0.0.1:8/', key, pairs),
                  doorbell.shard_digest(URL, doorbell.key('other'), pairs)):
        assert other != same
    # A pair is not the concatenation of its parts.
    assert doorbell.shard_digest(URL, key, [('t1', 'q1')]) != \
        doorbell.shard_digest(URL, key, [('t1q', '1')])


class FakeQueues:
    """zaqarclient's queue get/update/create, on one queue's metadata
    (None: the queue does not exist)."""

    def __init__(self, monkeypatch, metadata):
        self.metadata = metadata
        self.calls = []
        monkeypatch.setattr(doorbell.zcore, 'queue_get', self.get)
        monkeypatch.setattr(doorbell.zcore, 'queue_update', self.update)
        monkeypatch.setattr(doorbell.zcore, 'queue_create', self.create)

    def _request_and_transport(self):
        return None, None

    def get(self, trans, req, queue):
        self.calls.append('get')
        if self.metadata is None:
            raise zerrors.ResourceNotFound()
        return dict(self.metadata)

    def update(self, trans, req, queue, ops):
        self.calls.append('update')
        if self.metadata is None:
            raise zerrors.ResourceNotFound()
        for op in ops:
            assert op['op'] == 'add'
            self.metadata[op['path'].split('/')[-1]] = op['value']

    def create(self, trans, req, queue, metadata=None):
        self.calls.append('create')
        self.metadata = dict(metadata)


def test_record_then_recorded(monkeypatch):
    fake = FakeQueues(monkeypatch, None)
    assert doorbell.recorded(fake, 'canary') is None
    doorbell.record(fake, 'canary', 'abc', 12.5)      # no queue yet
    assert doorbell.recorded(fake, 'canary') == {'digest': 'abc',
                                                 'at': 12.5}
    doorbell.record(fake, 'canary', 'def', 13)        # replaced
    assert doorbell.recorded(fake, 'canary') == {'digest': 'def', 'at': 13}
    assert fake.calls == ['get', 'update', 'create', 'get', 'update', 'get']


@pytest.mark.parametrize('value', [
    None, 'abc', {'digest': 'abc'}, {'digest': 1, 'at': 2},
    {'digest': 'abc', 'at': 'yesterday'}])
def test_a_malformed_record_is_none(monkeypatch, value):
    fake = FakeQueues(monkeypatch, {doorbell.RECORD_KEY: value,
                                    '_default_message_ttl': 3600})
    assert doorbell.recorded(fake, 'canary') is None
