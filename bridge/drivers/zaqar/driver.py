"""oslo.messaging over Zaqar: the guest side of the bridge (``zaqar://``).

A guest (a Trove agent, say) keeps speaking oslo.messaging; with
``transport_url = zaqar://<tenant>@zaqar.example.org:8888/`` its
messages go to Zaqar queues of its own project, where the bridge (or
another guest of the same project) reads them.  What is posted is exactly
``bridge.wire.body()`` (doc/protocol.rst); queue names come from
``bridge.naming``:

* ``queue_name(topic)`` and ``queue_name(topic.server)``: RPC requests,
  popped (read and deleted in one request, so one server handles each):
  acknowledged as they are received, before dispatch, exactly as the
  rabbit driver acknowledges them in its consumer callback (at most
  once: a server that dies before dispatching loses them, and the
  callers time out);
* ``fanout_queue_name(topic)``: fanout casts, listed from a marker taken
  when listening starts (pub/sub), never claimed or deleted, they expire
  after ``fanout_ttl``;
* ``queue_name(topic.priority)``: notifications, claimed and deleted
  once dispatched (acknowledged), or released (requeued): at least once;
* ``<topic.priority queue>.pool.<pool>``: a listener pool's copy, claimed;
* ``<shared queue>_consumers`` and ``inbox_<hex>``: the roll call of a
  claimed queue and each listener's own queue (presence.py);
* ``<reply_queue_prefix><uuid hex>``: answers to this driver's own calls,
  one queue per driver, named in the ``_reply_q`` of its requests (or the
  ``reply_queue`` option, a name given in advance).

``queue_prefix`` goes before every one of these names: with a bridge
keeping every tenant's queues in one project (tenant_access =
service_project) it carries the tenant.  With ``auth_strategy =
signed_url`` the driver holds one pre-signed URL per queue
(signed_urls.py) and listens only where it has one.

A call from a controller arrives with ``reply = {queue, token}``: the
answer goes into ``reply.queue`` with ``reply_token`` (the bridge checks
the token; this driver never reads it), and so do its call-monitor
heartbeats when the caller asked for them.  A call from another guest of the
project carries ``_reply_q`` only: the answer goes straight into it.

Zaqar pushes new messages over its websocket transport
(``websocket_url``, by default the Keystone catalog's
``messaging-websocket`` endpoint or else the Zaqar host's port 9000;
push.py; not with signed URLs, and with Keystone after authenticating
with the session's token): a
push rings a listener (or the reply waiter), which then reads the queue
it names over HTTP; while push works the queues are otherwise read only every
``push_poll_interval`` seconds, a safety net.  Without push, queues are
polled: every ``poll_interval_min`` for ``poll_interval_max`` seconds
after a message arrived, then with an interval doubling up to
``poll_interval_max``.  A listener reads its queues in turn and hands a
message over as soon as one yields it; the reply queue is only read
while a call waits (reply_waiter.py).  Senders deal a topic's RPC
requests to its servers in turn, and a notification to one listener of
each pool, through the roll call (presence.py), as RabbitMQ deals a
queue's messages.

The target's exchange plays no part in queue names, as with RabbitMQ,
where a server's queue is named after its topic only and servers of one
topic on two exchanges share it.

The package, split by role as oslo.messaging splits its drivers:
``driver`` (this :class:`ZaqarDriver`: sending, listening), ``listener``
(queues polled in turn), ``incoming`` (received messages and their
claims), ``reply_waiter`` (answers to this driver's calls), ``presence``
(roll calls: listeners sharing a queue), ``transport``
(HTTP to Zaqar), ``push`` (the websocket doorbell), ``push_url`` (where
it is), ``push_auth`` (its project and Keystone token), ``options`` and
``signed_urls``.  It imports only the pure shared modules (bridge.naming,
bridge.wire, bridge.envelope, bridge.jsoncodec, bridge.backoff), never the
daemon.
"""

from concurrent import futures
import logging
import math
import threading
import time
import uuid

import oslo_messaging
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import base

from bridge import backoff
from bridge import naming
from bridge import wire
from bridge.drivers.zaqar import incoming
from bridge.drivers.zaqar import listener as listeners
from bridge.drivers.zaqar import options
from bridge.drivers.zaqar import presence
from bridge.drivers.zaqar import push
from bridge.drivers.zaqar import push_auth
from bridge.drivers.zaqar import push_url
from bridge.drivers.zaqar import reply_waiter
from bridge.drivers.zaqar import transport

LOG = logging.getLogger(__name__)

# Threads deleting acknowledged messages.
ACK_THREADS = 4


class ZaqarDriver(base.BaseDriver):
    """oslo.messaging driver for ``zaqar://`` transport URLs."""

    def __init__(self, conf, url, default_exchange=None,
                 allowed_remote_exmods=None):
        conf = options.register_opts(conf, url)
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self.opts = conf[options.GROUP]
        self.auth_strategy = transport.auth_strategy(self.opts, url)
        self.zaqar = transport.make_client(self.opts, url,
                                           self._http_pool_size(conf))
        self._waiter = None
        self._waiter_lock = threading.Lock()
        self._push_warned = False
        self.dealer = presence.Dealer(self.zaqar)
        # Deletes of acknowledged messages (incoming.Claim).
        self.acks = futures.ThreadPoolExecutor(
            max_workers=ACK_THREADS, thread_name_prefix='zaqar-ack')

    def _http_pool_size(self, conf):
        """Connections to keep open: one per thread that may use them."""
        if self.opts.http_pool_size:
            return self.opts.http_pool_size
        # An RPC server's executor threads reply; the listeners and the
        # reply waiter poll; callers send from threads of their own.
        threads = getattr(conf, 'executor_thread_pool_size',
                          options.EXECUTOR_THREADS)
        return threads + options.EXTRA_CONNECTIONS

    def doorbell(self, queues, ring, name):
        """A :class:`PushDoorbell` for ``queues``, or None without push
        (websocket_url)."""
        url, guessed, why = push_url.websocket_url(self.opts, self._url,
                                                   self.auth_strategy)
        if why and not self._push_warned:
            self._push_warned = True
            LOG.warning('Zaqar push (websocket_url) is off (%s); polling '
                        'only', why)
        if url is None:
            return None
        if self.zaqar.session is not None:
            # auto: the catalog's websocket endpoint, if any, wins.
            auth = push_auth.Keystone(self.zaqar.session, catalog=guessed)
        else:
            auth = push_auth.Project(self.zaqar.project)
        return push.PushDoorbell(url, auth, queues, ring,
                                 self.opts.websocket_subscription_ttl,
                                 name=name, quiet=guessed)

    def poll_backoff(self):
        """Intervals between polls: poll_interval_min for
        poll_interval_max seconds after a hit, then doubling."""
        return backoff.Backoff(self.opts.poll_interval_min,
                               self.opts.poll_interval_max,
                               hold=self.opts.poll_interval_max)

    def require_features(self, requeue=False):
        pass

    # Sending.

    def post(self, queue, body, ttl, retry=None, deadline=None):
        """Post one body, retrying what may pass later (transport.post)."""
        transport.post(self.zaqar, queue, body, ttl, retry, deadline)

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
                self._waiter = reply_waiter.ReplyWaiter(self, name)
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
        if getattr(transport_options, 'at_least_once', False):
            self._check_listened(target, msg)

        if target.fanout:
            ttl = self.opts.fanout_ttl
        elif wait_for_reply and timeout:
            # Like the rabbit driver's expiration: a request nobody waits
            # for any more is not worth handling.
            ttl = min(self.opts.message_ttl,
                      max(options.ZAQAR_MIN_TTL, math.ceil(timeout)))
        else:
            ttl = self.opts.message_ttl

        if wait_for_reply:
            waiter.listen(msg_id)
        try:
            what = 'CALL msg_id %s,' % msg_id if wait_for_reply else 'CAST'
            if target.server or target.fanout:
                LOG.debug('%s unique_id %s to queue %s', what,
                          msg['_unique_id'], queue)
                self.post(queue, wire.body(msg), ttl, retry=retry,
                          deadline=deadline)
            else:  # to one of the servers of the topic, in turn
                self._deal(queue, queue, msg, ttl, what=what, retry=retry,
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
        # As on RabbitMQ: one listener without a pool gets it, and one
        # listener of each pool.
        for pool in [None] + self.dealer.pools(queue):
            shared = presence.pool_queue(queue, pool) if pool else queue
            self._deal(queue, shared, msg, self.opts.message_ttl, pool=pool,
                       retry=retry, what='NOTIFY')

    def _check_listened(self, target, msg):
        """at_least_once (RabbitMQ's mandatory flag): refuse at once a
        message no live server would take, when the roll call says so."""
        listeners = self.dealer.listeners(self._queue_of(target,
                                                         target.topic))
        if listeners is None:  # no roll call to read: can't tell
            return
        if any(m.pool is None and (not target.server or target.fanout
                                   or m.server == target.server)
               for m in listeners):
            return
        key = ('%s.%s' % (target.topic, target.server)
               if target.server and not target.fanout else target.topic)
        raise oslo_messaging.MessageUndeliverable(
            oslo_messaging.MessageDeliveryFailure(
                'no server listens on %s' % key),
            target.exchange or self._default_exchange, key, msg)

    def _deal(self, queue, shared, msg, ttl, pool=None, what='CAST',
              **post_args):
        """Post ``msg`` to the next listener of ``shared`` (the roll call
        of ``queue`` names them), or into ``shared`` itself."""
        inbox = self.dealer.inbox(queue, pool)
        LOG.debug('%s unique_id %s to queue %s', what, msg['_unique_id'],
                  inbox or shared)
        if inbox is None:
            self.post(shared, wire.body(msg), ttl, **post_args)
        else:
            self.post(inbox, wire.body(msg, shared_queue=shared), ttl,
                      **post_args)

    # Listening.

    def _listening(self, shared, pool=None, server=None, pop=False):
        """Sources for the shared queues ``{name: roll-call queue}`` and,
        if they have a roll call, an inbox of the listener's own (popped
        with ``pop``, else claimed)."""
        consumer = uuid.uuid4().hex
        inbox = naming.queue_name('%sinbox_%s' % (self.opts.queue_prefix,
                                                  consumer))
        # Every other listener polls within poll_interval_max (plus the
        # backoff's jitter) of a claim of its share.
        turn = (self.opts.poll_interval_max * 1.2
                + self.opts.poll_interval_min)
        roll_calls, sources = [], []
        for name, queue in shared.items():
            roll_call = presence.RollCall(self.zaqar, queue, consumer, inbox,
                                          pool, self.opts.message_ttl,
                                          server)
            roll_calls.append(roll_call)
            sources.append(listeners.SharedQueue(
                self.zaqar, name, self.opts.claim_ttl, roll_call, turn,
                self.acks, pop=pop))
        if any(roll_call.enabled for roll_call in roll_calls):
            sources.insert(0, listeners.Inbox(
                self.zaqar, inbox, self.opts.claim_ttl,
                [r for r in roll_calls if r.enabled], self.opts.message_ttl,
                self.acks, pop=pop))
        return sources

    def listen(self, target, batch_size, batch_timeout):
        # RPC requests are popped: acknowledged as they are received,
        # before dispatch, as the rabbit driver does (at most once).
        claimed = [self._queue_of(target, target.topic)]
        if target.server:
            claimed.append(self._optional_queue(
                target, '%s.%s' % (target.topic, target.server)))
        fanout = self._optional_queue(target, target.topic, fanout=True)
        usable = self._usable([name for name in claimed + [fanout] if name])
        sources = []
        if claimed[0] in usable:  # the topic's queue, shared by the servers
            sources = self._listening({claimed[0]: claimed[0]},
                                      server=target.server, pop=True)
        sources += [listeners.ClaimedQueue(self.zaqar, name,
                                           self.opts.claim_ttl, self.acks,
                                           pop=True)
                    for name in claimed[1:] if name in usable]
        if fanout in usable:
            sources.append(listeners.FanoutQueue(self.zaqar, fanout,
                                                 self.opts.fanout_ttl))
        listener = listeners.ZaqarListener(self, sources, 'rpc',
                                           incoming.ZaqarIncomingMessage)
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)

    def listen_for_notifications(self, targets_and_priorities, pool,
                                 batch_size, batch_timeout):
        # Listeners of one pool share a queue of their own, those without
        # a pool the topic's queue (as on RabbitMQ).
        queues = {}
        for target, priority in targets_and_priorities:
            queue = self._queue_of(target, '%s.%s' % (target.topic, priority))
            queues[presence.pool_queue(queue, pool) if pool else queue] = \
                queue
        sources = self._listening({name: queues[name]
                                   for name in self._usable(list(queues))},
                                  pool)
        listener = listeners.ZaqarListener(
            self, sources, 'notification', incoming.ZaqarNotificationMessage)
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)

    def cleanup(self):
        self.acks.shutdown(wait=True)
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
                        backoff.error_text(exc))
