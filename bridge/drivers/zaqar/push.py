"""Zaqar's websocket push as a doorbell for the ``zaqar://`` driver.

With ``websocket_url`` set, a websocket zaqar-server (sharing the HTTP
one's storage) rings a doorbell instead of waiting for the next poll: each
listener, and the reply waiter, opens one socket and subscribes it to the
queues it reads (``subscription_create`` without a subscriber: Zaqar
pushes every message posted to them to the socket, ~6 ms).  A push only
wakes the poller; messages are still claimed, popped and deleted over
HTTP, and polling goes on as without push, so a lost push or a broken
socket costs latency, never a message.  zaqarclient's websocket transport
always authenticates (it needs Keystone), so this speaks the raw frames
with websocket-client, and push is only used with auth_strategy = noauth
for now.
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

LOG = logging.getLogger(__name__)


class PushError(Exception):
    """The websocket server refused or did not answer a subscription."""


class PushDoorbell:
    """Calls ``ring(queue)`` when Zaqar pushes a message of ``queues``.

    One websocket to ``url`` and a daemon thread reading it.  The socket
    subscribes to every queue (``subscription_create`` with no
    subscriber: Zaqar pushes to the socket itself); once all are
    subscribed ``ring(None)`` is called, so the owner polls for what was
    posted while the socket was down.  The subscriptions are renewed by
    reopening the socket (Zaqar deletes a socket's subscriptions when it
    closes, and answers 409 to a second one).  Errors are logged once,
    then the socket is reopened with a backoff until it works again.
    """

    CONNECT_TIMEOUT = 5.0
    RECV_TIMEOUT = 1.0
    ANSWER_TIMEOUT = 10.0
    RETRY_MIN = 0.5
    RETRY_MAX = 30.0

    def __init__(self, url, project, queues, ring, ttl, name='zaqar-push'):
        self.url = url
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
                self.subscribed.clear()
                if self._stopped.is_set():
                    break
                if not self._failing:
                    self._failing = True
                    LOG.warning('Zaqar push from %s does not work, polling '
                                'only until it does (retrying): %s',
                                self.url, backoff.error_text(exc))
                else:
                    LOG.debug('Zaqar push from %s still fails: %s',
                              self.url, backoff.error_text(exc))
                self._stopped.wait(retry.next())
        self.subscribed.clear()

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
            self.subscribed.clear()
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
                self.ring(None)  # what was posted before, if anything
            return
        queue = data.get('queue_name')
        if queue in self.queues:
            self.ring(queue)
