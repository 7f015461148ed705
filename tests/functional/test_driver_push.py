"""The zaqar:// driver with websocket push (``websocket_url``).

Real zaqar-servers: the wsgi one the driver polls and claims from, and the
websocket one sharing its storage, which pushes to the driver's sockets
(the ``zaqar`` fixture runs both, the websocket one on a free port, so
the tests name it: the default, ``auto``, looks on port 9000).  A push
only wakes the poller; while push works the poller reads its queues only
now and then (an idle guest costs almost nothing), and a lost push costs
latency, never the message.
"""

import contextlib
import queue
import socket
import statistics
import threading
import time
from urllib import parse

import pytest

from bridge.drivers.zaqar import push
from tests.fixtures import servers
from tests.functional import bridgeutil
from tests.functional import guestutil

pytestmark = pytest.mark.functional

SLOW_POLL = {'poll_interval_min': 30, 'poll_interval_max': 30}


@pytest.fixture
def ws_url(zaqar):
    if not zaqar.ws_url:
        pytest.skip('no websocket zaqar-server (BRIDGE_TEST_ZAQAR_WS_URL)')
    return zaqar.ws_url


def test_push_wakes_an_idle_server(guest_url, project, transport, server,
                                   ws_url):
    # Polls 30 s apart: only the push can deliver a cast within seconds.
    url = guest_url(project, websocket_url=ws_url, **SLOW_POLL)
    endpoint = guestutil.Endpoint()
    srv = server(url, 'pushed', 'host-1', [endpoint])
    fetches = guestutil.Fetches(srv)
    assert guestutil.doorbell(srv).subscribed.wait(10)
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
    fetches = guestutil.Fetches(server(url, 'polled', 'host-1', [endpoint]))
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
    assert not guestutil.doorbell(srv).subscribed.is_set()


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


# What an idle guest costs, and a lost push --------------------------------

IDLE = 30   # seconds of counting


class Relay:
    """A TCP relay in front of the websocket zaqar-server.

    ``mute()`` drops what the server sends from then on (pushes are lost
    while the sockets stay up); ``close()`` closes the relay and every
    socket through it (the websocket server is gone).
    """

    def __init__(self, port):
        self.target = port
        self.listening = socket.create_server(('127.0.0.1', 0))
        self.url = 'ws://127.0.0.1:%d' % self.listening.getsockname()[1]
        self.muted = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listening.accept()
            except OSError:
                return
            upstream = socket.create_connection(('127.0.0.1', self.target))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream),
                             daemon=True).start()
            threading.Thread(target=self._pump,
                             args=(upstream, client, self.muted),
                             daemon=True).start()

    @staticmethod
    def _pump(src, dst, muted=None):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if muted is None or not muted.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def mute(self):
        self.muted.set()

    def close(self):
        self.listening.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def ws_frames(monkeypatch):
    """The frames the driver sends to websocket zaqar-servers (requests
    such as subscription_create; ping/pong frames are not Zaqar
    requests and not counted)."""
    frames = []
    connect = push.websocket.create_connection

    def counting(*args, **kwargs):
        ws = connect(*args, **kwargs)
        send = ws.send

        def counted(payload, *a, **kw):
            frames.append(payload)
            return send(payload, *a, **kw)
        ws.send = counted
        return ws
    monkeypatch.setattr(push.websocket, 'create_connection', counting)
    return frames


def proxied_url(proxy, project, **query):
    query['project_id'] = project
    return 'zaqar://%s/?%s' % (parse.urlsplit(proxy.url).netloc,
                               parse.urlencode(query))


def test_an_idle_server_costs_almost_nothing_with_push(
        zaqar, project, server, ws_url, ws_frames, cleanups):
    # Two RPC servers with the default options, each through a proxy
    # counting its HTTP requests: one with push, one on a Zaqar without
    # a websocket server (nothing answers on the default port).
    pushed, polled = (bridgeutil.HttpProxy(zaqar.url) for _ in range(2))
    cleanups.callback(pushed.close)
    cleanups.callback(polled.close)
    srv = server(proxied_url(pushed, project, websocket_url=ws_url),
                 'idle', 'host-1', [guestutil.Endpoint()])
    fetches = guestutil.Fetches(srv)
    server(proxied_url(polled, project + '-p'), 'idle', 'host-1',
           [guestutil.Endpoint()])
    assert guestutil.doorbell(srv).subscribed.wait(10)
    fetches.wait_idle(pushing=True)    # read its queues once subscribed
    listener = srv.listener._poll_style_listener
    roll_call, = listener.roll_calls.values()
    bridgeutil.wait_until(lambda: roll_call.next_duty() > time.monotonic(),
                          what='the roll call answered')
    before = len(pushed.requests), len(polled.requests), len(ws_frames)
    time.sleep(IDLE)   # counting requests over a fixed idle period
    with_push = len(pushed.requests) - before[0] + len(ws_frames) - before[2]
    without = len(polled.requests) - before[1]
    print('\nidle RPC server over %d s: %d Zaqar requests with push '
          '(%s), %d without (%.1f/s)' % (
              IDLE, with_push, pushed.requests[before[0]:], without,
              without / IDLE))
    # The goal: at most 0.1 request a second with push.
    assert with_push <= IDLE * 0.1
    # Without push the same server polls its four queues, ~4 times a
    # second each.
    assert without > IDLE * 4


def test_a_lost_push_costs_latency_not_the_message(
        zaqar, guest_url, project, transport, server, ws_url):
    relay = Relay(zaqar.ws_port)
    # Safety-net polls 2 s apart while push works.
    url = guest_url(project, websocket_url=relay.url, push_poll_interval=2)
    endpoint = guestutil.Endpoint()
    srv = server(url, 'lossy', 'host-1', [endpoint])
    fetches = guestutil.Fetches(srv)
    assert guestutil.doorbell(srv).subscribed.wait(10)
    seen = fetches.wait_idle(pushing=True)
    rpc = guestutil.client(transport, url, 'lossy')
    rpc.cast({}, 'note', value='pushed')
    assert endpoint.received.get(timeout=15)[:2] == ('note', 'pushed')
    seen = fetches.wait_idle(after=seen, pushing=True)
    # Pushes lost, the socket up: the safety-net poll finds the cast.
    relay.mute()
    rpc.cast({}, 'note', value='muted')
    assert endpoint.received.get(timeout=30)[:2] == ('note', 'muted')
    assert guestutil.doorbell(srv).subscribed.is_set()    # it was not a push
    seen = fetches.wait_idle(after=seen, pushing=True)
    # The websocket server gone: polling as without push, at once.
    relay.close()
    bell = guestutil.doorbell(srv)
    bridgeutil.wait_until(lambda: not bell.subscribed.is_set(),
                          what='push given up')
    for value in range(3):
        rpc.cast({}, 'note', value=value)
        assert endpoint.received.get(timeout=15)[:2] == ('note', value)
    assert rpc.call({}, 'echo', value='polled')['echo'] == 'polled'
    assert not guestutil.doorbell(srv).subscribed.is_set()
