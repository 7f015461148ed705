"""Answers due: when the reply route looks after a call was forwarded
(bridge/flows/answers_due.py, its use in bridge/flows/schedule.py)."""

import os
import threading

import pytest

from bridge.flows import answers_due
from bridge.flows import schedule


def doorbell_schedule(window=2.0, owned=True):
    q = schedule.TenantQueue('t0', 'p0', 'replies', owned=owned)
    s = schedule.Schedule([q], poll_interval=1, doorbell=True,
                          sweep_interval=3600, answer_due_window=window)
    s.next_sweep = schedule.NEVER
    s.empty(q, 0.0)                 # idle: left to the doorbell
    assert q.next_poll == schedule.NEVER
    return s, q


def test_hint_makes_the_queue_due_when_answers_usually_come():
    s, q = doorbell_schedule()
    assert s.answer_due('t0', 'replies', now=10.0)
    assert s.wake.is_set()
    first = answers_due.EXPECTED_FIRST - answers_due.STEP_FIRST
    assert q.next_poll == pytest.approx(10.0 + first)
    assert s.due(10.0) == []
    assert s.due(10.0 + first) == [q]


def test_empty_looks_come_at_growing_steps_until_the_window_ends():
    s, q = doorbell_schedule(window=0.5)
    s.answer_due('t0', 'replies', now=0.0)
    now, gaps = q.next_poll, []
    while q.next_poll != schedule.NEVER:
        now = q.next_poll
        s.empty(q, now)
        gaps.append(q.next_poll - now)
    assert gaps.pop() == schedule.NEVER      # after the window: the doorbell
    assert gaps[0] == pytest.approx(answers_due.STEP_FIRST)
    assert all(b >= a for a, b in zip(gaps[:-2], gaps[1:-1]))
    assert max(gaps) <= answers_due.STEP_MAX
    assert now == pytest.approx(0.5)   # the last look ends the window
    assert q not in s.answers


def test_found_answer_ends_the_fast_looks_and_teaches_the_delay():
    s, q = doorbell_schedule()
    s.answer_due('t0', 'replies', now=0.0)
    s.got(q, 1, 0.030, limit=10, rings=q.rings)
    assert q.next_poll == schedule.NEVER and q not in s.answers
    assert answers_due.EXPECTED_FIRST < s.answers.expected < 0.030


def test_two_calls_due_keep_looking_after_the_first_answer():
    s, q = doorbell_schedule()
    s.answer_due('t0', 'replies', now=0.0)
    s.answer_due('t0', 'replies', now=0.001)
    s.got(q, 1, 0.010, limit=10, rings=q.rings)
    assert q.next_poll == pytest.approx(0.010 + answers_due.STEP_FIRST)
    s.got(q, 1, 0.012, limit=10, rings=q.rings)
    assert q.next_poll == schedule.NEVER


def test_polling_route_looks_sooner_than_its_poll_interval():
    q = schedule.TenantQueue('t0', 'p0', 'replies')
    s = schedule.Schedule([q], poll_interval=5, answer_due_window=2.0)
    for _ in range(10):
        s.empty(q, 0.0)
    assert q.next_poll == 5.0
    s.answer_due('t0', 'replies', now=1.0)
    assert q.next_poll < 1.01


@pytest.mark.parametrize('why', ['off', 'not owned', 'unknown'])
def test_hint_ignored(why):
    s, q = doorbell_schedule(window=0.0 if why == 'off' else 2.0,
                             owned=why != 'not owned')
    tenant = 'nobody' if why == 'unknown' else 't0'
    assert not s.answer_due(tenant, 'replies', now=1.0)
    assert not s.wake.is_set()
    assert q.next_poll == schedule.NEVER


def test_hints_go_from_sender_to_every_listener(tmp_path):
    got = []
    arrived = threading.Event()

    def hint(tenant, queue):
        got.append((tenant, queue))
        if len(got) == 2:
            arrived.set()
    listeners = [answers_due.Listener(name, hint, path=str(tmp_path)).start()
                 for name in ('replies', 'other/route')]
    try:
        assert sorted(os.listdir(tmp_path)) == sorted(
            '%s-%d.sock' % (n, os.getpid()) for n in ('replies',
                                                      'other_route'))
        sender = answers_due.Sender(path=str(tmp_path))
        sender.answer_due('t0', 'replies')
        assert arrived.wait(10)
        assert got == [('t0', 'replies')] * 2
        off = answers_due.Sender(enabled=False, path=str(tmp_path))
        off.answer_due('t1', 'replies')
        sender.close()
    finally:
        for listener in listeners:
            listener.stop()
    assert ('t1', 'replies') not in got
    assert os.listdir(tmp_path) == []


def test_answers_found_at_the_first_look_teach_to_look_sooner():
    # The answer is always there 5 ms after the hint; the worker starts
    # out expecting it much later.  Finding it at the first look says
    # only that it came before that look: the expected delay comes down.
    s, q = doorbell_schedule()
    s.answers.expected = 0.030
    now = 0.0
    for _ in range(100):
        s.answer_due('t0', 'replies', now=now)
        look = q.next_poll
        while look - now < 0.005:       # too early: empty
            s.empty(q, look + 0.004, rings=q.rings, started=look)
            look = q.next_poll
        s.got(q, 1, look + 0.004, limit=10, rings=q.rings, started=look)
        now += 1.0
    assert s.answers.expected < 0.010


def test_an_empty_look_before_the_answer_bounds_when_it_came():
    s, q = doorbell_schedule()
    s.answer_due('t0', 'replies', now=0.0)
    s.empty(q, 0.014, rings=q.rings, started=0.010)     # not there yet
    before = s.answers.expected
    s.got(q, 1, 0.024, limit=10, rings=q.rings, started=0.020)
    # It came between the two looks' starts (15 ms), not when the second
    # one ended (24 ms).
    assert s.answers.expected == pytest.approx(
        before + answers_due.LEARNING * (0.015 - before))
