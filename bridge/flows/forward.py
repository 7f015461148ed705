"""The forward path: an AMQP exchange -> per-tenant Zaqar queues.

One :class:`Forwarder` per worker process: a kombu ``ConsumerMixin`` on the
route's durable queue.  Receiving does no I/O: each delivery is translated
(bridge.translate.to_zaqar) and put in a batch, or marked for the dead
letters.  Between deliveries, :meth:`on_iteration` posts the batches that
are due and acknowledges their messages once Zaqar answered 201.

While more deliveries wait, the last post of a turn is left in flight: the
worker reads and translates the next ones while Zaqar stores it, and reads
its answer on a later turn (before it posts again, or once nothing else
waits).  One post at a time is in flight per worker, as when it waits for
each answer; a lone message (an RPC call...) is still posted and answered
at once.

While Zaqar is unreachable nothing is acknowledged; batches wait with a
capped backoff, the consumer keeps reading the connection (heartbeats stay
alive) and RabbitMQ stops delivering at ``prefetch`` unacknowledged
messages, so memory stays bounded and the backlog stays in RabbitMQ.
"""

import logging
import time

from kombu import mixins
from oslo_log import log

from bridge.amqp import acks
from bridge.amqp import connection as amqp_connection
from bridge.amqp import consumer
from bridge.amqp import publisher
from bridge.amqp import topology
from bridge import backoff
from bridge import batch
from bridge.flows import answers_due
from bridge import metrics as bridge_metrics
from bridge.reject import Reject
from bridge.translate import to_zaqar
from bridge.zaqar import client as zaqar_client

LOG = log.getLogger(__name__)

# While messages flow, the metrics of received and held messages are
# written at most this often (seconds); at once when nothing is held.
REPORT_INTERVAL = 0.5


class Forwarder(mixins.ConsumerMixin):
    def __init__(self, conf, route, clients, metrics=None,
                 translate=to_zaqar.translate):
        consumer.log_lost_connections(route.name)
        self.translate = translate
        self.conf = conf
        self.route = route
        self.clients = clients
        self.metrics = metrics or bridge_metrics.NULL
        self.connection = amqp_connection.connection(conf, buffered=True)
        self.batches = batch.Batches(
            route.batch_size,
            conf.zaqar.max_messages_post_size - to_zaqar.POST_OVERHEAD,
            route.batch_timeout)
        self.dead = []
        self.acks = acks.Acks()
        self.hints = answers_due.Sender(conf.rpc.answer_due_window > 0)
        self.zaqar = backoff.Outage(
            LOG, route.name, 'Zaqar', route.retry_max_interval,
            report=lambda up: self.metrics.connection(route.name, 'zaqar',
                                                      up))
        self.retry_at = 0.0
        self.check_at = 0.0  # next look at an idle Zaqar
        self.in_flight = None  # (batch, zaqar_http.Posting) not answered
        self.publisher = None
        self.active = None
        self.connected = False
        self.received = 0         # not yet counted in the metrics
        self.report_at = 0.0
        self.held_reported = None

    def run(self, **kwargs):
        kwargs.setdefault('safety_interval',
                          min(0.1, max(0.01, self.route.batch_timeout)))
        super().run(**kwargs)

    def stop(self):
        self.should_stop = True

    # -- kombu ConsumerMixin hooks

    def get_consumers(self, Consumer, channel):
        queue = topology.route_queue(self.route, self.conf)
        return [Consumer(queues=[queue], on_message=self.on_message,
                         prefetch_count=self.route.prefetch,
                         no_ack=False)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        # Deliveries of a previous connection are redelivered by RabbitMQ.
        if self.in_flight is not None:
            self.in_flight[1].close()
            self.in_flight = None
        self.batches.clear()
        self.acks.clear()
        self.dead = []
        # A loop turn at least every batch: a full batch is posted, and
        # the answer to the one in flight read, without waiting for the
        # rest of a burst (up to ``prefetch`` deliveries) to be read.
        connection.connection.methods_per_turn = self.route.batch_size
        self.publisher = publisher.Publisher(connection, self.conf)
        self.publisher.declare_dead_letters(self.route.name)
        self.active = connection
        self.connected = True
        self.metrics.connection(self.route.name, 'rabbitmq', True)
        LOG.info('Route %s: consuming queue %s on exchange %s',
                 self.route.name, self.route.amqp_queue, self.route.exchange)

    def on_connection_error(self, exc, interval):
        self.connected = False
        self.metrics.connection(self.route.name, 'rabbitmq', False)
        LOG.warning('Route %s: RabbitMQ unreachable (%s), retrying in %.1fs',
                    self.route.name, exc, interval)

    def on_consume_end(self, connection, channel):
        # Stopping: one last attempt for what was received; the rest is
        # requeued by RabbitMQ when the connection closes.
        self.flush(force=True, last=True)
        self.hints.close()
        self.report()
        self.connected = False
        self.metrics.connection(self.route.name, 'rabbitmq', False)

    def on_iteration(self):
        # A post in flight is answered once nothing else is to be done.
        if self.in_flight is not None and (
                self.in_flight[1].ready() or not self._more_waiting()):
            self.finish_post()
        # A burst is batched; a lone message (an RPC call...) goes at once.
        if self.batches.pending or self.dead:
            self.flush(force=bool(self.batches.pending)
                       and not self._more_waiting())
        self.check_zaqar()
        self.report()

    def report(self):
        """Received and held messages to the metrics.

        Whether any message is held is always told at once (the fault
        suite reads the gauge to kill a worker that holds some); while
        messages flow, the figures are written every REPORT_INTERVAL, not
        for each of the many iterations of a burst.
        """
        held = self.batches.pending + len(self.dead)
        if self.in_flight is not None:
            held += len(self.in_flight[0].items)
        if held:
            if self.held_reported and time.monotonic() < self.report_at:
                return
        elif not self.received and self.held_reported == 0:
            return
        if self.received:
            self.metrics.received(self.route.name, self.received)
            self.received = 0
        self.metrics.in_flight(self.route.name, held)
        self.held_reported = held
        self.report_at = time.monotonic() + REPORT_INTERVAL

    def _more_waiting(self):
        """Is another delivery already waiting on the connection?"""
        return consumer.more_waiting(self.active)

    # -- receiving

    def origin(self, message):
        """The exchange and routing key ``message`` was published with.

        A dead letter replayed by ``amqp-zaqar-bridge-manage dead-letters
        replay`` comes straight into this route's queue through the default
        exchange, and says where it was first published in its
        x-bridge-exchange and x-bridge-routing-key headers.
        """
        delivery = message.delivery_info or {}
        exchange = delivery.get('exchange', self.route.exchange)
        routing_key = delivery.get('routing_key', '')
        headers = message.headers or {}
        if exchange == '' and routing_key == self.route.amqp_queue and \
                topology.ORIGIN_ROUTING_KEY in headers:
            return (headers.get(topology.ORIGIN_EXCHANGE,
                                self.route.exchange),
                    headers[topology.ORIGIN_ROUTING_KEY])
        return exchange, routing_key

    def on_message(self, message):
        self.received += 1
        self.acks.received(message)
        props = message.properties or {}
        exchange, routing_key = self.origin(message)
        try:
            out = self.translate(
                self.route, self.conf, self.clients.project_of,
                message.body, exchange, routing_key, message.headers, props,
                message.content_type)
        except Reject as exc:
            self.dead.append((message, exc))
            return
        except Exception as exc:
            # A poison message must not crash-loop the worker.
            LOG.exception('Route %s: cannot translate a message',
                          self.route.name)
            reason = 'bridge failed on this message: %s' % (
                backoff.error_text(exc))
            self.dead.append((message, Reject(reason)))
            return
        out.received_at = time.monotonic()
        self.batches.add((out.project, out.queue), (message, out), out.size)

    # -- sending

    def flush(self, force=False, last=False):
        while self.dead:
            message, exc = self.dead.pop(0)
            self._dead_letter(message, exc)
        now = time.monotonic()
        if now < self.retry_at and not last:
            return
        todo = self.batches.due(now, force=force)
        if not todo and not last:
            return
        if self.in_flight is not None and not self.finish_post(last):
            self._retry_later(todo, now, last)
            return
        for i, one in enumerate(todo):
            # The last one may stay in flight while more deliveries wait.
            keep = (i == len(todo) - 1 and not last and self._more_waiting())
            if not self._post(one, last, keep):
                self._retry_later(todo[i:], now, last)
                return

    def _retry_later(self, unposted, now, last):
        """After a failed post, everything still unposted waits for the
        next try (stopping: RabbitMQ requeues it)."""
        if not last:
            for rest in unposted + self.batches.due(now, force=True):
                self.batches.put_back(rest)

    def finish_post(self, last=False):
        """Read the answer to the post in flight; False if it failed (the
        batch is back with the others, for the next try)."""
        todo, posting = self.in_flight
        self.in_flight = None
        if self._answered(todo, posting, last):
            return True
        if not last:
            self.batches.put_back(todo)
        return False

    def _post(self, todo, last=False, keep=False):
        """Post one batch; with ``keep``, leave it in flight (answered by
        :meth:`finish_post`).  False if it failed."""
        project, queue = todo.key
        client = self.clients.for_project(project)
        try:
            posting = client.post_json_start(queue, to_zaqar.post_data(
                out for _, out in todo.items))
        except zaqar_client.PERMANENT_ERRORS as exc:
            return self._refused(todo, exc)
        except zaqar_client.TRANSIENT_ERRORS as exc:
            self._zaqar_failed(todo, exc, last)
            return False
        if keep:
            self.in_flight = (todo, posting)
            return True
        return self._answered(todo, posting, last)

    def _answered(self, todo, posting, last):
        """Wait for Zaqar's answer to ``todo``'s post, and acknowledge its
        messages when stored.  False if it failed."""
        try:
            posting.result()
        except zaqar_client.PERMANENT_ERRORS as exc:
            return self._refused(todo, exc)
        except zaqar_client.TRANSIENT_ERRORS as exc:
            self._zaqar_failed(todo, exc, last)
            return False
        self._zaqar_ok()
        self.acks.ack([message for message, _ in todo.items])
        now = time.monotonic()
        for _, out in todo.items:
            if out.answer_queue:
                self.hints.answer_due(out.tenant, out.answer_queue)
        self.metrics.forwarded(self.route.name, *[
            now - out.received_at for _, out in todo.items])
        if LOG.isEnabledFor(logging.DEBUG):
            for _, out in todo.items:
                LOG.debug('Route %s: forwarded message %s to tenant %s '
                          'queue %s', self.route.name, out.msg_id,
                          out.tenant, out.queue)
        return True

    def _refused(self, todo, exc):
        """Zaqar said 4xx: retry one by one to find the refused message."""
        if len(todo.items) > 1:
            _, queue = todo.key
            LOG.warning('Route %s: Zaqar refused a batch of %d messages for '
                        'tenant %s queue %s (%s); posting them one by one',
                        self.route.name, len(todo.items),
                        todo.items[0][1].tenant, queue,
                        backoff.error_text(exc))
            for item in todo.items:
                single = batch.Batch(todo.key, todo.started)
                single.items.append(item)
                single.size = item[1].size
                self.batches.put_back(single)
            return True
        message, out = todo.items[0]
        self._dead_letter(message, Reject(
            'zaqar refused the message for tenant %s queue %s: %s'
            % (out.tenant, out.queue, backoff.error_text(exc)), out.msg_id))
        return True

    def _zaqar_failed(self, todo, exc, last):
        self.metrics.retried(self.route.name, len(todo.items))
        delay = self.zaqar.failed(exc, '; %d message(s) wait unacknowledged'
                                  % (self.batches.pending + len(todo.items)))
        self.retry_at = time.monotonic() + delay

    def _zaqar_ok(self):
        self.zaqar.ok()
        self.retry_at = 0.0
        self.check_at = (time.monotonic()
                         + self.conf.metrics.zaqar_check_interval)

    def check_zaqar(self):
        """With nothing to post, ask Zaqar now and then if it is there.

        Health (/healthz, systemd's STATUS=) then sees a Zaqar outage, and
        its end, without traffic.  Posts are the check while batches wait.
        """
        now = time.monotonic()
        if self.batches.pending or self.in_flight is not None or now < (
                self.retry_at if self.zaqar.down else self.check_at):
            return
        try:
            self.clients.check()
        except Exception as exc:
            self.retry_at = now + self.zaqar.failed(exc)
            return
        self._zaqar_ok()

    def _dead_letter(self, message, exc):
        exchange, routing_key = self.origin(message)
        headers = dict(message.headers or {})
        headers.update(topology.headers(
            self.route.name, self.route.direction, exc.reason, exc.message_id,
            exchange=exchange, routing_key=routing_key))
        self.publisher.dead_letter(message.body, self.route.name, headers,
                                   content_type=message.content_type)
        self.acks.ack([message])
        self.metrics.dead_lettered(self.route.name)
        LOG.error('Route %s: message %s dead-lettered: %s (routing key %s)',
                  self.route.name, exc.message_id or '?', exc.reason,
                  routing_key)
