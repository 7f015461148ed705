"""The frames the push doorbell sends, against a scripted websocket server.

:class:`FakeZaqar` answers as zaqar/transport/websocket/protocol.py does:
with auth on, every frame but ``authenticate`` gets 403 until a token is
accepted (401 for a bad one), and from then on ``X-Project-ID`` must be
the token's project; without auth, ``authenticate`` drops the socket.
"""

import datetime
import json
import logging
import queue
import threading
import time

from keystoneauth1 import access
from keystoneauth1 import fixture
from keystoneauth1 import plugin
from keystoneauth1 import session as ks_session
import pytest

from bridge.drivers.zaqar import push
from bridge.drivers.zaqar import push_auth
from tests.unit.test_driver_options import driver

QUEUES = ('q1', 'q2')


class FakeSocket:
    def __init__(self, server, url):
        self.server = server
        self.url = url
        self.sent = []          # decoded frames
        self.inbox = queue.Queue()
        self.project = None     # authenticated as
        self.closed = False

    def settimeout(self, timeout):
        self.timeout = timeout

    def send(self, payload):
        frame = json.loads(payload)
        self.sent.append(frame)
        self.server.answer(self, frame)

    def recv(self):
        try:
            frame = self.inbox.get(timeout=0.05)
        except queue.Empty:
            raise push.websocket.WebSocketTimeoutException('timed out')
        if frame is None:
            raise push.websocket.WebSocketConnectionClosedException('gone')
        return frame

    def reply(self, frame, status, body=None):
        self.inbox.put(json.dumps({
            'request': {'action': frame['action'],
                        'body': frame.get('body', {}),
                        'headers': frame.get('headers')},
            'body': body or {}, 'headers': {'status': status}}))

    def close(self, timeout=None):
        self.closed = True

    abort = close


class FakeZaqar:
    """``tokens``: token -> project, or None for a server without auth."""

    def __init__(self, tokens=None):
        self.tokens = tokens
        self.sockets = []
        self.connected = threading.Condition()

    def connect(self, url, timeout=None):
        sock = FakeSocket(self, url)
        with self.connected:
            self.sockets.append(sock)
            self.connected.notify_all()
        return sock

    def answer(self, sock, frame):
        headers = frame.get('headers') or {}
        if frame['action'] == 'authenticate':
            if self.tokens is None:
                sock.inbox.put(None)    # TypeError in the server: dropped
                return
            project = self.tokens.get(headers.get('X-Auth-Token'))
            if project is None:
                return sock.reply(frame, 401,
                                  {'error': 'Authentication failed.'})
            sock.project = project
            return sock.reply(frame, 200, {'message': 'Authentified.'})
        if self.tokens is not None and (
                sock.project is None
                or headers.get('X-Project-ID') != sock.project):
            return sock.reply(frame, 403, {'error': 'Not authenticated.'})
        sock.reply(frame, 201, {'subscription_id': 'sub'})

    def wait_sockets(self, count, timeout=5):
        with self.connected:
            assert self.connected.wait_for(
                lambda: len(self.sockets) >= count, timeout), self.sockets
        return self.sockets


class FakeAuth:
    """Logins handed out in turn (the last one again and again)."""

    def __init__(self, *logins):
        self.logins = list(logins)
        self.refusals = 0

    def login(self):
        return self.logins.pop(0) if len(self.logins) > 1 else self.logins[0]

    def refused(self):
        self.refusals += 1


@pytest.fixture
def zaqar(monkeypatch):
    def serve(tokens=None):
        server = FakeZaqar(tokens)
        monkeypatch.setattr(push.websocket, 'create_connection',
                            server.connect)
        return server
    return serve


@pytest.fixture
def doorbells():
    started = []

    def start(auth, ttl=3600, url='ws://zaqar:9000'):
        rings = queue.Queue()
        bell = push.PushDoorbell(url, auth, QUEUES,
                                 lambda q, body: rings.put((q, body)), ttl)
        bell.rings = rings
        started.append(bell)
        return bell
    yield start
    for bell in started:
        bell.stop()


def actions(sock):
    return [(f['action'], (f.get('body') or {}).get('queue_name'))
            for f in sock.sent]


def test_keystone_authenticates_first_then_subscribes(zaqar, doorbells):
    server = zaqar({'tok-1': 'proj-a'})
    bell = doorbells(FakeAuth(push_auth.Login('proj-a', 'tok-1', 3600.0)))
    assert bell.subscribed.wait(5)
    sock, = server.sockets
    assert actions(sock) == [('authenticate', None),
                             ('subscription_create', 'q1'),
                             ('subscription_create', 'q2')]
    auth_headers = sock.sent[0]['headers']
    assert auth_headers['X-Auth-Token'] == 'tok-1'
    assert auth_headers['X-Project-ID'] == 'proj-a'
    client_id = auth_headers['Client-ID']
    for frame in sock.sent[1:]:
        # The token goes in authenticate only; every frame names the
        # token's project and the socket's client id.
        assert frame['headers'] == {'Client-ID': client_id,
                                    'X-Project-ID': 'proj-a'}
        assert frame['body']['ttl'] == 3600
    assert bell.rings.get(timeout=1) == (None, None)


def test_subscriptions_wait_for_the_authenticate_answer(zaqar, doorbells):
    server = zaqar({'tok-1': 'proj-a'})
    answer = server.answer
    held = []

    def hold_authenticate(sock, frame):
        if frame['action'] == 'authenticate':
            held.append((sock, frame))
        else:
            answer(sock, frame)
    server.answer = hold_authenticate
    bell = doorbells(FakeAuth(push_auth.Login('proj-a', 'tok-1', 3600.0)))
    sock, = server.wait_sockets(1)
    time.sleep(0.3)
    assert actions(sock) == [('authenticate', None)]
    answer(*held[0])
    assert bell.subscribed.wait(5)
    assert [a for a, _ in actions(sock)].count('subscription_create') == 2


def test_noauth_sends_no_authenticate(zaqar, doorbells):
    server = zaqar(None)   # authenticate would drop the socket
    bell = doorbells(push_auth.Project('proj-n'))
    assert bell.subscribed.wait(5)
    sock, = server.sockets
    assert actions(sock) == [('subscription_create', 'q1'),
                             ('subscription_create', 'q2')]
    assert {f['headers']['X-Project-ID'] for f in sock.sent} == {'proj-n'}


def test_a_refused_token_is_dropped_and_a_new_one_used(zaqar, doorbells):
    server = zaqar({'tok-2': 'proj-a'})
    auth = FakeAuth(push_auth.Login('proj-a', 'revoked', 3600.0),
                    push_auth.Login('proj-a', 'tok-2', 3600.0))
    bell = doorbells(auth)
    assert bell.subscribed.wait(5)
    first, second = server.sockets
    # Refused: nothing subscribed on that socket, the session's token
    # invalidated, a new socket with the new token.
    assert actions(first) == [('authenticate', None)]
    assert first.closed
    assert auth.refusals == 1
    assert second.sent[0]['headers']['X-Auth-Token'] == 'tok-2'
    assert len(actions(second)) == 3


def test_another_projects_queues_are_refused(zaqar, doorbells):
    # A token of proj-a naming proj-b: Zaqar answers 403, no push.
    server = zaqar({'tok-a': 'proj-a'})
    bell = doorbells(FakeAuth(push_auth.Login('proj-b', 'tok-a', 3600.0)))
    server.wait_sockets(2)   # refused, then retried
    assert not bell.subscribed.is_set()
    assert actions(server.sockets[0])[0] == ('authenticate', None)


def test_reopened_with_a_new_token_before_it_expires(zaqar, doorbells):
    server = zaqar({'tok-1': 'proj-a', 'tok-2': 'proj-a'})
    # tok-1 expires in 2 s: renewed after half of that (the margin is at
    # most half the token's life), with the token the session gives then.
    auth = FakeAuth(push_auth.Login('proj-a', 'tok-1', 2.0),
                    push_auth.Login('proj-a', 'tok-2', 3600.0))
    bell = doorbells(auth)
    assert bell.subscribed.wait(5)
    started = time.monotonic()
    first, second = server.wait_sockets(2)
    assert 0.5 < time.monotonic() - started < 3
    assert bell.rings.get(timeout=1) == (None, None)   # subscribed
    assert bell.rings.get(timeout=5) == (None, None)   # lost: poll
    assert bell.rings.get(timeout=5) == (None, None)   # subscribed again
    assert bell.subscribed.is_set()
    assert first.closed
    assert second.sent[0]['headers']['X-Auth-Token'] == 'tok-2'
    assert len(actions(second)) == 3


@pytest.mark.parametrize('catalog_url, level', [
    (None, logging.INFO),                  # the guess: may be nothing there
    ('ws://cat:9000', logging.WARNING),    # the catalog's: should answer
])
def test_a_guessed_url_fails_quietly(monkeypatch, doorbells, caplog,
                                     catalog_url, level):
    urls = []

    def refuse(url, timeout=None):
        urls.append(url)
        raise ConnectionRefusedError('refused')
    monkeypatch.setattr(push.websocket, 'create_connection', refuse)
    caplog.set_level(logging.DEBUG, logger=push.__name__)
    login = push_auth.Login('p', 't', 3600.0, catalog_url)
    bell = push.PushDoorbell('ws://guess:9000', FakeAuth(login), QUEUES,
                             lambda q, body: None, 3600, quiet=True)
    try:
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        bell.stop()
    assert urls[0] == (catalog_url or 'ws://guess:9000')
    assert caplog.records[0].levelno == level


@pytest.mark.parametrize('lifetime, renew_in', [
    (None, None), (3600.0, 3540.0), (100.0, 50.0)])
def test_renewal_time(lifetime, renew_in):
    assert push_auth.Login('p', 't', lifetime).renew_in() == renew_in


# push_auth.Keystone and the driver ------------------------------------------

def access_info(token='tok', project='proj-k', catalog_url=None,
                lifetime=3600):
    expires = (datetime.datetime.now(datetime.timezone.utc)
               + datetime.timedelta(seconds=lifetime))
    body = fixture.V3Token(project_id=project, expires=expires)
    if catalog_url:
        body.add_service('messaging-websocket').add_standard_endpoints(
            public=catalog_url)
    return access.create(body=body, auth_token=token)


class FixedAccess(plugin.BaseAuthPlugin):
    def __init__(self, *accesses):
        super().__init__()
        self.accesses = list(accesses)
        self.invalidated = 0

    def get_access(self, session):
        return self.accesses[0]

    def invalidate(self):
        self.invalidated += 1
        self.accesses.pop(0)
        return True


def test_keystone_login_is_the_sessions_token():
    auth = FixedAccess(access_info('tok-1', catalog_url='ws://cat:9000'),
                       access_info('tok-2'))
    keystone = push_auth.Keystone(ks_session.Session(auth=auth))
    login = keystone.login()
    assert (login.project, login.token, login.url) == ('proj-k', 'tok-1',
                                                       None)
    assert 3590 < login.lifetime <= 3600
    keystone.refused()
    assert auth.invalidated == 1
    assert keystone.login().token == 'tok-2'


def test_keystone_login_reads_the_catalog_when_asked():
    session = ks_session.Session(auth=FixedAccess(
        access_info(catalog_url='ws://cat:9000')))
    assert push_auth.Keystone(session, catalog=True).login().url == \
        'ws://cat:9000'
    session = ks_session.Session(auth=FixedAccess(access_info()))
    assert push_auth.Keystone(session, catalog=True).login().url is None


@pytest.mark.parametrize('opts, catalog_url, expected', [
    ({}, 'ws://cat:9100', 'ws://cat:9100'),    # auto: the catalog wins
    ({}, None, 'ws://zq:9000'),                # auto: else the guess
    ({'websocket_url': 'ws://set:9200'}, 'ws://cat:9100', 'ws://set:9200'),
])
def test_keystone_driver_authenticates_its_sockets(zaqar, opts,
                                                   catalog_url, expected):
    server = zaqar({'tok-d': 'proj-k'})
    drv = driver('zaqar://u:pw@zq:8888/', auth_url='http://k/v3',
                 project_name='proj', **opts)
    drv.zaqar.session.auth = FixedAccess(access_info(
        'tok-d', catalog_url=catalog_url))
    bell = drv.doorbell(['q'], lambda q, body: None, 'test-push')
    try:
        assert bell.subscribed.wait(5)
    finally:
        bell.stop()
    sock, = server.sockets
    assert sock.url == expected
    assert sock.sent[0]['headers']['X-Auth-Token'] == 'tok-d'
    assert sock.sent[1]['headers']['X-Project-ID'] == 'proj-k'


def test_noauth_driver_names_its_project(zaqar):
    server = zaqar(None)
    drv = driver('zaqar://proj-n@zq:8888/')
    bell = drv.doorbell(['q'], lambda q, body: None, 'test-push')
    try:
        assert bell.subscribed.wait(5)
    finally:
        bell.stop()
    assert isinstance(bell.auth, push_auth.Project)
    assert actions(server.sockets[0]) == [('subscription_create', 'q')]
