"""One python-zaqarclient client that reuses its connection (no config).

python-zaqarclient builds a new transport (and ``requests`` session) for
every call.  :class:`Client` keeps the first one, so connections are
reused, and:

* gives every request a timeout (zaqarclient sends with none, and a hung
  server would hang the caller with it);
* keeps ``pool_size`` connections open per host (None: requests' default)
  for zaqarclient's requests (post_json keeps one per thread);
* drops the session's token on a 401 (revoked or expired early), so the
  next request authenticates again;
* never PUTs a queue before using it (Zaqar v2 creates queues on first
  post);
* posts messages already serialised (:meth:`Client.post_json`): the
  request ``queue(name).post(messages)`` sends, without zaqarclient's and
  requests' per-call work (see there); to a plain ``http://`` endpoint
  they go over one keep-alive ``http.client`` connection per thread;
  :meth:`Client.post_json_start` sends such a post and leaves its answer
  to be read later (the forward path reads its next deliveries
  meanwhile); subscribes the same way (:meth:`Client.create_subscription`,
  the doorbell's start-up pass).

The bridge's Zaqar adapter (bridge/zaqar/client.py) and the guest driver
(bridge/drivers/zaqar/transport.py) both build on it; it imports nothing
of either.
"""

import functools
import http.client
import json
import select
import socket
import threading
from urllib import parse

import requests
from requests import adapters
from requests import utils as requests_utils
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

# A kept-alive connection the server closed while it was idle.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError,
          BrokenPipeError)

# Errors that mean "this request can never succeed as it is".
PERMANENT_ERRORS = (zerrors.MalformedRequest, zerrors.ForbiddenError,
                    zerrors.ResourceNotFound, zerrors.ConflictError)


class _Connections(threading.local):
    """One thread's keep-alive connections, per host:port."""

    def __init__(self):
        self.by_netloc = {}


class Client(zclient.Client):
    """A zaqarclient v2 Client that reuses one transport for everything."""

    def __init__(self, *args, request_timeout=None, pool_size=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self._timeout = request_timeout
        self._pool_size = pool_size
        self._transport = None
        self._lock = threading.Lock()
        # post_json's direct path: which endpoints no proxy applies to,
        # and each thread's connections.  A client that shares another's
        # transport shares these too (bridge/zaqar/client.py).
        self._no_proxy = {}   # endpoint -> no proxy applies
        self._direct_conns = _Connections()

    def _get_transport(self, request):
        with self._lock:
            if self._transport is None:
                transport = super()._get_transport(request)
                http = getattr(transport, 'client', None)
                if http is not None and self._pool_size:
                    pool = adapters.HTTPAdapter(
                        pool_connections=1, pool_maxsize=self._pool_size)
                    http.session.mount('http://', pool)
                    http.session.mount('https://', pool)
                if http is not None and self._timeout:
                    http.request = functools.partial(http.request,
                                                     timeout=self._timeout)
                transport.send = functools.partial(self._send,
                                                   transport.send)
                self._transport = transport
            return self._transport

    def _send(self, send, request):
        try:
            return send(request)
        except zerrors.UnauthorizedError:
            self._unauthorized()
            raise

    def _unauthorized(self):
        invalidate = getattr(self.session, 'invalidate', None)
        if invalidate is not None:
            invalidate()

    def post_json(self, queue_name, data):
        """Post messages serialised by the caller to queue ``queue_name``.

        ``data`` is the JSON text (str or bytes) of ``{"messages":
        [...]}``.  The same request as ``queue(queue_name).post(messages)``
        (headers, authentication, timeout, errors), without zaqarclient's
        work per call (a Request, a stevedore look-up of the API schema,
        ``json.dumps`` of the whole batch) and, to a plain ``http://``
        endpoint with no proxy, without requests' and urllib3's either
        (environment, cookies, pool, retries, a Response): the body goes
        over this thread's keep-alive ``http.client`` connection to the
        endpoint (:class:`Posting`).  Errors: zaqarclient's for an
        HTTP error status, requests' for the network (as with ``post``).
        """
        return self.post_json_start(queue_name, data).result()

    def post_json_start(self, queue_name, data):
        """:meth:`post_json`, sent now and answered later: a
        :class:`Posting` whose ``result()`` waits for the answer (and
        raises what :meth:`post_json` raises).

        Until then the thread can do other work; it must not send
        another request to the same endpoint before that ``result()``
        (one connection per thread and endpoint).  Where the post does
        not go directly (https, a proxy), it is made now, in full.
        """
        return self._start('/queues/%s/messages' % parse.quote(
            queue_name, safe=''), data, status_only=True)

    def create_subscription(self, queue_name, subscription):
        """Subscribe to queue ``queue_name``: the request (and errors) of
        zaqarclient's ``subscription_create``, sent as :meth:`post_json`
        sends (about a quarter of zaqarclient's CPU).  ``subscription``:
        ``{"subscriber", "ttl", "options"}``.  Returns the subscription's
        id (Zaqar answers a repeated create with the existing one)."""
        text = self._start('/queues/%s/subscriptions' % parse.quote(
            queue_name, safe=''), json.dumps(subscription)).result()
        try:
            return json.loads(text)['subscription_id']
        except (ValueError, KeyError, TypeError):
            return None

    def _start(self, path, data, status_only=False):
        """POST JSON text ``data`` to ``path`` (under /v2): a
        :class:`Posting` whose ``result()`` is the status (with
        ``status_only``) or the answer's text for a 2xx, else raises as
        :meth:`post_json` says.  Failing to prepare the request (e.g.
        Keystone) raises here."""
        req, trans = self._request_and_transport()
        url = '%s/v%d%s' % (req.endpoint.rstrip('/'), int(self.api_version),
                            path)
        if isinstance(data, str):
            data = data.encode('utf-8')
        client = trans.client
        headers = dict(client.session.headers)
        headers.update(req.headers)
        headers['content-type'] = 'application/json'
        posting = Posting(self, trans, status_only)
        if self._direct(client.session, req.endpoint, url):
            posting.send(self._connection(url), url, headers, data)
        else:
            verify = (req.cert or True) if req.verify else False
            try:
                resp = client.request('POST', url=url, headers=headers,
                                      data=data, verify=verify)
            except Exception as exc:
                posting.failed(exc)
            else:
                posting.answered(resp.status_code, resp.text)
        return posting

    def _answer(self, trans, status, text):
        """``text`` for a 2xx answer, else raise its zaqarclient error."""
        if 200 <= status < 300:
            return text
        error = trans.http_to_zaqar.get(status)
        if error is zerrors.UnauthorizedError:
            self._unauthorized()
        if error is None:
            # zaqarclient would take any other status for success; a post
            # that was not stored must not be: another 4xx can't succeed
            # as it is, anything else (429, 5xx, 3xx) may later.
            permanent = 400 <= status < 500 and status not in (408, 429)
            error = (zerrors.MalformedRequest if permanent
                     else zerrors.TransportError)
            text = 'HTTP %d: %s' % (status, text)
        try:
            body = json.loads(text)
            details = {'title': body['title'],
                       'description': body['description']}
        except (ValueError, KeyError, TypeError):
            details = {'text': text}
        raise error(**details)

    def _direct(self, session, endpoint, url):
        """Can ``url`` be posted to directly (:class:`Posting`)?"""
        if not url.startswith('http://') or session.proxies:
            return False
        direct = self._no_proxy.get(endpoint)
        if direct is None:   # the environment is read once per endpoint
            direct = not (session.trust_env and
                          requests_utils.get_environ_proxies(url))
            self._no_proxy[endpoint] = direct
        return direct

    def _connection(self, url):
        """This thread's keep-alive connection to ``url``'s host:port."""
        netloc = url.split('/', 3)[2]
        conns = self._direct_conns.by_netloc
        conn = conns.get(netloc)
        if conn is None:
            split = parse.urlsplit(url)
            conn = conns[netloc] = http.client.HTTPConnection(
                split.hostname, split.port, timeout=(
                    socket._GLOBAL_DEFAULT_TIMEOUT if self._timeout is None
                    else self._timeout))
        return conn

    def queue(self, ref, **kwargs):
        kwargs.setdefault('auto_create', False)
        return super().queue(ref, **kwargs)


class Posting:
    """One POST of :class:`Client`: sent, its answer read by
    :meth:`result`.

    A direct post goes over the thread's kept ``http.client``
    connection.  It is kept open between posts (a server that closes it,
    e.g. gunicorn's sync workers, makes http.client reconnect on the next
    one).  A kept connection the server closed meanwhile fails at once,
    on sending or on reading the answer; the post is then sent again
    once, on a new connection (at most a duplicate, as any retried post).
    """

    __slots__ = ('client', 'trans', 'status_only', 'conn', 'request',
                 'kept', 'status', 'text', 'error')

    def __init__(self, client, trans, status_only):
        self.client = client
        self.trans = trans
        self.status_only = status_only
        self.conn = self.request = None
        self.kept = False
        self.status = self.text = self.error = None

    def answered(self, status, text):
        self.status, self.text = status, text

    def failed(self, exc):
        self.error = exc

    def send(self, conn, url, headers, data):
        headers.pop('Accept-Encoding', None)  # http.client decodes none
        self.conn = conn
        self.request = ('POST', '/' + url.split('/', 3)[3], data, headers)
        self.kept = conn.sock is not None
        self._send()

    def _send(self):
        method, path, data, headers = self.request
        try:
            self.conn.request(method, path, body=data, headers=headers)
        except Exception as exc:
            self._network_error(exc)

    def ready(self):
        """Can :meth:`result` answer without waiting for the server?"""
        sock = self.conn.sock if self.conn is not None else None
        if sock is None or self.request is None:
            return True
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self):
        """Give the post up unread (its connection is closed)."""
        if self.request is not None:
            self.conn.close()
            self.request = None

    def result(self):
        """The status (``status_only``) or the 2xx answer's text; raises
        zaqarclient's error for an HTTP error, requests' for the
        network."""
        if self.request is not None:
            self._receive()
        if self.error is not None:
            raise self.error
        text = self.client._answer(self.trans, self.status, self.text)
        return self.status if self.status_only else text

    def _receive(self):
        try:
            while self.error is None:
                try:
                    resp = self.conn.getresponse()
                    text = resp.read()
                except Exception as exc:
                    self._network_error(exc)   # sent again, or the error
                    continue
                self.answered(resp.status, text.decode('utf-8', 'replace'))
                return
        finally:
            self.request = None

    def _network_error(self, exc):
        """Close the connection; send again once on a new one if a kept
        connection was found closed, else remember the error."""
        self.conn.close()
        if isinstance(exc, _STALE) and self.kept:
            self.kept = False
            self._send()
        elif isinstance(exc, _STALE):
            self.error = requests.exceptions.ConnectionError(exc)
        elif isinstance(exc, TimeoutError):       # socket.timeout
            self.error = requests.exceptions.Timeout(exc)
        elif isinstance(exc, (OSError, http.client.HTTPException)):
            self.error = requests.exceptions.ConnectionError(exc)
        else:
            self.error = exc
