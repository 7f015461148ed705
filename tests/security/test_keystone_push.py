"""Zaqar push for a Keystone guest: real Keystone, keystone-auth zaqar-servers.

The ``zaqar_keystone`` fixture runs the HTTP zaqar-server and a websocket
one on the same storage, both with auth_strategy = keystone.  A guest
with auth_strategy = keystone (the tenant's user and password in its
transport URL) authenticates its push sockets with its session's token.
Polls are 30 s apart and the safety net 60 s, so a cast that arrives
within seconds was pushed; the control tests show that, without a
working push, the same cast does not.
"""

import contextlib
import json
import queue
import time
from urllib import parse

import oslo_messaging
import pytest
import websocket

from bridge.drivers.zaqar import push_auth
from tests.fixtures import servers
from tests.functional import guestutil

pytestmark = pytest.mark.functional

SLOW_POLL = {'poll_interval_min': 30, 'poll_interval_max': 30,
             'push_poll_interval': 60}
PROMPTLY = 10   # seconds: well below any poll (27 s at the earliest)


def guest_url(zaqar, keystone, tenant, **query):
    """A Keystone guest of ``tenant``: its user and password in the URL."""
    query = dict(SLOW_POLL, auth_url=keystone.url, project_id=tenant.id,
                 **query)
    return 'zaqar://%s:%s@%s/?%s' % (
        tenant.user, tenant.password, parse.urlsplit(zaqar.url).netloc,
        parse.urlencode(query))


@pytest.fixture
def guest(cleanups):
    """``guest(url, topic)``: an RPC server (endpoint guestutil.Endpoint)
    and a client of its topic on the same transport URL."""
    def start(url, topic):
        endpoint = guestutil.Endpoint()
        srv, transport = guestutil.guest_server(url, topic, 'host-1',
                                                endpoint, None)
        cleanups.callback(guestutil.stop, srv, transport)
        rpc = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic),
            timeout=guestutil.TIMEOUT)
        return srv, rpc, endpoint
    return start


@pytest.fixture
def cleanups():
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def ws_url(zaqar_keystone):
    return zaqar_keystone.ws_url


def test_keystone_guest_is_woken_by_push(zaqar_keystone, keystone, guest,
                                         ws_url):
    a = keystone.tenants['a']
    url = guest_url(zaqar_keystone, keystone, a, websocket_url=ws_url)
    srv, rpc, endpoint = guest(url, servers.unique_name('kspush'))
    fetches = guestutil.Fetches(srv)
    bell = guestutil.doorbell(srv)
    assert isinstance(bell.auth, push_auth.Keystone)
    assert bell.subscribed.wait(15)
    seen = fetches.wait_idle(pushing=True)   # then 60 s without a poll
    for value in range(3):
        start = time.monotonic()
        rpc.cast({}, 'note', value=value)
        assert endpoint.received.get(timeout=PROMPTLY)[:2] == ('note',
                                                               value)
        print('cast %d delivered by push in %.3f s'
              % (value, time.monotonic() - start))
        seen = fetches.wait_idle(after=seen)
    assert bell.subscribed.is_set()    # push still up


def test_without_authenticate_the_keystone_websocket_refuses(
        zaqar_keystone, keystone, guest, ws_url, monkeypatch):
    # The control: the same guest, its sockets sending no authenticate
    # (as push.py did before it knew Keystone): Zaqar answers 403 to the
    # subscriptions, there is no push, and the cast waits for the poll.
    a = keystone.tenants['a']
    monkeypatch.setattr(push_auth.Keystone, 'login',
                        lambda self: push_auth.Login(a.id))
    url = guest_url(zaqar_keystone, keystone, a, websocket_url=ws_url)
    srv, rpc, endpoint = guest(url, servers.unique_name('kspush'))
    cast_waits_for_the_poll(srv, rpc, endpoint)
    assert not guestutil.doorbell(srv).subscribed.is_set()


def cast_waits_for_the_poll(srv, rpc, endpoint):
    """A cast to a guest without push is not there promptly, and no read
    was made meanwhile; it was there all along: waking the poller
    delivers it."""
    fetches = guestutil.Fetches(srv)
    seen = fetches.wait_idle()
    rpc.cast({}, 'note', value='polled')
    with pytest.raises(queue.Empty):
        endpoint.received.get(timeout=PROMPTLY)
    assert len(fetches.done) == seen    # no read meanwhile
    fetches.ring()
    assert endpoint.received.get(timeout=20)[:2] == ('note', 'polled')


def test_without_a_websocket_server_the_cast_waits(zaqar_keystone, keystone,
                                                   guest):
    port, = servers.free_ports(1)
    a = keystone.tenants['a']
    url = guest_url(zaqar_keystone, keystone, a,
                    websocket_url='ws://127.0.0.1:%d' % port)
    srv, rpc, endpoint = guest(url, servers.unique_name('kspush'))
    cast_waits_for_the_poll(srv, rpc, endpoint)


@pytest.fixture
def catalog_entry(keystone, ws_url):
    """The websocket zaqar-server in Keystone's catalog (removed after)."""
    service = keystone.api('POST', '/services', json={'service': {
        'type': push_auth.SERVICE_TYPE, 'name': 'zaqar-websocket'}})
    service_id = service['service']['id']
    try:
        keystone.api('POST', '/endpoints', json={'endpoint': {
            'service_id': service_id, 'interface': 'public',
            'region_id': 'RegionOne', 'url': ws_url}})
        yield ws_url
    finally:
        keystone.api('DELETE', '/services/%s' % service_id,
                     expect=(204, 404))


def test_auto_finds_the_websocket_in_the_catalog(zaqar_keystone, keystone,
                                                 guest, catalog_entry):
    # websocket_url = auto (the default): the guessed port 9000 is not
    # this server's; the catalog names it.
    b = keystone.tenants['b']
    srv, rpc, endpoint = guest(guest_url(zaqar_keystone, keystone, b),
                               servers.unique_name('kspush'))
    fetches = guestutil.Fetches(srv)
    bell = guestutil.doorbell(srv)
    assert bell.subscribed.wait(15)
    assert bell.url == catalog_entry
    fetches.wait_idle(pushing=True)
    rpc.cast({}, 'note', value='catalog')
    assert endpoint.received.get(timeout=PROMPTLY)[:2] == ('note',
                                                           'catalog')


# The websocket server's side of isolation, frame by frame ----------------

class Socket:
    """A raw websocket to the zaqar-server: request, answer."""

    def __init__(self, url, project):
        self.ws = websocket.create_connection(url, timeout=10)
        self.headers = {'Client-ID': servers.unique_name('c'),
                        'X-Project-ID': project}

    def request(self, action, body=None, **headers):
        self.ws.send(json.dumps({'action': action, 'body': body or {},
                                 'headers': dict(self.headers, **headers)}))
        while True:
            frame = json.loads(self.ws.recv())
            if 'request' in frame:
                return frame['headers']['status'], frame['body']

    def authenticate(self, token):
        return self.request('authenticate', **{'X-Auth-Token': token})[0]

    def subscribe(self, queue, project=None):
        extra = {'X-Project-ID': project} if project else {}
        return self.request('subscription_create',
                            {'queue_name': queue, 'ttl': 300}, **extra)[0]

    def pushes(self, seconds):
        """The queue names of what is pushed within ``seconds``."""
        self.ws.settimeout(seconds)
        names = []
        try:
            while True:
                names.append(json.loads(self.ws.recv()).get('queue_name'))
        except websocket.WebSocketTimeoutException:
            return names

    def close(self):
        self.ws.close()


@pytest.fixture
def sockets(ws_url):
    opened = []

    def open_(project):
        sock = Socket(ws_url, project)
        opened.append(sock)
        return sock
    yield open_
    for sock in opened:
        sock.close()


def token(keystone, tenant):
    return keystone.tenant_session(tenant).get_token()


def test_no_subscription_without_a_valid_token(keystone, sockets):
    a = keystone.tenants['a']
    sock = sockets(a.id)
    assert sock.subscribe('q') == 403           # not authenticated yet
    assert sock.authenticate('not-a-token') == 401
    assert sock.subscribe('q') == 403
    assert sock.authenticate(token(keystone, a)) == 200
    assert sock.subscribe('q') == 201


def test_a_token_subscribes_to_its_own_projects_queues_only(
        zaqar_keystone, keystone, sockets):
    a, b = keystone.tenants['a'], keystone.tenants['b']
    queue_name = servers.unique_name('shared-name')
    # A's token naming B's project, in authenticate and after it.
    sock = sockets(b.id)
    assert sock.authenticate(token(keystone, a)) == 200
    assert sock.subscribe(queue_name) == 403
    assert sock.subscribe(queue_name, project=a.id) == 201
    # Subscribed in A's project: B's post to a queue of the same name is
    # not pushed to it, A's is.
    for tenant in (b, a):
        zaqar_keystone.tenant_client(tenant).queue(queue_name).post(
            [{'ttl': 300, 'body': {'from': tenant.name}}])
    assert sock.pushes(3) == [queue_name]
