"""The zaqar:// driver with websocket push (``websocket_url``).

Real zaqar-servers: the wsgi one the driver polls and claims from, and the
websocket one sharing its storage, which pushes to the driver's sockets
(the ``zaqar`` fixture runs both).  A push only wakes the poller.
"""

import queue
import statistics
import threading
import time

import pytest

from tests.fixtures import servers
from tests.functional import guestutil

pytestmark = pytest.mark.functional

SLOW_POLL = {'poll_interval_min': 30, 'poll_interval_max': 30}


@pytest.fixture
def ws_url(zaqar):
    if not zaqar.ws_url:
        pytest.skip('no websocket zaqar-server (BRIDGE_TEST_ZAQAR_WS_URL)')
    return zaqar.ws_url


def doorbell(srv):
    """The push doorbell of an RPC server's listener."""
    return srv.listener._poll_style_listener._doorbell


class Fetches:
    """The reads of Zaqar an RPC server's listener makes (its polls).

    Wraps the listener's ``_fetch`` to record each one, so a test waits
    for "the poller read its queues and found nothing" instead of
    sleeping.
    """

    def __init__(self, srv):
        self.listener = srv.listener._poll_style_listener
        self.done = []   # (started while subscribed to push, kept)
        self._changed = threading.Condition()
        fetch = self.listener._fetch

        def recorded():
            pushing = self.listener._doorbell is not None and \
                self.listener._doorbell.subscribed.is_set()
            kept = fetch()
            with self._changed:
                self.done.append((pushing, kept))
                self._changed.notify_all()
            return kept
        self.listener._fetch = recorded

    def wait_idle(self, after=0, pushing=False, timeout=40):
        """Wait for a fetch (the ``after``-th or later) that found nothing
        (and, with ``pushing``, started once push was subscribed): the
        listener then waits for its next poll, or a ring.  The timeout
        outlasts one poll interval, in case the fetch came before this
        wrapper."""
        def idle():
            return any(not kept and (push or not pushing)
                       for push, kept in self.done[after:])
        with self._changed:
            assert self._changed.wait_for(idle, timeout), self.done
            return len(self.done)

    def ring(self):
        """What a push does: wake the poller."""
        self.listener._wake.set()


def test_push_wakes_an_idle_server(guest_url, project, transport, server,
                                   ws_url):
    # Polls 30 s apart: only the push can deliver a cast within seconds.
    url = guest_url(project, websocket_url=ws_url, **SLOW_POLL)
    endpoint = guestutil.Endpoint()
    srv = server(url, 'pushed', 'host-1', [endpoint])
    fetches = Fetches(srv)
    assert doorbell(srv).subscribed.wait(10)
    seen = fetches.wait_idle(pushing=True)  # the poll after subscribing
    rpc = guestutil.client(transport, url, 'pushed')
    for value in range(3):
        start = time.monotonic()
        rpc.cast({}, 'note', value=value)
        # Well before the next poll (30 s): only a push wakes it.
        assert endpoint.received.get(timeout=15)[:2] == ('note', value)
        print('cast %d delivered by push in %.3f s'
              % (value, time.monotonic() - start))
        seen = fetches.wait_idle(after=seen)  # idle again
    # To the server's own queue too (topic.server).
    rpc.prepare(server='host-1').cast({}, 'note', value='direct')
    assert endpoint.received.get(timeout=5)[:2] == ('note', 'direct')


def test_without_push_the_same_server_waits_for_its_poll(
        guest_url, project, transport, server):
    # The control of the test above: what the push saves.
    url = guest_url(project, **SLOW_POLL)
    endpoint = guestutil.Endpoint()
    fetches = Fetches(server(url, 'polled', 'host-1', [endpoint]))
    seen = fetches.wait_idle()  # the first poll, then 30 s of waiting
    guestutil.client(transport, url, 'polled').cast({}, 'note', value=1)
    with pytest.raises(queue.Empty):
        endpoint.received.get(timeout=3)
    assert len(fetches.done) == seen   # no poll meanwhile
    # It was there all along: waking the poller (what a push does)
    # delivers it.
    fetches.ring()
    assert endpoint.received.get(timeout=20)[:2] == ('note', 1)


def test_call_reply_is_pushed(guest_url, project, transport, server,
                              ws_url):
    url = guest_url(project, websocket_url=ws_url, **SLOW_POLL)
    server(url, 'pushed-call', 'host-1', [guestutil.Endpoint()])
    # Both ends poll every 30 s and a call times out after guestutil.TIMEOUT
    # (10 s): only pushes, to the server and back, can answer it.
    assert guestutil.TIMEOUT < SLOW_POLL['poll_interval_min']
    rpc = guestutil.client(transport, url, 'pushed-call')
    for value in range(3):
        start = time.monotonic()
        assert rpc.call({}, 'echo', value=value)['echo'] == value
        print('call %d: %.3f s' % (value, time.monotonic() - start))


def test_unreachable_websocket_falls_back_to_polling(
        guest_url, project, transport, server):
    port, = servers.free_ports(1)
    url = guest_url(project, websocket_url='ws://127.0.0.1:%d' % port,
                    poll_interval_max=0.5)
    srv = server(url, 'no-push', 'host-1', [guestutil.Endpoint()])
    rpc = guestutil.client(transport, url, 'no-push')
    for value in range(3):
        assert rpc.call({}, 'echo', value=value)['echo'] == value
    assert not doorbell(srv).subscribed.is_set()


def _p50_call(transport, server, url, topic, calls=50, warmup=5):
    server(url, topic, 'host-1', [guestutil.Endpoint()])
    rpc = guestutil.client(transport, url, topic)
    times = []
    for i in range(warmup + calls):
        start = time.monotonic()
        assert rpc.call({}, 'echo', value=i)['echo'] == i
        if i >= warmup:
            times.append(time.monotonic() - start)
    times.sort()
    return (statistics.median(times), times[int(len(times) * 0.9)],
            times[-1])


def test_call_latency_with_and_without_push(guest_url, project, transport,
                                            server, ws_url, capsys):
    # Default poll intervals; timings are printed, not asserted.
    polled = _p50_call(transport, server, guest_url(project), 'lat-poll')
    pushed = _p50_call(transport, server,
                       guest_url(project, websocket_url=ws_url), 'lat-push')
    with capsys.disabled():
        for name, (p50, p90, worst) in (('poll only', polled),
                                        ('with push', pushed)):
            print('\ncall() round trip over 50 calls, %s: p50 %.1f ms, '
                  'p90 %.1f ms, max %.1f ms'
                  % (name, p50 * 1e3, p90 * 1e3, worst * 1e3))
