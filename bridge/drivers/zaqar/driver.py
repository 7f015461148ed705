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
the token; this driver never reads it).  A call from another guest of the
project carries ``_reply_q`` only: the answer goes straight into it.

Zaqar can't push over HTTP, so queues are polled: every
``poll_interval_min`` for ``poll_interval_max`` seconds after a message
arrived (or a call was sent), then with an interval doubling up to
``poll_interval_max``.  A listener reads its queues in turn and hands a
message over as soon as one yields it; the reply queue is only polled
while a call waits.  The target's exchange plays no part: a project's
queues are its namespace.  Notification pools are not supported.

With ``websocket_url`` set, a websocket zaqar-server rings a doorbell
instead of waiting for the next poll (bridge/drivers/zaqar/push.py).

The package, split by role as oslo.messaging splits its drivers:
``driver`` (this :class:`ZaqarDriver`: sending, listening), ``listener``
(queues polled in turn), ``incoming`` (received messages and their
claims), ``reply_waiter`` (answers to this driver's calls), ``transport``
(HTTP to Zaqar), ``push`` (the websocket doorbell), ``options`` and
``signed_urls``.  It imports only the pure shared modules (bridge.naming,
bridge.wire, bridge.envelope, bridge.backoff), never the daemon.
"""

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
from bridge.drivers.zaqar import push
from bridge.drivers.zaqar import reply_waiter
from bridge.drivers.zaqar import transport

LOG = logging.getLogger(__name__)


class ZaqarDriver(base.BaseDriver):
    """oslo.messaging driver for ``zaqar://`` transport URLs."""

    def __init__(self, conf, url, default_exchange=None,
                 allowed_remote_exmods=None):
        conf = options.register_opts(conf, url)
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self.opts = conf[options.GROUP]
        self.zaqar = transport.make_client(self.opts, url)
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
        elif push.websocket is None:
            why = 'the websocket-client package is not installed'
        if why:
            if not self._push_warned:
                self._push_warned = True
                LOG.warning('websocket_url is ignored (%s); polling only',
                            why)
            return None
        return push.PushDoorbell(self.opts.websocket_url, self.opts.project_id,
                            queues, ring,
                            self.opts.websocket_subscription_ttl, name=name)

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
        """Post one body, retrying what may pass later.

        ``retry`` as in :meth:`send` (None or -1: forever).  A retried post
        may store the message twice: receivers drop the copy by wire id.
        """
        attempt = 0
        pauses = backoff.Backoff(0.25, 5.0)
        while True:
            try:
                self.zaqar.post(queue, [body], ttl)
                return
            except transport.PERMANENT_ERRORS as exc:
                raise oslo_messaging.MessageDeliveryFailure(
                    'Zaqar refused the message for queue %s: %s'
                    % (queue, backoff.error_text(exc)))
            except transport.TRANSIENT_ERRORS as exc:
                attempt += 1
                if retry is not None and 0 <= retry < attempt:
                    raise oslo_messaging.MessageDeliveryFailure(
                        'Could not post to Zaqar queue %s after %d '
                        'attempt(s): %s' % (queue, attempt,
                                            backoff.error_text(exc)))
                pause = pauses.next()
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise oslo_messaging.MessagingTimeout(
                            'Could not post to Zaqar queue %s in time: %s'
                            % (queue, backoff.error_text(exc)))
                    pause = min(pause, left)
                LOG.warning('Posting to Zaqar queue %s failed (%s), '
                            'retrying in %.2fs', queue,
                            backoff.error_text(exc), pause)
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
        sources = [listeners.ClaimedQueue(self.zaqar, name,
                                          self.opts.claim_ttl)
                   for name in claimed if name in usable]
        if fanout in usable:
            sources.append(listeners.FanoutQueue(self.zaqar, fanout,
                                                 self.opts.fanout_ttl))
        listener = listeners.ZaqarListener(self, sources, 'rpc',
                                           incoming.ZaqarIncomingMessage)
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
        sources = [listeners.ClaimedQueue(self.zaqar, name,
                                          self.opts.claim_ttl)
                   for name in names]
        listener = listeners.ZaqarListener(
            self, sources, 'notification', incoming.ZaqarNotificationMessage)
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
                        backoff.error_text(exc))
