"""Zaqar's websocket push as a doorbell for the ``zaqar://`` driver.

A websocket zaqar-server (sharing the HTTP one's storage; found as the
``websocket_url`` option says, push_url.py) rings a doorbell instead of
waiting for the next poll: each listener, and the reply waiter, opens one
socket and subscribes it to the queues it reads (``subscription_create``
without a subscriber: Zaqar pushes every message posted to them to the
socket, ~6 ms).  A push only wakes the poller; messages are still
claimed, popped and deleted over HTTP.  While push works the owner only
polls now and then as a safety net, so a lost push costs latency, never
a message; when the socket breaks (or never opens) the owner is rung and
polls as without push until it is back.  With Keystone the socket first
sends ``authenticate`` with the token of the driver's session
(push_auth.py), and is reopened with a new one before it expires.
zaqarclient's websocket transport takes the next frame for the answer to
a request (a push in between would do) and always authenticates (which a
server without auth refuses), so this speaks the raw frames with
websocket-client.
"""

import contextlib
import functools
import json
import logging
import math
import threading
import time
import uuid

try:
    import websocket  # websocket-client, only needed for websocket_url
except ImportError:  # pragma: no cover
    websocket = None

from bridge import backoff

LOG = logging.getLogger(__name__)


# Request actions whose answers the doorbell waits for.
AUTHENTICATE = 'authenticate'
SUBSCRIBE = 'subscription_create'


class PushError(Exception):
    """The websocket server refused or did not answer a request."""


class PushDoorbell:
    """Calls ``ring(queue, body)`` when Zaqar pushes a message of
    ``queues`` (``body``: the pushed message's body).

    One websocket to ``url`` and a daemon thread reading it.  ``auth``
    (push_auth.py) says, at each connection, which project the socket
    speaks for and with which Keystone token, if any: with a token the
    socket sends ``authenticate`` first and subscribes once it is
    accepted.  The socket subscribes to every queue
    (``subscription_create`` with no subscriber: Zaqar pushes to the
    socket itself); once all are subscribed ``ring(None, None)`` is
    called, so the owner polls for what was posted while the socket was
    down, and again when the subscriptions are lost (the owner then polls
    as without push).  The subscriptions are renewed by reopening the
    socket (Zaqar deletes a socket's subscriptions when it closes, and
    answers 409 to a second one), at ``0.8 * ttl`` or before the token
    expires, whichever comes first.  Errors are logged once,
    then the socket is reopened with a backoff until it works again;
    with ``quiet`` (a guessed URL, which may well have no server) the
    first one is logged at info level only, unless the URL came from
    the Keystone catalog.
    """

    CONNECT_TIMEOUT = 5.0
    RECV_TIMEOUT = 1.0
    ANSWER_TIMEOUT = 10.0
    RETRY_MIN = 0.5
    RETRY_MAX = 30.0
    RENEW_MIN = 1.0

    def __init__(self, url, auth, queues, ring, ttl, name='zaqar-push',
                 quiet=False):
        self.url = url  # the catalog's, when push_auth finds one there
        self._given_url = url
        self.quiet = quiet
        self.auth = auth
        self.queues = frozenset(queues)
        self.ring = ring
        self.ttl = ttl
        self.subscribed = threading.Event()  # set while push works
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._ws = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name)
        self._thread.start()

    def stop(self, wait=True):
        self._stopped.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.abort()  # wakes a blocked recv()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(self.CONNECT_TIMEOUT + 1)

    def _run(self):
        retry = backoff.Backoff(self.RETRY_MIN, self.RETRY_MAX)
        while not self._stopped.is_set():
            try:
                self._session()
                retry.reset()
            except Exception as exc:
                self._unsubscribed()
                if self._stopped.is_set():
                    break
                if not self._failing:
                    self._failing = True
                    # A catalog's URL is no guess.
                    quiet = self.quiet and self.url == self._given_url
                    LOG.log(logging.INFO if quiet else logging.WARNING,
                            'Zaqar push from %s does not work, polling '
                            'only until it does (retrying): %s',
                            self.url, backoff.error_text(exc))
                else:
                    LOG.debug('Zaqar push from %s still fails: %s',
                              self.url, backoff.error_text(exc))
                self._stopped.wait(retry.next())
        self.subscribed.clear()

    def _unsubscribed(self):
        """Push stopped: the owner polls as without it from now on."""
        if self.subscribed.is_set():
            self.subscribed.clear()
            if not self._stopped.is_set():
                self.ring(None, None)

    def _session(self):
        """Connect, authenticate, subscribe, read pushes until renewal
        time (or stop)."""
        login = self.auth.login()
        self.url = login.url or self._given_url
        ws = websocket.create_connection(self.url,
                                         timeout=self.CONNECT_TIMEOUT)
        with self._lock:
            self._ws = ws
        try:
            if self._stopped.is_set():
                return
            headers = {'Client-ID': str(uuid.uuid4()),
                       'X-Project-ID': login.project}
            subscribe = functools.partial(self._subscribe, ws, headers)
            if login.token is None:
                pending = subscribe()
            else:
                ws.send(json.dumps({'action': AUTHENTICATE, 'headers': dict(
                    headers, **{'X-Auth-Token': login.token})}))
                pending = {(AUTHENTICATE, None)}
            started = time.monotonic()
            renew_in = login.renew_in()
            renew_at = started + max(self.RENEW_MIN, min(
                self.ttl * 0.8, math.inf if renew_in is None else renew_in))
            ws.settimeout(self.RECV_TIMEOUT)
            while not self._stopped.is_set():
                now = time.monotonic()
                if now >= renew_at:
                    LOG.debug('Renewing the Zaqar push subscriptions of %s',
                              sorted(self.queues))
                    return
                if pending and now - started > self.ANSWER_TIMEOUT:
                    raise PushError('no answer to %s' % ', '.join(
                        sorted({action for action, _ in pending})))
                try:
                    frame = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if self._stopped.is_set():
                    return
                self._handle(frame, pending, subscribe)
        finally:
            self._unsubscribed()
            with self._lock:
                self._ws = None
            with contextlib.suppress(Exception):
                ws.close(timeout=1)

    def _subscribe(self, ws, headers):
        """Send a subscription_create per queue: the answers to wait for."""
        for queue in sorted(self.queues):
            ws.send(json.dumps({
                'action': SUBSCRIBE, 'headers': headers,
                'body': {'queue_name': queue, 'ttl': self.ttl}}))
        return {(SUBSCRIBE, queue) for queue in self.queues}

    def _handle(self, frame, pending, subscribe):
        try:
            data = json.loads(frame)
        except (TypeError, ValueError):
            LOG.debug('Ignoring a non-JSON frame from %s', self.url)
            return
        if not isinstance(data, dict):
            return
        request = data.get('request')
        if isinstance(request, dict):  # the answer to one of our requests
            self._answered(request, data, pending, subscribe)
            return
        queue = data.get('queue_name')
        if queue in self.queues:
            self.ring(queue, data.get('body'))

    def _answered(self, request, data, pending, subscribe):
        """``data``, Zaqar's answer to ``request``, one of ours."""
        action = request.get('action')
        status = (data.get('headers') or {}).get('status')
        if action == AUTHENTICATE and (AUTHENTICATE, None) in pending:
            if status != 200:
                self.auth.refused()
                raise PushError('authentication refused: %s %s'
                                % (status, data.get('body')))
            pending.discard((AUTHENTICATE, None))
            pending.update(subscribe())
            return
        if action != SUBSCRIBE:
            return
        queue = (request.get('body') or {}).get('queue_name')
        if status != 201:
            raise PushError('subscription to %s refused: %s %s'
                            % (queue, status, data.get('body')))
        pending.discard((SUBSCRIBE, queue))
        if not pending:
            self.subscribed.set()
            if self._failing:
                self._failing = False
                LOG.info('Zaqar push from %s works again', self.url)
            else:
                LOG.debug('Zaqar push from %s subscribed to %s',
                          self.url, sorted(self.queues))
            self.ring(None, None)  # what was posted before, if any
