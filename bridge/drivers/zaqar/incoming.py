"""What a ``zaqar://`` listener hands out: messages read from Zaqar.

A claimed message belongs to a :class:`Claim` (one per claim request):
acknowledging deletes it with the claim id, requeueing releases the claim
once all of its messages are settled.  :class:`SeenIds` drops the copies
an at-least-once Zaqar (or a retried post) delivers twice.
"""

import collections
import logging
import threading
import time

from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import base
from oslo_messaging._drivers import common as rpc_common

from bridge import backoff
from bridge import envelope
from bridge import naming
from bridge import wire

LOG = logging.getLogger(__name__)

# Wire ids each listener remembers, to drop redelivered messages.
SEEN_IDS = 4096


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

    def __contains__(self, key):
        with self._lock:
            return key in self._ids


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


class Claim:
    """A Zaqar claim shared by the messages it returned.

    Releasing a claim releases every message still in it, so a requeue
    only releases it once all its messages are settled; the acknowledged
    ones are deleted by then.

    For the first half of its ``ttl`` the claim is surely still ours, so
    with ``acks`` (an executor) a delete is left to it and the message is
    handled at once, as RabbitMQ's acknowledgements cost nothing; later a
    delete is waited for, and fails if the claim expired.
    """

    def __init__(self, zaqar, queue, claim_id, count, ttl=None, acks=None,
                 clock=time.monotonic):
        self.zaqar = zaqar
        self.queue = queue
        self.id = claim_id
        self._pending = count
        self._requeued = False
        self._lock = threading.Lock()
        self._acks = acks
        self._clock = clock
        self._trusted_until = clock() + ttl / 2.0 if ttl else None

    def delete(self, message_id):
        """Delete one message of the claim (it was handled or is bad)."""
        if (self._acks is not None and self._trusted_until is not None
                and self._clock() < self._trusted_until):
            try:
                self._acks.submit(self._delete_in_background, message_id)
                return
            except RuntimeError:  # the driver is being cleaned up
                pass
        self._delete(message_id)

    def _delete(self, message_id):
        try:
            self.zaqar.delete(self.queue, message_id, self.id)
        finally:
            self._settle(False)

    def _delete_in_background(self, message_id):
        try:
            self._delete(message_id)
        except Exception as exc:
            LOG.warning('Could not delete message %s from queue %s, it comes '
                        'back when claim %s expires: %s', message_id,
                        self.queue, self.id, backoff.error_text(exc))

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
                            self.id, self.queue, backoff.error_text(exc))


Raw = collections.namedtuple('Raw', 'queue id body age claim')


class ZaqarIncomingMessage(base.RpcIncomingMessage):
    """An RPC request (or notification) read from a Zaqar queue.

    The listener pops RPC requests (``raw.claim`` is None): they are
    acknowledged already, acknowledge() and requeue() do nothing, as the
    rabbit driver's.
    """

    # For a claimed request: the RPC server acknowledges before dispatching
    # and skips the request when acknowledge() raises: a failed delete (the
    # claim expired, so another server may have the request now) must not
    # be dispatched, and the request must be handled if it comes back here.
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
                        self.raw.id, self.raw.queue, backoff.error_text(exc))
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
                      self.orig_msg_id, queue, backoff.error_text(exc))
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
