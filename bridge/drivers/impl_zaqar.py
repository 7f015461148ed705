"""oslo.messaging over Zaqar: the guest side of the bridge (``zaqar://``).

A guest (a Trove agent, say) keeps speaking oslo.messaging; with
``transport_url = zaqar://zaqar.example.org:8888/?project_id=<tenant>`` its
messages go to Zaqar queues of its own project, where the bridge (or
another guest of the same project) reads them.  What is posted is exactly
``bridge.wire.body()`` (doc/protocol.rst); queue names come from
``bridge.naming``:

* ``queue_name(topic)`` and ``queue_name(topic.server)``: RPC requests,
  claimed (one server handles each) and deleted when acknowledged;
* ``fanout_queue_name(topic)``: fanout casts, listed from a marker taken
  when listening starts (pub/sub), never claimed or deleted, they expire
  after ``fanout_ttl``;
* ``queue_name(topic.priority)``: notifications, claimed;
* ``<reply_queue_prefix><uuid hex>``: answers to this driver's own calls,
  one queue per driver, named in the ``_reply_q`` of its requests (or the
  ``reply_queue`` option, a name given in advance).

``queue_prefix`` goes before every one of these names: with a bridge
keeping every tenant's queues in one project (tenant_access =
service_project) it carries the tenant.  With ``auth_strategy =
signed_url`` the driver holds one pre-signed URL per queue
(bridge/drivers/signed_urls.py) and listens only where it has one.

A call from a controller arrives with ``reply = {queue, token}``: the
answer goes into ``reply.queue`` with ``reply_token`` (the bridge checks
the token; this driver never reads it), and so do its call-monitor
heartbeats when the caller asked for them.  A call from another guest of the
project carries ``_reply_q`` only: the answer goes straight into it.

Zaqar can't push over HTTP, so queues are polled: every
``poll_interval_min`` for ``poll_interval_max`` seconds after a message
arrived (or a call was sent), then with an interval doubling up to
``poll_interval_max``.  A listener reads its queues in turn and hands a
message over as soon as one yields it; the reply queue is only polled
while a call waits.  The target's exchange plays no part: a project's
queues are its namespace.  Notification pools are not supported.

With ``websocket_url`` set, a websocket zaqar-server (sharing the HTTP
one's storage) rings a doorbell instead of waiting for the next poll: each
listener, and the reply waiter, opens one socket and subscribes it to the
queues it reads (``subscription_create`` without a subscriber: Zaqar
pushes every message posted to them to the socket, ~6 ms).  A push only
wakes the poller; messages are still claimed, popped and deleted over
HTTP, and polling goes on as without push, so a lost push or a broken
socket costs latency, never a message.  The socket is reopened (with a
backoff when it fails) to renew the subscriptions before they expire, and
the queues are polled once it is subscribed again.  zaqarclient's
websocket transport always authenticates (it needs Keystone), so the
driver speaks the raw frames with websocket-client, and push is only used
with auth_strategy = noauth for now.
"""

import collections
import contextlib
import json
import logging
import math
import queue as queue_mod
import threading
import time
from urllib import parse
import uuid

from keystoneauth1.identity import v3 as ks_v3
from keystoneauth1 import session as ks_session
import oslo_messaging
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import base
from oslo_messaging._drivers import common as rpc_common
from zaqarclient.queues.v2 import core as zcore
from zaqarclient.transport import errors as zerrors

try:
    import websocket  # websocket-client, only needed for websocket_url
except ImportError:  # pragma: no cover
    websocket = None

from bridge import envelope
from bridge import naming
from bridge import wire
from bridge.drivers import signed_urls
from bridge.drivers import zaqar_options
from bridge.zaqar import client as zclient

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 8888
# Zaqar's max_messages_per_claim_or_pop and max_messages_per_page.
MAX_MESSAGES = 20
# Zaqar refuses a claim grace below 60 s.
CLAIM_GRACE = zaqar_options.ZAQAR_MIN_TTL
# Wire ids each listener remembers, to drop redelivered messages.
SEEN_IDS = 4096
# A fanout message whose age exceeds the listener's by more than this was
# posted before the listener started (Zaqar reports ages in whole seconds).
FANOUT_AGE_SLACK = 1.0


def _log_exc(exc):
    return '%s: %s' % (type(exc).__name__, exc)


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
        retry = self.RETRY_MIN
        while not self._stopped.is_set():
            try:
                self._session()
                retry = self.RETRY_MIN
            except Exception as exc:
                self.subscribed.clear()
                if self._stopped.is_set():
                    break
                if not self._failing:
                    self._failing = True
                    LOG.warning('Zaqar push from %s does not work, polling '
                                'only until it does (retrying): %s',
                                self.url, _log_exc(exc))
                else:
                    LOG.debug('Zaqar push from %s still fails: %s',
                              self.url, _log_exc(exc))
                self._stopped.wait(retry)
                retry = min(retry * 2, self.RETRY_MAX)
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


class Backoff:
    """Sleep intervals for polling queues that may be empty.

    After a hit (:meth:`reset`) the queues are polled every ``low``
    seconds for ``hold`` seconds (replies and follow-up requests tend to
    come in bursts); then each :meth:`next` doubles the interval up to
    ``high``.  ``hold`` defaults to ``high``.
    """

    def __init__(self, low, high, hold=None, clock=time.monotonic):
        self.low = low
        self.high = max(low, high)
        self.hold = self.high if hold is None else hold
        self._clock = clock
        self._current = low
        self._hold_until = None

    def reset(self):
        self._current = self.low
        self._hold_until = self._clock() + self.hold

    def next(self):
        if self._hold_until is not None:
            if self._clock() < self._hold_until:
                return self.low
            self._hold_until = None
        current = self._current
        self._current = min(current * 2, self.high)
        return current


class SeenIds:
    """A bounded set of the most recent ids (at-least-once dedup)."""

    def __init__(self, size=SEEN_IDS):
        self._ids = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, key):
        """Remember ``key``; False when it was already there."""
        with self._lock:
            if key in self._ids:
                self._ids.move_to_end(key)
                return False
            self._ids[key] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True

    def discard(self, key):
        with self._lock:
            self._ids.pop(key, None)


def endpoint(url, scheme):
    """The Zaqar endpoint of a transport URL, e.g. ``http://h:8888``."""
    if not url.hosts or not url.hosts[0].hostname:
        raise oslo_messaging.InvalidTransportURL(
            str(url), 'a zaqar:// transport URL needs a host')
    if len(url.hosts) > 1:
        LOG.warning('zaqar:// uses the first host of its transport URL '
                    'only (%s)', url.hosts[0].hostname)
    host = url.hosts[0]
    hostname = host.hostname
    if ':' in hostname:
        hostname = '[%s]' % hostname
    out = '%s://%s:%d' % (scheme, hostname, host.port or DEFAULT_PORT)
    if url.virtual_host:
        out += '/' + url.virtual_host.strip('/')
    return out


class Client(zclient.Client):
    """The bridge's reusing Zaqar client, with the guest's TLS settings.

    zaqarclient only applies ``cacert``/``insecure`` with Keystone; this
    applies them to every request.
    """

    def __init__(self, *args, verify=True, **kwargs):
        super().__init__(*args, **kwargs)
        self._verify = verify

    def _request_and_transport(self):
        req, trans = super()._request_and_transport()
        req.verify = self._verify is not False
        req.cert = self._verify if isinstance(self._verify, str) else None
        return req, trans


def make_client(opts, url):
    """The driver's :class:`Zaqar`, authenticated per ``auth_strategy``.

    With Keystone the session (and its token cache) is built here, once.
    With signed URLs there is one client per signed queue.
    """
    verify = False if opts.insecure else (opts.ssl_ca_file or True)
    strategy = opts.auth_strategy
    host = url.hosts[0] if url.hosts else None
    session = None

    def build(auth_opts):
        return Client(endpoint(url, opts.url_scheme), version=2,
                      conf={'auth_opts': auth_opts,
                            'client_uuid': str(uuid.uuid4())},
                      session=session, request_timeout=opts.request_timeout,
                      verify=verify)

    if host and host.username and strategy != 'keystone':
        LOG.warning('zaqar:// ignores the user of its transport URL unless '
                    'auth_strategy = keystone')
    if strategy == 'keystone':
        username = (host and host.username) or opts.username
        password = (host and host.password) or opts.password
        if not (opts.auth_url and username and password
                and (opts.project_id or opts.project_name)):
            raise oslo_messaging.InvalidTransportURL(
                str(url), 'auth_strategy = keystone needs auth_url, a user '
                'and password, and project_id or project_name')
        auth = ks_v3.Password(
            auth_url=opts.auth_url, username=username, password=password,
            user_domain_name=opts.user_domain_name,
            project_id=opts.project_id, project_name=opts.project_name,
            project_domain_name=opts.project_domain_name)
        session = ks_session.Session(auth=auth, verify=verify)
        return Zaqar(build({'backend': 'keystone', 'options': {}}))
    if strategy == 'signed_url':
        try:
            urls = signed_urls.load(opts)
        except signed_urls.SignedUrlError as exc:
            raise oslo_messaging.InvalidTransportURL(str(url), str(exc))
        return Zaqar(None, {queue: build(signed_urls.auth_opts(entry))
                            for queue, entry in urls.items()})
    if not opts.project_id:
        raise oslo_messaging.InvalidTransportURL(
            str(url), 'auth_strategy = noauth needs project_id')
    return Zaqar(build({'backend': 'noauth',
                        'options': {'os_project_id': opts.project_id}}))


class Zaqar:
    """The few Zaqar operations the driver makes.

    One client for every queue, or (signed URLs) one client per queue and
    none for the others.
    """

    def __init__(self, client, per_queue=None):
        self._client = client
        self._per_queue = per_queue or {}

    def covers(self, queue):
        """False for a queue this driver has no credentials for."""
        return self._client is not None or queue in self._per_queue

    def client(self, queue):
        client = self._per_queue.get(queue, self._client)
        if client is None:
            raise zerrors.ForbiddenError(
                'no signed URL for queue %s (add one to signed_url_file)'
                % queue)
        return client

    def post(self, queue, bodies, ttl):
        self.client(queue).queue(queue).post([{'body': b, 'ttl': ttl}
                                              for b in bodies])

    def claim(self, queue, limit, ttl):
        """Claim up to ``limit``: ``(claim id, [Message...])``."""
        claim = self.client(queue).queue(queue).claim(
            ttl=ttl, grace=CLAIM_GRACE, limit=limit)
        return claim.id, list(claim)

    def pop(self, queue, limit):
        return list(self.client(queue).queue(queue).pop(limit))

    def _request(self, queue):
        return self.client(queue)._request_and_transport()

    def list(self, queue, marker, limit=MAX_MESSAGES):
        """One page of messages after ``marker``: ``(messages, marker)``.

        The returned marker is the one of the page's ``next`` link, or the
        given one when the page is empty.  Markers are opaque (a message
        id with Redis, a counter with MongoDB).
        """
        req, trans = self._request(queue)
        params = {'limit': limit, 'echo': True}
        if marker:
            params['marker'] = marker
        page = zcore.message_list(trans, req, queue, **params)
        for link in page.get('links') or ():
            if link.get('rel') == 'next':
                marker = _query_param(link.get('href', ''), 'marker',
                                      marker)
        return page.get('messages') or [], marker

    def delete(self, queue, message_id, claim_id=None):
        req, trans = self._request(queue)
        zcore.message_delete(trans, req, queue, message_id, claim_id)

    def release(self, queue, claim_id):
        req, trans = self._request(queue)
        zcore.claim_delete(trans, req, queue, claim_id)

    def delete_queue(self, queue):
        self.client(queue).queue(queue).delete()


def parse_body(body, kind):
    """``(wire body, oslo message, dedup id)`` of a ``kind`` message.

    ``kind`` is 'rpc', 'notification' or 'reply'; anything else raises
    WireError or EnvelopeError.
    """
    data = wire.parse(body)
    message = data['message']
    if not isinstance(message, dict):
        raise wire.WireError('"message" is not an object')
    found = envelope.kind(message)
    if found != kind:
        raise wire.WireError('a %s, not a %s' % (found, kind))
    return data, message, data.get('id') or wire.stable_id(message)


def _query_param(href, name, default=None):
    values = parse.parse_qs(parse.urlsplit(href).query).get(name)
    return values[0] if values else default


# Received messages -----------------------------------------------------------

class Claim:
    """A Zaqar claim shared by the messages it returned.

    Releasing a claim releases every message still in it, so a requeue
    only releases it once all its messages are settled; the acknowledged
    ones are deleted by then.
    """

    def __init__(self, zaqar, queue, claim_id, count):
        self.zaqar = zaqar
        self.queue = queue
        self.id = claim_id
        self._pending = count
        self._requeued = False
        self._lock = threading.Lock()

    def delete(self, message_id):
        """Delete one message of the claim (it was handled or is bad)."""
        try:
            self.zaqar.delete(self.queue, message_id, self.id)
        finally:
            self._settle(False)

    def requeue(self):
        self._settle(True)

    def _settle(self, requeued):
        with self._lock:
            self._pending -= 1
            self._requeued = self._requeued or requeued
            release = self._pending == 0 and self._requeued
        if release:
            try:
                self.zaqar.release(self.queue, self.id)
            except Exception as exc:
                LOG.warning('Could not release claim %s on queue %s, its '
                            'messages come back when it expires: %s',
                            self.id, self.queue, _log_exc(exc))


Raw = collections.namedtuple('Raw', 'queue id body age claim')


class ZaqarIncomingMessage(base.RpcIncomingMessage):
    """An RPC request (or notification) read from a Zaqar queue."""

    # The RPC server acknowledges before dispatching and skips the request
    # when acknowledge() raises: a failed delete (the claim expired, so
    # another server may have the request now) must not be dispatched, and
    # the request must be handled if it comes back here.
    redeliver_on_failed_ack = True

    def __init__(self, listener, raw, dedup_id, bridge_reply, ctxt, message,
                 unique_id):
        super().__init__(ctxt.to_dict(), message, ctxt.msg_id)
        self.listener = listener
        self.raw = raw
        self.dedup_id = dedup_id
        self.bridge_reply = bridge_reply
        self.orig_msg_id = ctxt.msg_id
        self.reply_q = ctxt.reply_q
        self.client_timeout = ctxt.client_timeout
        self.unique_id = unique_id

    def acknowledge(self):
        if self.raw.claim is None:
            return
        try:
            self.raw.claim.delete(self.raw.id)
        except Exception as exc:
            LOG.warning('Could not delete message %s from queue %s: %s',
                        self.raw.id, self.raw.queue, _log_exc(exc))
            if self.redeliver_on_failed_ack:
                self.listener.seen.discard(self.dedup_id)
                raise

    def requeue(self):
        if self.raw.claim is None:
            return
        self.listener.seen.discard(self.dedup_id)
        self.raw.claim.requeue()

    def _reply_address(self):
        """``(queue, reply_token)`` to answer into, or None."""
        if self.bridge_reply:
            return self.bridge_reply['queue'], self.bridge_reply['token']
        if self.orig_msg_id and self.reply_q:
            return self.reply_q, None
        return None

    def _send_reply(self, reply, failure, ending):
        address = self._reply_address()
        if address is None:
            return
        queue, token = address
        if not naming.is_valid(queue):
            LOG.error('Dropping the reply to %s: %r is not a queue name',
                      self.orig_msg_id, queue)
            return
        if failure:
            failure = rpc_common.serialize_remote_exception(failure)
        msg = {'result': reply, 'failure': failure, 'ending': ending,
               '_msg_id': self.orig_msg_id}
        rpc_amqp._add_unique_id(msg)
        driver = self.listener.driver
        try:
            driver.post(queue, wire.body(msg, reply_token=token),
                        driver.opts.message_ttl, retry=2)
        except Exception as exc:
            LOG.error('Could not send the reply to %s into queue %s: %s',
                      self.orig_msg_id, queue, _log_exc(exc))
        else:
            LOG.debug('Sent reply to %s into queue %s', self.orig_msg_id,
                      queue)

    def reply(self, reply=None, failure=None):
        self._send_reply(reply, failure, ending=True)

    def heartbeat(self):
        # The call-monitor heartbeat, to a controller (through the bridge,
        # which passes it before the one final answer) or to another guest.
        self._send_reply(None, None, ending=False)


class ZaqarNotificationMessage(ZaqarIncomingMessage):

    # Acknowledged once handled: if the delete fails, the notification
    # comes back after claim_ttl and is dropped here as a duplicate.
    redeliver_on_failed_ack = False

    def reply(self, reply=None, failure=None):
        pass

    def heartbeat(self):
        pass


# Listening -------------------------------------------------------------------

class ClaimedQueue:
    """A queue whose messages go to one listener each (claim, delete)."""

    def __init__(self, zaqar, name, claim_ttl):
        self.zaqar = zaqar
        self.name = name
        self.claim_ttl = claim_ttl

    def fetch(self):
        claim_id, messages = self.zaqar.claim(self.name, MAX_MESSAGES,
                                              self.claim_ttl)
        if not messages:
            return []
        claim = Claim(self.zaqar, self.name, claim_id, len(messages))
        return [Raw(self.name, m.id, m.body, m.age, claim)
                for m in messages]

    def drop(self, raw):
        raw.claim.delete(raw.id)


class FanoutQueue:
    """A queue every listener reads in full: listed from a marker.

    The marker starts at the end of the queue, so a new listener only
    sees what is posted after it started; messages Zaqar reports as older
    than the listener are skipped too (a marker can be lost, see
    :meth:`fetch`).
    """

    def __init__(self, zaqar, name, fanout_ttl):
        self.zaqar = zaqar
        self.name = name
        self.fanout_ttl = fanout_ttl
        self.marker = None
        self.started = time.monotonic()
        self.last_hit = self.started
        try:
            while True:
                messages, self.marker = zaqar.list(name, self.marker)
                if not messages:
                    break
        except Exception as exc:
            LOG.warning('Could not find the end of fanout queue %s, will '
                        'skip its old messages by age: %s', name,
                        _log_exc(exc))

    def fetch(self):
        now = time.monotonic()
        if self.marker and now - self.last_hit > self.fanout_ttl:
            # Zaqar/Redis lists at most one page after the marker and
            # returns nothing when that page only holds expired messages:
            # once everything we could have missed has expired, start from
            # the first live message again (dedup drops what we saw).
            self.marker = None
            self.last_hit = now
        messages, self.marker = self.zaqar.list(self.name, self.marker)
        if messages:
            self.last_hit = now
        horizon = now - self.started + FANOUT_AGE_SLACK
        return [Raw(self.name, m['id'], m.get('body'), m.get('age', 0), None)
                for m in messages if m.get('age', 0) <= horizon]

    def drop(self, raw):
        # Nobody can use it: spare the other listeners the log line.
        self.zaqar.delete(self.name, raw.id)


class ZaqarListener(base.PollStyleListener):
    """Polls its queues in turn and hands out one message at a time."""

    def __init__(self, driver, sources, kind, message_cls):
        super().__init__()
        self.driver = driver
        self.sources = sources
        self.kind = kind
        self.message_cls = message_cls
        self.seen = SeenIds()
        self.incoming = collections.deque()
        self._next_source = 0
        self._stopped = threading.Event()
        self._backoff = Backoff(driver.opts.poll_interval_min,
                                driver.opts.poll_interval_max)
        # Set by stop() and by the push doorbell: poll now.
        self._wake = threading.Event()
        self._doorbell = driver.doorbell([s.name for s in sources],
                                         self._ring, 'zaqar-push-' + kind)

    def _ring(self, queue):
        self._wake.set()

    @base.batch_poll_helper
    def poll(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.incoming:
                return self.incoming.popleft()
            if self._stopped.is_set():
                return None
            if self._fetch():
                self._backoff.reset()
                continue
            pause = self._backoff.next()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                pause = min(pause, left)
            self._wake.wait(pause)
            self._wake.clear()

    def _fetch(self):
        """Read the queues in turn until one yields messages.

        Returns how many were kept.  The next fetch starts with the queue
        after that one, so a busy queue can't starve the others, and a
        message is handed over without waiting for the other queues.
        """
        count = len(self.sources)
        for step in range(count):
            source = self.sources[(self._next_source + step) % count]
            try:
                raws = source.fetch()
            except Exception as exc:
                LOG.warning('Could not read Zaqar queue %s: %s',
                            source.name, _log_exc(exc))
                continue
            kept = 0
            for raw in raws:
                message = self._accept(source, raw)
                if message is not None:
                    self.incoming.append(message)
                    kept += 1
            if kept:
                self._next_source = (self._next_source + step + 1) % count
                return kept
        return 0

    def _accept(self, source, raw):
        try:
            data, message, dedup_id = parse_body(raw.body, self.kind)
        except (wire.WireError, envelope.EnvelopeError) as exc:
            LOG.warning('Dropping Zaqar message %s from queue %s: %s',
                        raw.id, raw.queue, exc)
            self._drop(source, raw)
            return None
        if not self.seen.add(dedup_id):
            LOG.debug('Dropping Zaqar message %s from queue %s: already '
                      'received', raw.id, raw.queue)
            if raw.claim is not None:
                self._drop(source, raw)
            return None
        message = dict(message)
        ctxt = rpc_amqp.unpack_context(message)
        unique_id = message.pop(rpc_amqp.UNIQUE_ID, None)
        LOG.debug('Received %s %s from queue %s (msg_id %s)', self.kind,
                  unique_id, raw.queue, ctxt.msg_id)
        return self.message_cls(self, raw, dedup_id, data.get('reply'), ctxt,
                                message, unique_id)

    @staticmethod
    def _drop(source, raw):
        try:
            source.drop(raw)
        except Exception as exc:
            LOG.warning('Could not delete Zaqar message %s from queue %s: '
                        '%s', raw.id, raw.queue, _log_exc(exc))

    def stop(self):
        self._stopped.set()
        self._wake.set()
        if self._doorbell is not None:
            self._doorbell.stop(wait=False)

    def cleanup(self):
        if self._doorbell is not None:
            self._doorbell.stop()


# Calling ---------------------------------------------------------------------

class ReplyWaiter:
    """Reads the driver's reply queue and routes replies by ``_msg_id``.

    Only this driver reads its reply queue, so replies are popped (read
    and deleted in one request).  The queue is only polled while a call is
    waiting.
    """

    def __init__(self, driver, queue):
        self.driver = driver
        self.queue = queue
        self.allowed_remote_exmods = driver._allowed_remote_exmods
        self.seen = SeenIds()
        self._waiters = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._backoff = Backoff(driver.opts.poll_interval_min,
                                driver.opts.poll_interval_max)
        self._rung = False  # a push arrived: poll now
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='zaqar-reply-waiter')
        self._thread.start()
        self._doorbell = driver.doorbell([queue], self._ring,
                                         'zaqar-push-reply')

    def _ring(self, queue):
        with self._cond:
            self._rung = True
            self._cond.notify()

    def listen(self, msg_id):
        with self._cond:
            self._waiters[msg_id] = queue_mod.Queue()
            # A new call: poll often again, starting now.
            self._backoff.reset()
            self._cond.notify()

    def unlisten(self, msg_id):
        with self._cond:
            self._waiters.pop(msg_id, None)

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._doorbell is not None:
            self._doorbell.stop()
        self._thread.join()

    def _run(self):
        while True:
            with self._cond:
                if not self._waiters:
                    while not self._waiters and not self._stopped:
                        self._cond.wait()
                    # The call is being posted: no reply before that.
                    if not self._rung:
                        self._cond.wait(self._backoff.low)
                if self._stopped:
                    return
                self._rung = False
            try:
                found = self._fetch()
            except Exception as exc:
                LOG.warning('Could not read reply queue %s: %s', self.queue,
                            _log_exc(exc))
                found = 0
            with self._cond:
                if found:
                    self._backoff.reset()
                elif not self._stopped and not self._rung:
                    self._cond.wait(self._backoff.next())

    def _fetch(self):
        found = 0
        for raw in self.driver.zaqar.pop(self.queue, MAX_MESSAGES):
            try:
                _, message, dedup_id = parse_body(raw.body, 'reply')
            except (wire.WireError, envelope.EnvelopeError) as exc:
                LOG.warning('Dropping Zaqar message %s from reply queue %s:'
                            ' %s', raw.id, self.queue, exc)
                continue
            if not self.seen.add(dedup_id):
                continue
            message = dict(message)
            msg_id = message.pop('_msg_id', None)
            message.pop(rpc_amqp.UNIQUE_ID, None)
            with self._cond:
                waiter = self._waiters.get(msg_id)
            if waiter is None:
                LOG.info('No call is waiting for reply %s any more', msg_id)
                continue
            waiter.put(message)
            found += 1
        return found

    @staticmethod
    def _timed_out(msg_id, reply_q):
        raise oslo_messaging.MessagingTimeout(
            'Timed out waiting for a reply %(reply_q)s to message ID '
            '%(msg_id)s.' % {'msg_id': msg_id, 'reply_q': reply_q})

    def wait(self, msg_id, timeout, call_monitor_timeout):
        """The result of call ``msg_id`` (as amqpdriver.ReplyWaiter)."""
        with self._cond:
            replies = self._waiters[msg_id]
        timer = rpc_common.DecayingTimer(duration=timeout)
        timer.start()
        monitor = None
        if call_monitor_timeout:
            monitor = rpc_common.DecayingTimer(duration=call_monitor_timeout)
            monitor.start()
        while True:
            left = timer.check_return(self._timed_out, msg_id, self.queue)
            if monitor is not None:
                cm_left = monitor.check_return(self._timed_out, msg_id,
                                               self.queue)
                left = cm_left if left is None else min(left, cm_left)
            try:
                message = replies.get(timeout=left)
            except queue_mod.Empty:
                self._timed_out(msg_id, self.queue)
            if message.get('ending', True) is False:
                LOG.debug('Call monitor heartbeat for %s', msg_id)
                if monitor is not None:
                    monitor.restart()
                continue
            if message.get('failure'):
                return rpc_common.deserialize_remote_exception(
                    message['failure'], self.allowed_remote_exmods)
            return message.get('result')


# The driver ------------------------------------------------------------------

class ZaqarDriver(base.BaseDriver):
    """oslo.messaging driver for ``zaqar://`` transport URLs."""

    def __init__(self, conf, url, default_exchange=None,
                 allowed_remote_exmods=None):
        conf = zaqar_options.register_opts(conf, url)
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self.opts = conf[zaqar_options.GROUP]
        self.zaqar = make_client(self.opts, url)
        self._waiter = None
        self._waiter_lock = threading.Lock()
        self._push_warned = False

    def doorbell(self, queues, ring, name):
        """A :class:`PushDoorbell` for ``queues``, or None without push."""
        if not self.opts.websocket_url:
            return None
        why = None
        if self.opts.auth_strategy != 'noauth':
            why = 'push needs auth_strategy = noauth for now'
        elif websocket is None:
            why = 'the websocket-client package is not installed'
        if why:
            if not self._push_warned:
                self._push_warned = True
                LOG.warning('websocket_url is ignored (%s); polling only',
                            why)
            return None
        return PushDoorbell(self.opts.websocket_url, self.opts.project_id,
                            queues, ring,
                            self.opts.websocket_subscription_ttl, name=name)

    def require_features(self, requeue=False):
        pass

    # Sending.

    def post(self, queue, body, ttl, retry=None, deadline=None):
        """Post one body, retrying what may pass later.

        ``retry`` as in :meth:`send` (None or -1: forever).  A retried post
        may store the message twice: receivers drop the copy by wire id.
        """
        attempt = 0
        while True:
            try:
                self.zaqar.post(queue, [body], ttl)
                return
            except zclient.PERMANENT_ERRORS as exc:
                raise oslo_messaging.MessageDeliveryFailure(
                    'Zaqar refused the message for queue %s: %s'
                    % (queue, _log_exc(exc)))
            except zclient.TRANSIENT_ERRORS as exc:
                attempt += 1
                if retry is not None and 0 <= retry < attempt:
                    raise oslo_messaging.MessageDeliveryFailure(
                        'Could not post to Zaqar queue %s after %d '
                        'attempt(s): %s' % (queue, attempt, _log_exc(exc)))
                pause = min(0.25 * 2 ** (attempt - 1), 5.0)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise oslo_messaging.MessagingTimeout(
                            'Could not post to Zaqar queue %s in time: %s'
                            % (queue, _log_exc(exc)))
                    pause = min(pause, left)
                LOG.warning('Posting to Zaqar queue %s failed (%s), '
                            'retrying in %.2fs', queue, _log_exc(exc),
                            pause)
                time.sleep(pause)

    def _reply_waiter(self):
        with self._waiter_lock:
            if self._waiter is None:
                name = self._reply_queue_name()
                if not self.zaqar.covers(name):
                    raise oslo_messaging.MessageDeliveryFailure(
                        'No signed URL for reply queue %s: set reply_queue '
                        'to a queue of signed_url_file to make calls'
                        % name)
                LOG.debug('Using reply queue %s', name)
                self._waiter = ReplyWaiter(self, name)
            return self._waiter

    def _reply_queue_name(self):
        if self.opts.reply_queue:
            return self.opts.reply_queue
        name = self.opts.queue_prefix + self.opts.reply_queue_prefix
        return name + uuid.uuid4().hex[:naming.MAX_LENGTH - len(name)]

    def _queue_of(self, target, topic, fanout=False):
        """The Zaqar queue of ``topic``; InvalidTarget if it can't be."""
        topic = self.opts.queue_prefix + topic
        try:
            if fanout:
                return naming.fanout_queue_name(topic)
            return naming.queue_name(topic)
        except naming.QueueNameError as exc:
            raise oslo_messaging.InvalidTarget(str(exc), target)

    def _optional_queue(self, target, topic, fanout=False):
        """A server or fanout queue; None (a warning) when too long."""
        try:
            return self._queue_of(target, topic, fanout)
        except oslo_messaging.InvalidTarget as exc:
            LOG.warning('Not listening on the %s queue of topic %s: %s',
                        'fanout' if fanout else 'server', target.topic,
                        exc)
            return None

    def _usable(self, names):
        """The queues this driver has credentials for (signed URLs)."""
        usable = [name for name in names if self.zaqar.covers(name)]
        for name in names:
            if name not in usable:
                LOG.warning('Not listening on Zaqar queue %s: no signed URL '
                            'for it in signed_url_file', name)
        if not usable:
            raise oslo_messaging.MessageDeliveryFailure(
                'No signed URL for any of the queues %s' % ', '.join(names))
        return usable

    def send(self, target, ctxt, message, wait_for_reply=None, timeout=None,
             call_monitor_timeout=None, retry=None, transport_options=None):
        if target.server and not target.fanout:
            queue = self._queue_of(target, '%s.%s' % (target.topic,
                                                      target.server))
        else:
            queue = self._queue_of(target, target.topic, target.fanout)
        deadline = None if timeout is None else time.monotonic() + timeout
        msg = dict(message)
        waiter = msg_id = None
        if wait_for_reply:
            waiter = self._reply_waiter()
            msg_id = uuid.uuid4().hex
            msg.update({'_msg_id': msg_id, '_reply_q': waiter.queue,
                        '_timeout': call_monitor_timeout})
        rpc_amqp._add_unique_id(msg)
        rpc_amqp.pack_context(msg, ctxt)

        if target.fanout:
            ttl = self.opts.fanout_ttl
        elif wait_for_reply and timeout:
            # Like the rabbit driver's expiration: a request nobody waits
            # for any more is not worth handling.
            ttl = min(self.opts.message_ttl,
                      max(zaqar_options.ZAQAR_MIN_TTL, math.ceil(timeout)))
        else:
            ttl = self.opts.message_ttl

        if wait_for_reply:
            waiter.listen(msg_id)
            LOG.debug('CALL msg_id %s to queue %s', msg_id, queue)
        else:
            LOG.debug('CAST unique_id %s to queue %s', msg['_unique_id'],
                      queue)
        try:
            self.post(queue, wire.body(msg), ttl, retry=retry,
                      deadline=deadline)
            if wait_for_reply:
                result = waiter.wait(msg_id, timeout, call_monitor_timeout)
                if isinstance(result, Exception):
                    raise result
                return result
        finally:
            if wait_for_reply:
                waiter.unlisten(msg_id)

    def send_notification(self, target, ctxt, message, version, retry=None):
        # The Notifier's target topic is already "<topic>.<priority>".
        queue = self._queue_of(target, target.topic)
        msg = dict(message)
        rpc_amqp._add_unique_id(msg)
        rpc_amqp.pack_context(msg, ctxt)
        LOG.debug('NOTIFY unique_id %s to queue %s', msg['_unique_id'],
                  queue)
        self.post(queue, wire.body(msg), self.opts.message_ttl, retry=retry)

    # Listening.

    def listen(self, target, batch_size, batch_timeout):
        claimed = [self._queue_of(target, target.topic)]
        if target.server:
            claimed.append(self._optional_queue(
                target, '%s.%s' % (target.topic, target.server)))
        fanout = self._optional_queue(target, target.topic, fanout=True)
        usable = self._usable([name for name in claimed + [fanout] if name])
        sources = [ClaimedQueue(self.zaqar, name, self.opts.claim_ttl)
                   for name in claimed if name in usable]
        if fanout in usable:
            sources.append(FanoutQueue(self.zaqar, fanout,
                                       self.opts.fanout_ttl))
        listener = ZaqarListener(self, sources, 'rpc', ZaqarIncomingMessage)
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)

    def listen_for_notifications(self, targets_and_priorities, pool,
                                 batch_size, batch_timeout):
        if pool:
            raise NotImplementedError('The zaqar driver does not support '
                                      'notification listener pools')
        names = self._usable([
            self._queue_of(target, '%s.%s' % (target.topic, priority))
            for target, priority in targets_and_priorities])
        sources = [ClaimedQueue(self.zaqar, name, self.opts.claim_ttl)
                   for name in names]
        listener = ZaqarListener(self, sources, 'notification',
                                 ZaqarNotificationMessage)
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)

    def cleanup(self):
        with self._waiter_lock:
            waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        waiter.stop()
        if self.opts.reply_queue:
            return    # named in advance, maybe signed: not this driver's
        try:
            self.zaqar.delete_queue(waiter.queue)
        except Exception as exc:
            LOG.warning('Could not delete reply queue %s: %s', waiter.queue,
                        _log_exc(exc))
