"""Zaqar's websocket push as a doorbell for the ``zaqar://`` driver.

A websocket zaqar-server (sharing the HTTP one's storage; found as the
``websocket_url`` option says, by default on the Zaqar host's port 9000)
rings a doorbell instead of waiting for the next poll: each listener, and
the reply waiter, opens one socket and subscribes it to the queues it
reads (``subscription_create`` without a subscriber: Zaqar pushes every
message posted to them to the socket, ~6 ms).  A push only wakes the
poller; messages are still claimed, popped and deleted over HTTP.  While
push works the owner only polls now and then as a safety net, so a lost
push costs latency, never a message; when the socket breaks (or never
opens) the owner is rung and polls as without push until it is back.
zaqarclient's websocket transport always authenticates (it needs
Keystone), so this speaks the raw frames with websocket-client, and push
is only used with auth_strategy = noauth for now.
"""

import contextlib
import json
import logging
import threading
import time
import uuid

try:
    import websocket  # websocket-client, only needed for websocket_url
except ImportError:  # pragma: no cover
    websocket = None

from bridge import backoff
from bridge.drivers.zaqar import options

LOG = logging.getLogger(__name__)


def websocket_url(opts, url, auth_strategy):
    """``(websocket URL or None, discovered, why not)`` per the
    ``websocket_url`` option.

    ``auto``: the first host of the transport URL (``url``) on Zaqar's
    default websocket port, ``wss://`` with ``url_scheme = https``.  No
    push (None) when it is off, without websocket-client, or with an
    auth_strategy other than noauth (``why`` says which, except for auto,
    which only uses push where it can).
    """
    configured = opts.websocket_url
    if not configured:
        return None, False, None
    auto = configured == options.AUTO
    if auth_strategy != 'noauth':
        return None, auto, (None if auto else
                            'push needs auth_strategy = noauth for now')
    if websocket is None:
        return None, auto, 'the websocket-client package is not installed'
    if not auto:
        return configured, False, None
    host = url.hosts[0].hostname if url.hosts else None
    if not host:
        return None, True, None
    if ':' in host:
        host = '[%s]' % host
    scheme = 'wss' if opts.url_scheme == 'https' else 'ws'
    return ('%s://%s:%d' % (scheme, host, options.DEFAULT_WEBSOCKET_PORT),
            True, None)


class PushError(Exception):
    """The websocket server refused or did not answer a subscription."""


class PushDoorbell:
    """Calls ``ring(queue, body)`` when Zaqar pushes a message of
    ``queues`` (``body``: the pushed message's body).

    One websocket to ``url`` and a daemon thread reading it.  The socket
    subscribes to every queue (``subscription_create`` with no
    subscriber: Zaqar pushes to the socket itself); once all are
    subscribed ``ring(None, None)`` is called, so the owner polls for
    what was posted while the socket was down, and again when the
    subscriptions are lost (the owner then polls as without push).  The
    subscriptions are renewed by reopening the socket (Zaqar deletes a
    socket's subscriptions when it closes, and answers 409 to a second
    one).  Errors are logged once,
    then the socket is reopened with a backoff until it works again;
    with ``quiet`` (a discovered URL, which may well have no server) the
    first one is logged at info level only.
    """

    CONNECT_TIMEOUT = 5.0
    RECV_TIMEOUT = 1.0
    ANSWER_TIMEOUT = 10.0
    RETRY_MIN = 0.5
    RETRY_MAX = 30.0

    def __init__(self, url, project, queues, ring, ttl, name='zaqar-push',
                 quiet=False):
        self.url = url
        self.quiet = quiet
        self.project = project
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
                    LOG.log(logging.INFO if self.quiet else logging.WARNING,
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
        """Connect, subscribe, read pushes until renewal time (or stop)."""
        ws = websocket.create_connection(self.url,
                                         timeout=self.CONNECT_TIMEOUT)
        with self._lock:
            self._ws = ws
        try:
            if self._stopped.is_set():
                return
            headers = {'Client-ID': str(uuid.uuid4()),
                       'X-Project-ID': self.project}
            for queue in sorted(self.queues):
                ws.send(json.dumps({
                    'action': 'subscription_create', 'headers': headers,
                    'body': {'queue_name': queue, 'ttl': self.ttl}}))
            pending = set(self.queues)
            started = time.monotonic()
            renew_at = started + self.ttl * 0.8
            ws.settimeout(self.RECV_TIMEOUT)
            while not self._stopped.is_set():
                now = time.monotonic()
                if now >= renew_at:
                    LOG.debug('Renewing the Zaqar push subscriptions of %s',
                              sorted(self.queues))
                    return
                if pending and now - started > self.ANSWER_TIMEOUT:
                    raise PushError('no answer to subscription_create')
                try:
                    frame = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if self._stopped.is_set():
                    return
                self._handle(frame, pending)
        finally:
            self._unsubscribed()
            with self._lock:
                self._ws = None
            with contextlib.suppress(Exception):
                ws.close(timeout=1)

    def _handle(self, frame, pending):
        try:
            data = json.loads(frame)
        except (TypeError, ValueError):
            LOG.debug('Ignoring a non-JSON frame from %s', self.url)
            return
        if not isinstance(data, dict):
            return
        request = data.get('request')
        if isinstance(request, dict):  # the answer to one of our requests
            if request.get('action') != 'subscription_create':
                return
            queue = (request.get('body') or {}).get('queue_name')
            status = (data.get('headers') or {}).get('status')
            if status != 201:
                raise PushError('subscription to %s refused: %s %s'
                                % (queue, status, data.get('body')))
            pending.discard(queue)
            if not pending:
                self.subscribed.set()
                if self._failing:
                    self._failing = False
                    LOG.info('Zaqar push from %s works again', self.url)
                else:
                    LOG.debug('Zaqar push from %s subscribed to %s',
                              self.url, sorted(self.queues))
                self.ring(None, None)  # what was posted before, if any
            return
        queue = data.get('queue_name')
        if queue in self.queues:
            self.ring(queue, data.get('body'))
