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
  subscribes the same way (:meth:`Client.create_subscription`, the
  doorbell's start-up pass).

The bridge's Zaqar adapter (bridge/zaqar/client.py) and the guest driver
(bridge/drivers/zaqar/transport.py) both build on it; it imports nothing
of either.
"""

import functools
import http.client
import json
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
        endpoint (:meth:`_post_direct`).  Errors: zaqarclient's for an
        HTTP error status, requests' for the network (as with ``post``).
        """
        return self._post('/queues/%s/messages' % parse.quote(
            queue_name, safe=''), data)[0]

    def create_subscription(self, queue_name, subscription):
        """Subscribe to queue ``queue_name``: the request (and errors) of
        zaqarclient's ``subscription_create``, sent as :meth:`post_json`
        sends (about a quarter of zaqarclient's CPU).  ``subscription``:
        ``{"subscriber", "ttl", "options"}``.  Returns the subscription's
        id (Zaqar answers a repeated create with the existing one)."""
        status, text = self._post('/queues/%s/subscriptions' % parse.quote(
            queue_name, safe=''), json.dumps(subscription))
        try:
            return json.loads(text)['subscription_id']
        except (ValueError, KeyError, TypeError):
            return None

    def _post(self, path, data):
        """POST JSON text ``data`` to ``path`` (under /v2); (status, the
        answer's text) for a 2xx, else raise as :meth:`post_json` says."""
        req, trans = self._request_and_transport()
        url = '%s/v%d%s' % (req.endpoint.rstrip('/'), int(self.api_version),
                            path)
        if isinstance(data, str):
            data = data.encode('utf-8')
        client = trans.client
        headers = dict(client.session.headers)
        headers.update(req.headers)
        headers['content-type'] = 'application/json'
        if self._direct(client.session, req.endpoint, url):
            status, text = self._post_direct(url, headers, data)
        else:
            verify = (req.cert or True) if req.verify else False
            resp = client.request('POST', url=url, headers=headers,
                                  data=data, verify=verify)
            status, text = resp.status_code, resp.text
        if 200 <= status < 300:
            return status, text
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
        """Can ``url`` be posted to directly (:meth:`_post_direct`)?"""
        if not url.startswith('http://') or session.proxies:
            return False
        direct = self._no_proxy.get(endpoint)
        if direct is None:   # the environment is read once per endpoint
            direct = not (session.trust_env and
                          requests_utils.get_environ_proxies(url))
            self._no_proxy[endpoint] = direct
        return direct

    def _post_direct(self, url, headers, data):
        """POST ``data`` to ``url`` (http://) on this thread's connection.

        The connection is kept open between posts (a server that closes
        it, e.g. gunicorn's sync workers, makes http.client reconnect on
        the next one).  A kept connection the server closed meanwhile
        fails at once; the post is then sent again once, on a new
        connection (at most a duplicate, as any retried post).
        """
        split = parse.urlsplit(url)
        conns = self._direct_conns.by_netloc
        conn = conns.get(split.netloc)
        if conn is None:
            conn = conns[split.netloc] = http.client.HTTPConnection(
                split.hostname, split.port, timeout=(
                    socket._GLOBAL_DEFAULT_TIMEOUT if self._timeout is None
                    else self._timeout))
        headers.pop('Accept-Encoding', None)  # http.client decodes none
        path = split.path
        kept = conn.sock is not None
        while True:
            try:
                conn.request('POST', path, body=data, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
            except _STALE as exc:
                conn.close()
                if kept:
                    kept = False
                    continue
                raise requests.exceptions.ConnectionError(exc)
            except TimeoutError as exc:      # socket.timeout
                conn.close()
                raise requests.exceptions.Timeout(exc)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise requests.exceptions.ConnectionError(exc)
            return resp.status, text.decode('utf-8', 'replace')

    def queue(self, ref, **kwargs):
        kwargs.setdefault('auto_create', False)
        return super().queue(ref, **kwargs)
