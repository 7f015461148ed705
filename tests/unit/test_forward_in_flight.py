"""The forward flow leaves a post in flight while more deliveries wait,
and acknowledges its messages only once Zaqar answered."""

import pytest
from zaqarclient.transport import errors as zerrors

from bridge.flows import forward
from bridge.translate import to_zaqar
from tests.unit import confutil
from tests.unit.test_acks import Delivery


class Posting:
    def __init__(self, error=None):
        self.answered = False
        self.error = error
        self.is_ready = False

    def ready(self):
        return self.is_ready

    def result(self):
        self.answered = True
        if self.error is not None:
            raise self.error
        return 201

    def close(self):
        pass


class Clients:
    def __init__(self):
        self.postings = []
        self.error = None

    def for_project(self, project):
        return self

    def post_json_start(self, queue, data):
        self.postings.append(Posting(self.error))
        return self.postings[-1]


@pytest.fixture
def fwd(tmp_path):
    conf, routes = confutil.load(tmp_path, confutil.ROUTES, routes='fwd')
    clients = Clients()
    f = forward.Forwarder(conf, routes[0], clients=clients)
    f.acked = []
    f.waiting = True
    f._more_waiting = lambda: f.waiting
    return f, clients


def receive(f, tags):
    for tag in tags:
        message = Delivery(tag, f.acked)
        f.acks.received(message)
        out = to_zaqar.Outgoing('p', 't', 'q', {'body': {}, 'ttl': 60},
                                'id%d' % tag)
        out.received_at = 0.0
        f.batches.add(('p', 'q'), (message, out), out.size)


def test_a_post_stays_in_flight_while_more_deliveries_wait(fwd):
    f, clients = fwd
    receive(f, [1, 2])
    f.flush(force=True)
    (posting,) = clients.postings
    assert f.in_flight is not None and not posting.answered
    assert f.acked == []                   # sent, not stored yet
    f.on_iteration()                       # still busy, no answer yet
    assert not posting.answered and f.acked == []
    posting.is_ready = True                # the answer came: read it
    f.on_iteration()
    assert posting.answered and f.in_flight is None
    assert f.acked == [(2, True)]


def test_the_answer_is_read_once_nothing_else_waits(fwd):
    f, clients = fwd
    receive(f, [1])
    f.flush(force=True)
    assert f.acked == []
    f.waiting = False
    f.on_iteration()
    assert clients.postings[0].answered and f.acked == [(1, False)]


def test_the_next_post_waits_for_the_answer_to_the_last(fwd):
    f, clients = fwd
    receive(f, [1])
    f.flush(force=True)
    receive(f, [2])
    f.flush(force=True)
    first, second = clients.postings
    assert first.answered and f.acked == [(1, False)]
    assert not second.answered and f.in_flight[1] is second


def test_a_lone_message_is_answered_at_once(fwd):
    f, clients = fwd
    f.waiting = False
    receive(f, [1])
    f.flush(force=True)
    assert clients.postings[0].answered and f.in_flight is None
    assert f.acked == [(1, False)]


def test_a_failed_post_in_flight_is_tried_again_and_not_acked(fwd):
    f, clients = fwd
    clients.error = zerrors.TransportError(text='down')
    receive(f, [1, 2])
    f.flush(force=True)
    f.waiting = False
    f.on_iteration()
    assert f.acked == [] and f.in_flight is None
    assert f.batches.pending == 2 and f.retry_at > 0
    clients.error, f.retry_at = None, 0.0
    f.flush(force=True)
    assert f.acked == [(2, True)]


def test_stopping_reads_the_answer_in_flight(fwd):
    f, clients = fwd
    receive(f, [1])
    f.flush(force=True)
    f.flush(force=True, last=True)
    assert clients.postings[0].answered and f.acked == [(1, False)]
