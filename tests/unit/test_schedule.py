from bridge.zaqar import schedule


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
    assert s.due(6.0) == []


def test_short_poll_interval_is_honoured_after_traffic():
    (q,) = queues(1)
    s = schedule.Schedule([q], poll_interval=0.01)
    s.got(q, 1, 0.0)
    s.empty(q, 0.0)
    assert q.next_poll == 0.01
