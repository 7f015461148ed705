"""The doorbell: Zaqar tells the bridge which tenant queue has work.

Polling every queue of thousands of tenants costs thousands of requests a
second doing nothing.  Instead, a to_amqp route with ``doorbell_port``
subscribes each of its tenant queues to a webhook served by its workers
(Zaqar's notification pipeline, ``[storage] message_pipeline =
zaqar.notification.notifier`` on zaqar-server).  Every post into such a
queue makes Zaqar POST the message to the bridge, with the header
``X-Bridge-Tenant`` that the subscription carries; the worker that takes
the POST claims from that queue at once.  The POST itself is only a
wake-up: the bridge never trusts or forwards its content, it claims the
real messages from the tenant's queue.

A ring must prove that the bridge asked for it.  A tenant can list the
subscriptions of its queues (so it reads the bridge's headers), create
subscriptions of its own to the same URL with any headers, and anyone who
reaches the port can POST.  So each subscription also carries
``X-Bridge-Proof``: an HMAC of (tenant, queue) under a key derived from
``[rpc] reply_secret`` for this purpose only (:func:`key`).  A ring is
taken only if that proof matches the tenant it names and the
``queue_name`` of its body; copying its own headers, a tenant can at most
ring its own queue.  Any other ring is answered 403 (Zaqar does not retry
a 4xx), counted in ``bridge_doorbell_rings_refused_total{route,reason}``,
logged at most once a minute per worker, and never makes the bridge
claim.
When the bridge starts it creates every subscription (one request each;
Zaqar keeps an existing one as it is), then checks their options in its
first recovery sweep (bridge/flows/recovery.py): it updates the options
of one that has others (Zaqar keeps the old ones on a repeated create), so
subscriptions made before proofs existed get one soon after the bridge
starts.

Subscriptions are created with the fewest retries Zaqar accepts, so a
bridge that is restarting doesn't tie up Zaqar's notifier; a missed ring
is caught by the slow safety sweep of the reverse path.  All workers of a
route bind the same port (SO_REUSEPORT); any of them may answer any ring.
"""

import hashlib
import hmac
import json
import re
import socket
import socketserver
import threading
import time
from wsgiref import simple_server

from oslo_log import log
from zaqarclient.queues.v2 import core as zcore
from zaqarclient.transport import errors as zerrors

LOG = log.getLogger(__name__)

TENANT_HEADER = 'X-Bridge-Tenant'
PROOF_HEADER = 'X-Bridge-Proof'
# The key of the proofs is HMAC(reply_secret, PURPOSE): a proof, which
# tenants read, is an HMAC under a key used for nothing else.
PURPOSE = b'amqp-zaqar-bridge doorbell proof v1'
_PROOF_FORM = re.compile(r'[0-9a-f]{64}\Z')
# Refused rings are logged at most once per this many seconds.
REFUSAL_LOG_INTERVAL = 60.0
# Long enough to never lapse in practice; the sweep re-creates lost ones.
SUBSCRIPTION_TTL = 10 * 365 * 24 * 3600
# As few retries as Zaqar accepts (it wants maximum_delay - minimum_delay
# >= 20 s, which gives two late tries, after 1 s and 11 s): a missed ring
# costs one sweep interval, it must not tie up Zaqar's notifier workers.
FEW_RETRIES = {'retries_with_no_delay': 0, 'minimum_delay_retries': 0,
               'minimum_delay': 1, 'maximum_delay': 21,
               'maximum_delay_retries': 0}
MAX_BODY = 512 * 1024
# Subscriptions listed in one request (Zaqar's max_subscriptions_per_page).
LIST_LIMIT = 20
# The metadata key, in a worker's canary queue, of the record of the
# subscriptions it made (:func:`record`).
RECORD_KEY = 'bridge_subscribed'


class RingRefused(ValueError):
    """A ring without a valid proof; ``reason`` is a short metric label."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def key(secret):
    """The doorbell's own key, derived from ``[rpc] reply_secret``."""
    if not secret:
        raise ValueError('no secret configured ([rpc] reply_secret)')
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    return hmac.new(secret, PURPOSE, hashlib.sha256).digest()


def proof(key, tenant, queue):
    """The proof that the bridge subscribed ``tenant``'s ``queue``."""
    text = json.dumps([tenant, queue], separators=(',', ':'))
    return hmac.new(key, text.encode('utf-8'), hashlib.sha256).hexdigest()


def check(key, tenant, queue, given):
    """Raise RingRefused unless ``given`` proves (tenant, queue)."""
    if not given:
        raise RingRefused('missing', 'no %s header' % PROOF_HEADER)
    if not tenant or not isinstance(queue, str) or not queue:
        raise RingRefused('malformed', 'no tenant or no queue_name')
    if not _PROOF_FORM.match(given):
        raise RingRefused('malformed', '%s is not 64 hex digits'
                          % PROOF_HEADER)
    if not hmac.compare_digest(given, proof(key, tenant, queue)):
        raise RingRefused('invalid', '%s does not match the tenant and '
                          'queue' % PROOF_HEADER)


def options(key, tenant, queue):
    """The options of the bridge's subscription to ``tenant``'s
    ``queue``."""
    return {'post_headers': {TENANT_HEADER: tenant,
                             PROOF_HEADER: proof(key, tenant, queue)},
            '_retry_policy': FEW_RETRIES}


def subscribe(client, queue, url, tenant, key, check=True):
    """Make Zaqar ring ``url`` for every message posted to ``queue``.

    Zaqar keeps one subscription per (queue, subscriber) and answers a
    repeated create with the same id, keeping the old options.  With
    ``check``, the queue's subscriptions are listed first: one with the
    right options is left alone ('kept', one request), one with others
    (made before proofs existed, or under another secret) gets them
    ('updated'), a missing one is created ('listed and created').
    Without, it is only created ('created', one request): a subscription
    that was there keeps its options.
    """
    wanted = options(key, tenant, queue)
    body = {'subscriber': url, 'ttl': SUBSCRIPTION_TTL, 'options': wanted}
    if not check:
        client.create_subscription(queue, body)
        return 'created'
    req, trans = client._request_and_transport()
    listed = zcore.subscription_list(trans, req, queue,
                                     limit=LIST_LIMIT).get(
                                         'subscriptions') or []
    ours = [s for s in listed if s.get('subscriber') == url]
    if ours and ours[0].get('options') == wanted and \
            ours[0].get('ttl', 0) - ours[0].get('age', 0) \
            >= SUBSCRIPTION_TTL // 2:
        return 'kept'
    if ours:
        sid = ours[0]['id']
    else:
        sid = client.create_subscription(queue, body)
        if len(listed) < LIST_LIMIT:
            return 'listed and created'
        # Ours may be on a later page: the create kept its options.
    req, trans = client._request_and_transport()
    zcore.subscription_update(trans, req, queue, sid,
                              {'ttl': SUBSCRIPTION_TTL, 'options': wanted})
    return 'updated'


def shard_digest(url, key, queues):
    """What a worker's subscriptions are: a digest of the URL rung, the
    subscription's settings and the (project, queue) pairs ``queues``
    (any order), so that a record of it tells a restarted worker whether
    it made exactly these subscriptions (bridge/flows/recovery.py)."""
    digest = hashlib.sha256(json.dumps(
        [url, hashlib.sha256(key).hexdigest(), SUBSCRIPTION_TTL,
         FEW_RETRIES], sort_keys=True).encode('utf-8'))
    for project, queue in sorted(queues):
        digest.update(b'\0%s\0%s' % (project.encode('utf-8'),
                                      queue.encode('utf-8')))
    return digest.hexdigest()


def recorded(client, queue):
    """The record :func:`record` left in ``queue``'s metadata: {"digest",
    "at" (wall-clock seconds)}, or None.  Raises zaqarclient's errors,
    but none for a queue that doesn't exist."""
    req, trans = client._request_and_transport()
    try:
        metadata = zcore.queue_get(trans, req, queue)
    except zerrors.ResourceNotFound:
        return None
    found = (metadata or {}).get(RECORD_KEY)
    if not isinstance(found, dict) or not isinstance(
            found.get('digest'), str) or not isinstance(
            found.get('at'), (int, float)):
        return None
    return found


def record(client, queue, digest, at):
    """Note in ``queue``'s metadata (one request; two when ``queue``
    doesn't exist yet) that the subscriptions of ``digest``
    (:func:`shard_digest`) were all made at ``at``."""
    value = {'digest': digest, 'at': at}
    req, trans = client._request_and_transport()
    try:
        zcore.queue_update(trans, req, queue, [
            {'op': 'add', 'path': '/metadata/%s' % RECORD_KEY,
             'value': value}])
    except zerrors.ResourceNotFound:
        req, trans = client._request_and_transport()
        zcore.queue_create(trans, req, queue, metadata={RECORD_KEY: value})


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    # Zaqar's notifier rings from up to max_notifier_workers threads per
    # zaqar-server process: a ring must not wait for another, nor find
    # the backlog full (its connect would hang, then fail).
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _RefusalLog:
    """One WARNING per interval about refused rings, however many come."""

    def __init__(self, route, interval=REFUSAL_LOG_INTERVAL):
        self.route = route
        self.interval = interval
        self.next = 0.0
        self.unlogged = 0

    def refused(self, exc, tenant, queue, peer, now=None):
        now = time.monotonic() if now is None else now
        if now < self.next:
            self.unlogged += 1
            return
        LOG.warning('Route %s: doorbell ring from %s for tenant %.80r queue '
                    '%.80r refused (%s): not claiming; %d other ring(s) '
                    'refused since the last such line', self.route, peer,
                    tenant, queue, exc, self.unlogged)
        self.next = now + self.interval
        self.unlogged = 0


class Doorbell:
    """A small HTTP server calling ``ring(tenant, queue)`` per proven POST.

    ``secret`` is ``[rpc] reply_secret``; ``url`` is what Zaqar rings.
    """

    def __init__(self, route, host, port, url, secret, ring, metrics):
        self.route = route
        self.url = url
        self.key = key(secret)
        self.ring = ring
        self.metrics = metrics
        self.refusals = _RefusalLog(route)
        self.server = simple_server.make_server(
            host, port, self.app, server_class=_Server,
            handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name='doorbell', daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def subscribe(self, client, queue, tenant, check=True):
        return subscribe(client, queue, self.url, tenant, self.key, check)

    def digest(self, queues):
        """:func:`shard_digest` of this doorbell's subscriptions to
        ``queues`` ((project, queue) pairs)."""
        return shard_digest(self.url, self.key, queues)

    def app(self, environ, start_response):
        if environ['REQUEST_METHOD'] != 'POST':
            start_response('405 Method Not Allowed', [])
            return [b'']
        tenant = environ.get('HTTP_X_BRIDGE_TENANT', '')
        try:
            length = min(int(environ.get('CONTENT_LENGTH') or 0), MAX_BODY)
            data = json.loads(environ['wsgi.input'].read(length) or b'{}')
            queue = data.get('queue_name') if isinstance(data, dict) else None
        except ValueError:
            queue = None
        try:
            check(self.key, tenant, queue,
                  environ.get('HTTP_X_BRIDGE_PROOF', ''))
        except RingRefused as exc:
            self.metrics.ring_refused(self.route, exc.reason)
            self.refusals.refused(exc, tenant, queue,
                                  environ.get('REMOTE_ADDR', '?'))
            start_response('403 Forbidden', [])
            return [b'']
        self.ring(tenant, queue)
        start_response('204 No Content', [])
        return [b'']
