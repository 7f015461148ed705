"""The reverse path: per-tenant Zaqar queues -> an AMQP exchange.

A :class:`Reverser` runs in each worker of a to_amqp route.  The route's
tenants are split across its workers (a stable hash of the tenant modulo
``workers``), so each queue is polled by one worker only.  From a queue,
the worker claims up to ``claim_limit`` messages, publishes each one with
publisher confirms and deletes it from Zaqar only after the broker
confirmed.  A crash before the delete leaves the claim to expire
(``claim_ttl``): the message is claimed again, never lost.  Between two
claims, idle or not, the worker services its connection's heartbeats.
Answers to controllers' calls are checked by bridge/rpc/relay.py
and recorded in the process's used-token memory only once RabbitMQ
confirmed them.  When to look at which queue (polling backoff, doorbell,
safety sweep, answers due, per-tenant fairness and rate limit) is
bridge/flows/schedule.py's business; finding the messages whose ring was
lost (start-up pass, canary, recovery sweeps) bridge/flows/recovery.py's.
"""

import sys
import threading
import time
import zlib

from oslo_log import log

from bridge.amqp import connection as amqp_connection
from bridge.amqp import publisher
from bridge.amqp import topology
from bridge import backoff
from bridge.flows import answers_due
from bridge.flows import recovery as recovery_mod
from bridge.flows import schedule
from bridge import metrics as bridge_metrics
from bridge import naming
from bridge.reject import Reject
from bridge.routes.common import TO_AMQP
from bridge.rpc import relay
from bridge.translate import to_amqp
from bridge.zaqar import client as zaqar_client
from bridge.zaqar import doorbell

LOG = log.getLogger(__name__)


class Stopped(Exception):
    """Raised out of kombu's reconnect loop when the worker stops."""


def worker_of(tenant, workers):
    """The worker (0 to ``workers`` - 1) that drains ``tenant``'s queue."""
    return zlib.crc32(tenant.encode('utf-8')) % workers


class Reverser:
    def __init__(self, conf, route, clients, worker_id=0, metrics=None):
        assert route.direction == TO_AMQP
        self.conf = conf
        self.route = route
        self.clients = clients
        self.metrics = metrics or bridge_metrics.NULL
        self.worker_id = worker_id
        queues = [self._tenant_queue(t) for t in route.tenants]
        self.canary = None
        self.recovery = None
        if route.doorbell_port:
            queues, self.canary = recovery_mod.prepare(
                route, worker_id, queues, clients.own_project)
        self.schedule = schedule.Schedule(
            queues, route.poll_interval, doorbell=bool(route.doorbell_port),
            sweep_interval=route.sweep_interval,
            answer_due_window=conf.rpc.answer_due_window)
        self._next_discovery = 0.0
        self._unusable = set()   # found tenants whose queue can't be named
        self.queues = self.schedule.owned
        self.doorbell = None
        self.connection = amqp_connection.connection(conf)
        self.publisher = None
        # Answers published, shared by every route of this process.
        self.used_tokens = relay.USED
        self.zaqar = backoff.Outage(
            LOG, route.name, 'Zaqar', route.retry_max_interval,
            report=lambda up: self.metrics.connection(route.name, 'zaqar',
                                                      up))
        self.amqp = backoff.Outage(
            LOG, route.name, 'RabbitMQ', route.retry_max_interval,
            report=lambda up: self.metrics.connection(route.name,
                                                      'rabbitmq', up))
        self._stop = threading.Event()
        self._declared_queues = set()
        self._tick = amqp_connection.tick(conf, 1.0)
        self._keep_alive_at = 0.0

    def _tenant_queue(self, tenant):
        route = self.route
        project = self.clients.project_of(tenant)
        return schedule.TenantQueue(
            tenant, tenant if project == tenant else project,
            # One string for every queue of the same name.
            sys.intern(naming.render(route.zaqar_queue, tenant=tenant,
                                     route=route.name)),
            rate=route.tenant_rate_limit,
            owned=worker_of(tenant, route.workers) == self.worker_id)

    def stop(self):
        self._stop.set()
        self.schedule.wake.set()
        if self.recovery is not None:
            self.recovery.stop()

    # -- tenant discovery

    def _discover(self, now):
        """Add the tenants ``tenant_discovery`` finds (every interval)."""
        if self.route.tenant_discovery == 'none' or \
                now < self._next_discovery:
            return
        interval = self.route.tenant_discovery_interval
        self._next_discovery = now + interval
        try:
            found = self.clients.trusted_projects()
        except Exception as exc:
            LOG.warning('Route %s: cannot look for new tenants (%s), trying '
                        'again in %ds', self.route.name,
                        backoff.error_text(exc), interval)
            return
        added = []
        for tenant in sorted(found - self.schedule.tenants()
                             - self._unusable):
            try:
                queue = self._tenant_queue(tenant)
            except naming.QueueNameError as exc:
                self._unusable.add(tenant)
                LOG.error('Route %s: tenant %s found by %s is not served: '
                          'zaqar_queue %s', self.route.name, tenant,
                          self.route.tenant_discovery, exc)
                continue
            self.schedule.add(queue)
            added.append(tenant)
        if added:
            self.metrics.tenants(self.route.name, len(self.queues))
            LOG.info('Route %s: serving %d new tenant(s) found by %s: %s',
                     self.route.name, len(added),
                     self.route.tenant_discovery, ', '.join(added))

    # -- AMQP side

    def _connect(self):
        if self.publisher is not None and self.connection.connected:
            return
        self.connection.ensure_connection(
            errback=self._amqp_error, max_retries=None,
            callback=self._check_stop)
        self.publisher = publisher.Publisher(self.connection, self.conf)
        self.publisher.declare_dead_letters(self.route.name)
        self._declared_queues.clear()
        self.amqp.ok()
        self.publisher.declare_exchange(
            self.route.exchange, self.route.exchange_type,
            self.route.exchange_durable, self.route.exchange_auto_delete)
        self.metrics.tenants(self.route.name, len(self.queues))
        if not self.queues:  # no tenant in this worker's shard
            self.metrics.connection(self.route.name, 'zaqar', True)
        LOG.info('Route %s: connected to RabbitMQ, draining %d tenant '
                 'queue(s)', self.route.name, len(self.queues))

    def _check_stop(self):
        """kombu calls this while it waits to reconnect: stop waiting."""
        if self._stop.is_set():
            raise Stopped()

    def _amqp_error(self, exc, interval):
        self.metrics.connection(self.route.name, 'rabbitmq', False)
        LOG.warning('Route %s: RabbitMQ unreachable (%s), retrying in %.1fs',
                    self.route.name, exc, interval)

    def _declare_notification_queue(self, out):
        # oslo.messaging's notifier creates the listener queue (named as the
        # routing key) so notifications wait for their listener; so does
        # the bridge.
        if out.routing_key in self._declared_queues:
            return
        topology.notification_queue(self.route, out.routing_key)(
            self.publisher.producer.channel).declare()
        self._declared_queues.add(out.routing_key)

    # -- the loop

    def run(self):
        hints = answers_due.Listener(self.route.name,
                                     self.schedule.answer_due).start()
        if self.route.doorbell_port:
            self.doorbell = doorbell.Doorbell(
                self.route.name, self.route.doorbell_host,
                self.route.doorbell_port, self.route.doorbell_url,
                self.conf.rpc.reply_secret, self.schedule.ring,
                self.metrics).start()
            self.recovery = recovery_mod.Recovery(
                self.route, self.clients, self.schedule, self.doorbell,
                self.canary, self.conf.zaqar.trust_recheck_interval)
            if not self._stop.is_set():
                self.recovery.start()
        errors = None
        try:
            while not self._stop.is_set():
                try:
                    self._connect()
                    errors = (self.connection.connection_errors
                              + self.connection.channel_errors)
                    self._drain_due()
                except Stopped:
                    break
                except Exception as exc:
                    if errors is None or not isinstance(exc, errors):
                        raise
                    self.publisher = None
                    # A connection given up on (e.g. its heartbeats were
                    # missed) may look open: drop it, as kombu's ensure()
                    # does, so the next round opens a new one.
                    self.connection.collect()
                    self._stop.wait(self.amqp.failed(exc))
        finally:
            hints.stop()
            if self.recovery is not None:
                self.recovery.stop()
            if self.doorbell is not None:
                self.doorbell.stop()
            self.connection.release()

    def _drain_due(self):
        """One round: at most one claim from each queue that is due."""
        self._discover(time.monotonic())
        for queue in self.schedule.due(time.monotonic()):
            if self._stop.is_set():
                return
            self._keep_alive()
            self._drain(queue)
        self._keep_alive()
        wake = self.schedule.wake
        wake.wait(min(self._tick,
                      self.schedule.next_wake(time.monotonic())))
        wake.clear()

    def _keep_alive(self):
        """Service the connection's heartbeats, every ``_tick`` seconds.

        Publishing alone leaves a quiet route's connection idle, and
        RabbitMQ closes one whose heartbeats stop: the next answer would
        find it gone.
        """
        now = time.monotonic()
        if now >= self._keep_alive_at:
            amqp_connection.keep_alive(self.connection)
            self._keep_alive_at = now + self._tick

    def _drain(self, queue):
        now = time.monotonic()
        limit = queue.allowance(self.route.claim_limit, now)
        if limit < 1:
            self.schedule.got(queue, 0, now)
            return
        rings = queue.rings
        try:
            client = self.clients.for_project(queue.project)
            if queue.owned and self.recovery is not None:
                self.recovery.subscribe(queue, client)
            started = time.monotonic()
            claim = client.queue(queue.name).claim(
                ttl=self.route.claim_ttl, grace=60, limit=limit)
            messages = list(claim)
        except zaqar_client.AccessError:
            # This tenant's trust is gone (logged once by the trusts
            # module): only its queue waits, Zaqar is not down.
            queue.subscribed = False
            self.schedule.retry_in(queue, self.conf.zaqar.
                                   trust_recheck_interval, time.monotonic())
            return
        except zaqar_client.TRANSIENT_ERRORS as exc:
            self._zaqar_failed(queue, exc)
            return
        if self.zaqar.down and self.recovery is not None:
            # Rings queued in zaqar-server when it went away are lost.
            self.recovery.request('Zaqar was unreachable')
        self.zaqar.ok()
        if queue.canary:
            for message in self.recovery.canaries_rang(queue, messages,
                                                       limit, rings):
                self._delete(queue, message)
            return
        if queue.swept:
            queue.swept = False
            if messages and self.route.doorbell_port:
                LOG.info('Route %s: the safety sweep found messages in tenant '
                         '%s queue %s; subscribing its doorbell again',
                         self.route.name, queue.tenant, queue.name)
                queue.subscribed = False
        if not messages:
            self.schedule.empty(queue, time.monotonic(), rings,
                                started=started)
            return
        self.schedule.got(queue, len(messages), time.monotonic(), limit,
                          rings, started=started)
        self.metrics.in_flight(self.route.name, len(messages))
        handled = 0
        try:
            for message in messages:
                if self._stop.is_set():
                    _release(claim)
                    return
                self._handle(queue, message)
                handled += 1
        except Exception:
            # RabbitMQ went away mid-claim: give the rest back now, to be
            # claimed again once it is back, rather than after claim_ttl.
            self.metrics.retried(self.route.name, len(messages) - handled)
            # Nothing rings for them again: look once RabbitMQ is back.
            expires = 0.0 if _release(claim) else self.route.claim_ttl
            self.schedule.look_at(queue, time.monotonic() + expires)
            raise
        finally:
            self.metrics.in_flight(self.route.name, 0)

    def _zaqar_failed(self, queue, exc):
        self.schedule.retry_in(queue, self.zaqar.failed(exc),
                               time.monotonic())

    def _handle(self, queue, message):
        self.metrics.received(self.route.name)
        received_at = time.monotonic()
        rejected = None
        try:
            out = to_amqp.translate(self.route, self.conf, queue.tenant,
                                    queue.name, message.body, message.id,
                                    self.used_tokens)
        except Reject as exc:
            rejected = exc
        except Exception as exc:
            # A poison message must not crash-loop the worker.
            LOG.exception('Route %s: cannot translate message %s',
                          self.route.name, message.id)
            rejected = Reject('bridge failed on this message: %s'
                              % backoff.error_text(exc))
        if rejected is not None:
            # Outside the except block: oslo.log would append the
            # exception to the line again.
            self._dead_letter(queue, message, rejected)
            return
        if out.kind == 'notification':
            self._declare_notification_queue(out)
        delivered = self.publisher.publish(
            out.body, out.exchange, out.routing_key, headers=out.headers,
            mandatory=out.mandatory)
        if out.answer is not None:
            # Confirmed by RabbitMQ (delivered or returned): only now is
            # the token used, so an answer lost on the way can come again.
            self.used_tokens.published(*out.answer)
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
        self.metrics.forwarded(self.route.name,
                               time.monotonic() - received_at)

    def _dead_letter(self, queue, message, exc):
        headers = topology.headers(
            self.route.name, self.route.direction, exc.reason,
            exc.message_id or message.id, tenant=queue.tenant,
            zaqar_queue=queue.name, zaqar_message_id=message.id)
        self.publisher.dead_letter({'body': message.body}, self.route.name,
                                   headers)
        self._delete(queue, message)
        self.metrics.dead_lettered(self.route.name)
        LOG.error('Route %s: message %s (Zaqar id %s) from tenant %s queue '
                  '%s dead-lettered: %s', self.route.name,
                  exc.message_id or '?', message.id, queue.tenant,
                  queue.name, exc.reason)

    def _delete(self, queue, message):
        try:
            message.delete()
        except zaqar_client.TRANSIENT_ERRORS as exc:
            # Published but not deleted: the claim expires and the message
            # comes again (a duplicate, carrying the same id), with no
            # ring: look for it then.
            self.schedule.look_at(queue, time.monotonic()
                                  + self.route.claim_ttl + schedule.RECHECK)
            LOG.warning('Route %s: could not delete message %s from tenant '
                        '%s queue %s after publishing: %s', self.route.name,
                        message.id, queue.tenant, queue.name, exc)


def _release(claim):
    """Give the claimed messages back; False if they wait for the claim
    to expire."""
    try:
        claim.delete()
    except Exception:  # the claim expires by itself
        return False
    return True
