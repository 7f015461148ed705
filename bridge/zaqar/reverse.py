"""The reverse path: per-tenant Zaqar queues -> an AMQP exchange.

A :class:`Reverser` runs in each worker of a to_amqp route.  The route's
tenants are split across its workers (a stable hash of the tenant modulo
``workers``), so each queue is claimed by one worker and no queue is
polled twice.  For each queue it owns, the worker claims up to
``claim_limit`` messages, publishes each one with publisher confirms and
deletes it from Zaqar only after the broker confirmed.  A crash before the
delete leaves the claim to expire (``claim_ttl``): the message is claimed
again, never lost.  An empty queue is polled less and less often, down to
once every ``poll_interval`` seconds.
"""

import threading
import time
import zlib

import kombu
from oslo_log import log

from bridge.amqp import connection as amqp_connection
from bridge.amqp import deadletter
from bridge.amqp import publisher
from bridge import backoff
from bridge import naming
from bridge import routing
from bridge import tokens
from bridge.translate import Reject
from bridge.translate import to_amqp
from bridge.zaqar import client as zaqar_client

LOG = log.getLogger(__name__)

MIN_POLL = 0.05


def shard(tenants, worker_id, workers):
    """The tenants worker ``worker_id`` of ``workers`` drains."""
    return [t for t in tenants
            if zlib.crc32(t.encode('utf-8')) % workers == worker_id]


class TenantQueue:
    """One queue to drain, and when to look at it next."""

    def __init__(self, tenant, project, name):
        self.tenant = tenant
        self.project = project
        self.name = name
        self.next_poll = 0.0
        self.idle = MIN_POLL

    def __repr__(self):
        return '%s/%s' % (self.tenant, self.name)


class Reverser:
    def __init__(self, conf, route, clients, worker_id=0, metrics=None):
        assert route.direction == routing.TO_AMQP
        self.conf = conf
        self.route = route
        self.clients = clients
        self.metrics = metrics
        self.queues = [
            TenantQueue(t, clients.project_of(t),
                        naming.render(route.zaqar_queue, tenant=t,
                                      route=route.name))
            for t in shard(route.tenants, worker_id, route.workers)]
        self.connection = amqp_connection.connection(conf)
        self.publisher = None
        self.used_tokens = tokens.UsedTokens()
        self.zaqar = backoff.Outage(LOG, route.name, 'Zaqar',
                                    route.retry_max_interval)
        self.amqp = backoff.Outage(LOG, route.name, 'RabbitMQ',
                                   route.retry_max_interval)
        self._stop = threading.Event()
        self._declared_queues = set()

    def stop(self):
        self._stop.set()

    # -- AMQP side

    def _connect(self):
        if self.publisher is not None and self.connection.connected:
            return
        self.connection.ensure_connection(
            errback=self._amqp_error, max_retries=None,
            callback=lambda: self._stop.is_set() and self._raise_stop())
        self.publisher = publisher.Publisher(self.connection, self.conf)
        self._declared_queues.clear()
        self.amqp.ok()
        self.publisher.declare_exchange(
            self.route.exchange, self.route.exchange_type,
            self.route.exchange_durable, self.route.exchange_auto_delete)
        LOG.info('Route %s: connected to RabbitMQ, draining %d tenant '
                 'queue(s)', self.route.name, len(self.queues))

    @staticmethod
    def _raise_stop():
        raise StopIteration

    def _amqp_error(self, exc, interval):
        LOG.warning('Route %s: RabbitMQ unreachable (%s), retrying in %.1fs',
                    self.route.name, exc, interval)

    def _declare_notification_queue(self, out):
        # oslo.messaging's notifier creates the listener queue (named as the
        # routing key) so notifications wait for their listener; so does
        # the bridge.
        if out.routing_key in self._declared_queues:
            return
        exchange = kombu.Exchange(self.route.exchange,
                                  type=self.route.exchange_type,
                                  durable=self.route.exchange_durable,
                                  auto_delete=self.route.exchange_auto_delete)
        kombu.Queue(out.routing_key, exchange, routing_key=out.routing_key,
                    durable=self.route.exchange_durable)(
            self.publisher.producer.channel).declare()
        self._declared_queues.add(out.routing_key)

    # -- the loop

    def run(self):
        errors = None
        while not self._stop.is_set():
            try:
                self._connect()
                errors = (self.connection.connection_errors
                          + self.connection.channel_errors)
                self._drain_due()
            except StopIteration:
                break
            except Exception as exc:
                if errors is None or not isinstance(exc, errors):
                    raise
                self.publisher = None
                self._stop.wait(self.amqp.failed(exc))
        self.connection.release()

    def _drain_due(self):
        now = time.monotonic()
        for queue in self.queues:
            if self._stop.is_set():
                return
            if queue.next_poll <= now:
                self._drain(queue)
        wake = min((q.next_poll for q in self.queues), default=now + 1.0)
        self._stop.wait(max(0.0, min(wake - time.monotonic(), 1.0)))

    def _drain(self, queue):
        client = self.clients.for_project(queue.project)
        try:
            claim = client.queue(queue.name).claim(
                ttl=self.route.claim_ttl, grace=60,
                limit=self.route.claim_limit)
            messages = list(claim)
        except zaqar_client.TRANSIENT_ERRORS as exc:
            self._zaqar_failed(queue, exc)
            return
        self.zaqar.ok()
        if not messages:
            queue.next_poll = time.monotonic() + queue.idle
            queue.idle = min(queue.idle * 2, self.route.poll_interval)
            return
        queue.idle = MIN_POLL
        queue.next_poll = 0.0
        for message in messages:
            if self._stop.is_set():
                _release(claim)
                return
            self._handle(queue, message)

    def _zaqar_failed(self, queue, exc):
        queue.next_poll = time.monotonic() + self.zaqar.failed(exc)

    def _handle(self, queue, message):
        if self.metrics:
            self.metrics.received(self.route.name)
        try:
            out = to_amqp.translate(self.route, self.conf, queue.tenant,
                                    queue.name, message.body, message.id,
                                    self.used_tokens)
        except Reject as exc:
            self._dead_letter(queue, message, exc)
            return
        except Exception as exc:
            # A poison message must not crash-loop the worker.
            LOG.exception('Route %s: cannot translate message %s',
                          self.route.name, message.id)
            self._dead_letter(queue, message, Reject(
                'bridge failed on this message: %s' % backoff.error_text(exc)))
            return
        if out.kind == 'notification':
            self._declare_notification_queue(out)
        delivered = self.publisher.publish(
            out.body, out.exchange, out.routing_key, headers=out.headers,
            mandatory=out.mandatory)
        if not delivered:
            LOG.warning('Route %s: answer %s from tenant %s dropped: the '
                        'caller\'s reply queue %s no longer exists (the call '
                        'timed out)', self.route.name, out.msg_id,
                        queue.tenant, out.routing_key)
        else:
            LOG.debug('Route %s: %s %s from tenant %s queue %s published to '
                      '%r/%s', self.route.name, out.kind, out.msg_id,
                      queue.tenant, queue.name, out.exchange,
                      out.routing_key)
        self._delete(queue, message)
        if self.metrics:
            self.metrics.forwarded(self.route.name, 0.0)

    def _dead_letter(self, queue, message, exc):
        headers = deadletter.headers(
            self.route.name, routing.TO_AMQP, exc.reason,
            exc.message_id or message.id, tenant=queue.tenant,
            zaqar_queue=queue.name, zaqar_message_id=message.id)
        self.publisher.dead_letter({'body': message.body}, self.route.name,
                                   headers)
        self._delete(queue, message)
        if self.metrics:
            self.metrics.dead_lettered(self.route.name)
        LOG.error('Route %s: message %s from tenant %s queue %s '
                  'dead-lettered: %s', self.route.name, message.id,
                  queue.tenant, queue.name, exc.reason)

    def _delete(self, queue, message):
        try:
            message.delete()
        except zaqar_client.TRANSIENT_ERRORS as exc:
            # Published but not deleted: the claim expires and the message
            # comes again (a duplicate, carrying the same id).
            LOG.warning('Route %s: could not delete message %s from tenant '
                        '%s queue %s after publishing: %s', self.route.name,
                        message.id, queue.tenant, queue.name, exc)


def _release(claim):
    try:
        claim.delete()
    except Exception:  # the claim expires by itself
        pass
