"""bridge/zaqar_http.py's post_json and create_subscription: the requests
zaqarclient sends, and their errors, against a stub HTTP server."""

import http.server
import json
import threading
import time

import pytest
import requests
from zaqarclient.transport import errors as zerrors

from bridge.translate import to_zaqar
from bridge.zaqar import client as zaqar_client


class Stub(http.server.BaseHTTPRequestHandler):
    answers = []      # (status, body) to give, in turn
    seen = []         # (method, path, headers, body) received

    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.seen.append((self.command, self.path, dict(self.headers), body))
        status, answer = self.answers.pop(0)
        data = json.dumps(answer).encode() if not isinstance(
            answer, bytes) else answer
        self.send_response(status)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Stub)
    Stub.answers, Stub.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_port
    server.shutdown()
    server.server_close()


MESSAGES = [{'body': {'n': n, 'text': 'é'}, 'ttl': 60} for n in range(3)]


def test_post_json_sends_what_zaqarclient_posts(stub):
    Stub.answers = [(201, {'resources': ['/v2/queues/q/messages/1']})] * 2
    client = zaqar_client.noauth_client(stub, 'tenant-a')
    client.queue('q').post(MESSAGES)                    # zaqarclient's
    data = to_zaqar.post_data(
        to_zaqar.Outgoing('tenant-a', 'tenant-a', 'q', m, 'id')
        for m in MESSAGES)
    assert client.post_json('q', data) == 201           # ours
    (m1, path1, h1, body1), (m2, path2, h2, body2) = Stub.seen
    assert (m1, path1) == (m2, path2) == ('POST', '/v2/queues/q/messages')
    assert json.loads(body1) == json.loads(body2) == {'messages': MESSAGES}
    for key in ('X-Project-Id', 'Client-ID', 'content-type'):
        assert h1[key] == h2[key], key
    # Each message's size counts its share of the body.
    assert len(body2) <= sum(len(json.dumps(m)) + 2 for m in MESSAGES) + \
        to_zaqar.POST_OVERHEAD


@pytest.mark.parametrize('status,error,permanent', [
    (400, zerrors.MalformedRequest, True),
    (403, zerrors.ForbiddenError, True),
    (413, zerrors.MalformedRequest, True),      # zaqarclient: "success"
    (429, zerrors.TransportError, False),
    (500, zerrors.InternalServerError, False),
    (502, zerrors.TransportError, False),       # zaqarclient: "success"
    (503, zerrors.ServiceUnavailableError, False),
])
def test_post_json_errors(stub, status, error, permanent):
    Stub.answers = [(status, {'title': 'No', 'description': 'refused'})]
    client = zaqar_client.noauth_client(stub, 'tenant-a')
    with pytest.raises(error) as info:
        client.post_json('q', '{"messages": []}')
    assert isinstance(info.value, zaqar_client.PERMANENT_ERRORS) == permanent
    assert isinstance(info.value, zaqar_client.TRANSIENT_ERRORS)
    assert 'refused' in str(info.value)


def test_post_json_network_errors_are_requests_errors(stub):
    client = zaqar_client.noauth_client('http://127.0.0.1:1', 't')
    with pytest.raises(requests.ConnectionError):
        client.post_json('q', '{"messages": []}')


def test_post_json_through_a_proxy_goes_through_requests(stub, monkeypatch):
    # A proxy from the environment is honoured as requests would: the stub
    # stands in for the proxy and sees the absolute URL.
    monkeypatch.setenv('http_proxy', stub)
    monkeypatch.delenv('no_proxy', raising=False)
    monkeypatch.delenv('NO_PROXY', raising=False)
    Stub.answers = [(201, {'resources': []})]
    client = zaqar_client.noauth_client('http://zaqar.invalid:8888', 't')
    assert client.post_json('q', '{"messages": []}') == 201
    assert Stub.seen[0][1] == 'http://zaqar.invalid:8888/v2/queues/q/messages'


def test_create_subscription_sends_what_zaqarclient_sends(stub):
    from zaqarclient.queues.v2 import core as zcore
    Stub.answers = [(201, {'subscription_id': 'abc'})] * 2
    client = zaqar_client.noauth_client(stub, 'tenant-a')
    body = {'subscriber': 'http://127.0.0.1:9/', 'ttl': 3600,
            'options': {'post_headers': {'X-A': 'é'}}}
    req, trans = client._request_and_transport()
    zcore.subscription_create(trans, req, 'q 1', body)     # zaqarclient's
    assert client.create_subscription('q 1', body) == 'abc'   # ours
    (m1, path1, h1, body1), (m2, path2, h2, body2) = Stub.seen
    assert (m1, path1) == (m2, path2) == (
        'POST', '/v2/queues/q%201/subscriptions')
    assert json.loads(body1) == json.loads(body2) == body
    for key in ('X-Project-Id', 'Client-ID', 'content-type'):
        assert h1[key] == h2[key], key


def test_create_subscription_errors(stub):
    Stub.answers = [(403, {'title': 'No', 'description': 'refused'})]
    client = zaqar_client.noauth_client(stub, 'tenant-a')
    with pytest.raises(zerrors.ForbiddenError):
        client.create_subscription('q', {'subscriber': 'http://x/'})


def test_shared_clients_read_the_proxy_environment_once(stub, monkeypatch):
    shared = zaqar_client.noauth_client(stub, 'own')
    Stub.answers = [(201, {'subscription_id': 'a'})] * 3
    reads = []
    real = zaqar_client.zaqar_http.requests_utils.get_environ_proxies
    monkeypatch.setattr(zaqar_client.zaqar_http.requests_utils,
                        'get_environ_proxies',
                        lambda *a, **k: reads.append(1) or real(*a, **k))
    for project in ('t1', 't2', 't3'):
        client = zaqar_client.noauth_client(stub, project, shared=shared)
        client.create_subscription('q', {'subscriber': 'http://x/'})
    assert len(reads) == 1
    assert [s[2]['X-Project-Id'] for s in Stub.seen] == ['t1', 't2', 't3']


class KeepAlive(Stub):
    """An HTTP/1.1 stub: keeps the connection open unless ``close_after``
    says to drop it (without telling) after that many requests."""

    protocol_version = 'HTTP/1.1'
    close_after = None
    peers = []        # the client's address of each request

    def do_POST(self):
        self.peers.append(self.client_address)
        super().do_POST()
        if self.close_after is not None and len(self.peers) >= \
                self.close_after:
            self.close_connection = True


@pytest.fixture
def keep_alive():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), KeepAlive)
    KeepAlive.answers, KeepAlive.seen, KeepAlive.peers = [], [], []
    KeepAlive.close_after = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_port
    server.shutdown()
    server.server_close()


def test_post_json_keeps_one_connection_for_all_clients(keep_alive):
    KeepAlive.answers = [(201, {'resources': []})] * 3
    shared = zaqar_client.noauth_client(keep_alive, 'a')
    for project in ('a', 'b', 'c'):
        client = zaqar_client.noauth_client(keep_alive, project,
                                            shared=shared)
        assert client.post_json('q', '{"messages": []}') == 201
    assert len(KeepAlive.peers) == 3
    assert len(set(KeepAlive.peers)) == 1
    assert [h['X-Project-Id'] for _, _, h, _ in KeepAlive.seen] == \
        ['a', 'b', 'c']


def test_post_json_sends_again_when_a_kept_connection_was_closed(
        keep_alive):
    # The server drops the connection after the first answer, without a
    # "Connection: close": the second post finds it closed and goes again
    # on a new one, once.
    KeepAlive.close_after = 1
    KeepAlive.answers = [(201, {'resources': []})] * 2
    client = zaqar_client.noauth_client(keep_alive, 't')
    assert client.post_json('q', '{"messages": [1]}') == 201
    assert client.post_json('q', '{"messages": [2]}') == 201
    assert [b for _, _, _, b in KeepAlive.seen] == [
        b'{"messages": [1]}', b'{"messages": [2]}']
    assert len(set(KeepAlive.peers)) == 2


class Held(Stub):
    """A stub that holds its answer until ``release`` is set."""

    release = threading.Event()

    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.seen.append((self.command, self.path, dict(self.headers), body))
        self.release.wait(10)
        self.send_response(201)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'{}')


def wait_for(check, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


def test_post_json_start_sends_now_and_reads_the_answer_later():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Held)
    Held.seen, Held.release = [], threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = zaqar_client.noauth_client(
            'http://127.0.0.1:%d' % server.server_port, 't')
        posting = client.post_json_start('q', '{"messages": [1]}')
        # The server has the post; its answer is not there yet.
        wait_for(lambda: Held.seen)
        assert Held.seen[0][3] == b'{"messages": [1]}'
        assert not posting.ready()
        Held.release.set()
        wait_for(posting.ready)
        assert posting.result() == 201
    finally:
        Held.release.set()
        server.shutdown()
        server.server_close()


def test_post_json_start_network_errors_come_with_the_result():
    client = zaqar_client.noauth_client('http://127.0.0.1:1', 't')
    posting = client.post_json_start('q', '{"messages": []}')
    assert posting.ready()
    with pytest.raises(requests.ConnectionError):
        posting.result()
