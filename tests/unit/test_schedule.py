import logging

import pytest

from bridge.flows import reverse
from bridge.flows import schedule
from tests.unit import confutil


def queues(n, owned=True, rate=0.0):
    return [schedule.TenantQueue('t%d' % i, 't%d' % i, 'q', rate=rate,
                                 owned=owned) for i in range(n)]


def test_polling_backs_off_and_resets():
    (q,) = queues(1)
    s = schedule.Schedule([q], poll_interval=0.4)
    assert s.due(0.0) == [q]
    s.empty(q, 0.0)
    assert s.due(0.01) == []
    assert s.due(0.05) == [q]
    for _ in range(5):
        s.empty(q, 0.0)
    assert q.next_poll == 0.4     # capped at poll_interval
    s.got(q, 3, 1.0)
    assert s.due(1.0) == [q] and q.idle == schedule.MIN_POLL


def test_doorbell_polls_nothing_until_rung_or_swept():
    a, b = queues(2)
    s = schedule.Schedule([a, b], poll_interval=1, doorbell=True,
                          sweep_interval=10)
    s.empty(a, 0.0)
    s.empty(b, 0.0)
    s.next_sweep = 100.0
    assert s.due(50.0) == []
    assert s.ring('t1', 'q') and not s.ring('nobody', 'q')
    assert s.wake.is_set()
    assert s.due(50.0) == [b]
    s.empty(b, 50.0)
    s.empty(b, 50.2)     # the look again for the message that rang
    # The sweep visits one queue per interval, in turn.
    assert s.due(100.0) == [a] and a.swept
    s.empty(a, 100.0)
    assert s.due(105.0) == []
    assert s.due(110.0) == [b]


def test_foreign_shard_queue_only_when_rung():
    mine, other = queues(1)[0], queues(2, owned=False)[1]
    s = schedule.Schedule([mine, other], poll_interval=1, doorbell=True)
    assert s.due(0.0) == [mine]
    assert s.ring('t1', 'q')
    assert other in s.due(0.0)
    s.empty(other, 0.0)
    assert other.next_poll == schedule.RECHECK
    s.empty(other, schedule.RECHECK)
    assert other.next_poll == schedule.NEVER


def test_rate_limit_keeps_overflow_waiting():
    (q,) = queues(1, rate=10.0)
    now = q.refilled
    assert q.allowance(20, now) == 10
    s = schedule.Schedule([q], poll_interval=1)
    s.got(q, 10, now)
    assert q.next_poll > now      # waits for tokens
    assert q.allowance(20, now + 0.5) == 5


def test_ring_during_an_empty_claim_is_not_lost():
    (q,) = queues(1)
    s = schedule.Schedule([q], poll_interval=1, doorbell=True)
    s.next_sweep = 100.0
    before = q.rings
    s.ring('t0', 'q')           # arrives while the claim is under way
    s.empty(q, 5.0, before)
    assert s.due(5.0) == [q]
    s.empty(q, 5.0, q.rings)
    # Zaqar rings before it stores: one more look, a moment later.
    assert s.due(5.0) == [] and s.due(5.0 + schedule.RECHECK) == [q]
    s.empty(q, 5.2, q.rings)
    assert s.due(6.0) == [] and q.unclaimed == 0


def doorbell_queue():
    (q,) = queues(1)
    s = schedule.Schedule([q], poll_interval=1, doorbell=True)
    s.next_sweep = schedule.NEVER
    s.empty(q, 0.0)
    return s, q


def test_short_claim_of_every_rung_message_waits_for_the_next_ring():
    s, q = doorbell_queue()
    s.ring('t0', 'q')
    rings = q.rings
    assert s.due(1.0) == [q]
    s.got(q, 1, 1.0, limit=20, rings=rings)
    assert s.due(2.0) == []          # no empty claim after it
    s.ring('t0', 'q')
    assert s.due(2.0) == [q]


def test_full_or_rung_claims_claim_again():
    s, q = doorbell_queue()
    for _ in range(25):
        s.ring('t0', 'q')
    s.got(q, 20, 1.0, limit=20, rings=q.rings)
    assert s.due(1.0) == [q]         # full: maybe more
    rings = q.rings
    s.ring('t0', 'q')                # during the next claim
    s.got(q, 5, 1.0, limit=20, rings=rings)
    assert s.due(1.0) == [q]


def test_short_claim_missing_a_rung_message_looks_once_more():
    s, q = doorbell_queue()
    s.ring('t0', 'q')
    s.ring('t0', 'q')
    s.got(q, 1, 1.0, limit=20, rings=q.rings)   # one not stored yet
    assert s.due(1.0) == [q]
    s.empty(q, 1.0, q.rings)
    assert s.due(1.0 + schedule.RECHECK) == [q]
    s.got(q, 1, 1.3, limit=20, rings=q.rings)
    assert s.due(2.0) == [] and q.unclaimed == 0


def test_short_poll_interval_is_honoured_after_traffic():
    (q,) = queues(1)
    s = schedule.Schedule([q], poll_interval=0.01)
    s.got(q, 1, 0.0)
    s.empty(q, 0.0)
    assert q.next_poll == 0.01


@pytest.fixture
def capture(caplog):
    """``capture()`` after oslo.log's setup has dropped caplog's handler."""
    root = logging.getLogger()

    def attach():
        root.addHandler(caplog.handler)
        caplog.set_level(logging.INFO)
    yield attach
    root.removeHandler(caplog.handler)


def test_discovered_tenants_join_the_schedule(tmp_path, caplog, capture):
    clients = confutil.FakeClients({'static-1', 'p-a', 'p-b', 'p-c'})
    metrics = [Recorder(), Recorder()]
    workers = [confutil.reverser(tmp_path, clients, worker_id=i,
                                 metrics=metrics[i])
               for i in (0, 1)]
    capture()
    for r in workers:
        r._discover(100.0)
        assert r.schedule.tenants() == {'static-1', 'p-a', 'p-b', 'p-c'}
        assert {q.tenant for q in r.schedule.owned} == {
            t for t in r.schedule.tenants()
            if reverse.worker_of(t, 2) == r.worker_id}
        assert r.schedule.wake.is_set()
    # Each tenant is owned (polled, swept) by exactly one worker.
    owners = [q.tenant for r in workers for q in r.schedule.owned]
    assert sorted(owners) == ['p-a', 'p-b', 'p-c', 'static-1']
    assert sum(m.calls[-1][2] for m in metrics) == 4   # bridge_tenants
    assert all(m.calls[-1][:2] == ('tenants', 'r1') for m in metrics)
    assert 'serving 3 new tenant(s) found by trusts: p-a, p-b, p-c' in \
        caplog.text
    # Not again before the interval; then only what is new.
    clients.found.add('p-d')
    workers[0]._discover(120.0)
    assert 'p-d' not in workers[0].schedule.tenants()
    workers[0]._discover(130.0)
    assert 'p-d' in workers[0].schedule.tenants()
    assert len(workers[0].schedule.queues) == 5


def test_discovery_failure_is_one_line_and_retried(tmp_path, caplog, capture):
    clients = confutil.FakeClients(ConnectionError('keystone down'))
    r = confutil.reverser(tmp_path, clients)
    capture()
    r._discover(100.0)
    assert r.schedule.tenants() == {'static-1'}
    assert 'Route r1: cannot look for new tenants (ConnectionError: ' \
        'keystone down), trying again in 30s' in caplog.text
    assert 'Traceback' not in caplog.text
    clients.found = {'p-a'}
    r._discover(131.0)
    assert r.schedule.tenants() == {'static-1', 'p-a'}


def test_discovered_tenant_without_a_queue_name_is_skipped(tmp_path, caplog,
                                                           capture):
    # Names are shortened, never refused, for length: only an empty one is.
    r = confutil.reverser(tmp_path, confutil.FakeClients({''}),
                          zaqar_queue='{tenant}')
    capture()
    r._discover(100.0)
    r._discover(200.0)
    assert r.schedule.tenants() == {'static-1'}
    assert caplog.text.count('is not served') == 1


class Recorder:
    """Metrics (or anything else) that remembers its calls."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args)


class FakeClaim(list):
    released = False

    def delete(self):
        self.released = True


class FakeMessage:
    def __init__(self, n):
        self.id = 'z%d' % n
        self.body = {'bridge': 1, 'message': {
            'method': 'heartbeat', 'args': {'n': n}, '_unique_id': 'u%d' % n}}
        self.deleted = False

    def delete(self):
        self.deleted = True


class FakeZaqar(confutil.FakeClients):
    def __init__(self, claim):
        super().__init__(set())
        self.claim_ = claim

    def for_project(self, project):
        return self

    def queue(self, name):
        return self

    def claim(self, **kwargs):
        return self.claim_


class BrokenPublisher:
    """Confirms the first publish, then RabbitMQ goes away."""

    def __init__(self):
        self.published = []

    def publish(self, body, *args, **kwargs):
        if self.published:
            raise ConnectionError('connection reset')
        self.published.append(body)
        return True


def test_rabbitmq_lost_mid_claim_gives_the_rest_back(tmp_path):
    claim = FakeClaim(FakeMessage(n) for n in range(3))
    metrics = Recorder()
    r = confutil.reverser(tmp_path, FakeZaqar(claim), metrics=metrics)
    r.publisher = BrokenPublisher()
    (queue,) = r.schedule.queues
    with pytest.raises(ConnectionError):
        r._drain(queue)
    assert len(r.publisher.published) == 1
    assert [m.deleted for m in claim] == [True, False, False]
    # The two not published are released at once, not after claim_ttl.
    assert claim.released
    assert ('retried', 'r1', 2) in metrics.calls


def test_a_look_without_claiming_tells_when_to_claim():
    free, claimed, empty = queues(3)
    s = schedule.Schedule([free, claimed, empty], poll_interval=1,
                          doorbell=True)
    s.next_sweep = schedule.NEVER
    for q in (free, claimed, empty):
        q.next_poll = schedule.NEVER
    s.looked(free, 2, 0, 10.0, claim_ttl=60)
    s.looked(claimed, 0, 1, 10.0, claim_ttl=60)
    s.looked(empty, 0, 0, 10.0, claim_ttl=60)
    assert s.due(10.0) == [free]
    # Claimed by a worker that may be gone: nothing rings when its claim
    # expires, so look then.
    assert s.due(70.0 + schedule.RECHECK) == [free, claimed]
    assert empty.next_poll == schedule.NEVER
    # look_at never puts a queue off.
    s.look_at(free, 500.0)
    assert free.next_poll == 10.0
