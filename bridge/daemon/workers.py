"""cotyledon services: the worker processes of the daemon.

Each route runs ``workers`` processes of the service for its direction;
the replies service consumes ``[rpc] amqp_reply_queue`` when any route
passes oslo.messaging calls.  Connections are opened in the child
(``run``), never in the manager.  ``terminate`` (SIGTERM) stops taking new
messages, lets the current batch finish or be released, and returns
within the grace period; a worker that dies is respawned by cotyledon with
the same ``worker_id``.  Each worker writes its metrics (bridge.metrics);
:class:`MetricsService` serves them with ``/healthz``.
"""

import threading

import cotyledon
from oslo_log import log

from bridge.daemon import health
from bridge.flows import forward
from bridge.flows import reverse
from bridge import metrics
from bridge.routes.common import TO_AMQP
from bridge.routes.common import TO_ZAQAR
from bridge.rpc import replies
from bridge.translate import to_zaqar
from bridge.zaqar import clients as zaqar_clients

LOG = log.getLogger(__name__)


class Worker(cotyledon.Service):
    """A service whose ``run`` is a loop that ``stop`` ends."""

    def __init__(self, worker_id, conf, route):
        super().__init__(worker_id)
        self.conf = conf
        self.route = route
        self.name = self.describe()
        self._done = threading.Event()
        self._loop = None
        self.metrics = None

    def describe(self):
        return '%s %s' % (self.__class__.name, self.route.name)

    def build(self):
        """Return the object running the loop (has run() and stop())."""
        raise NotImplementedError

    def run(self):
        try:
            self.metrics = metrics.Metrics()
            self.metrics.worker_started(self.route.name)
            self._loop = self.build(zaqar_clients.Clients(self.conf))
            self._loop.run()
        finally:
            self._done.set()

    def terminate(self):
        if self._loop is not None:
            self._loop.stop()
            self._done.wait()

    def reload(self):
        """SIGHUP reaches every worker; bridge/daemon/reload.py decides.

        A worker whose route did not change keeps running; the others are
        stopped and started again by the manager.
        """


class ForwardService(Worker):
    name = 'forward'

    def build(self, clients):
        return forward.Forwarder(self.conf, self.route, clients,
                                 metrics=self.metrics)


class ReverseService(Worker):
    name = 'reverse'

    def build(self, clients):
        return reverse.Reverser(self.conf, self.route, clients,
                                self.worker_id, metrics=self.metrics)


class RepliesService(Worker):
    """Runs the replies route (bridge/rpc/replies.py)."""

    name = 'replies'

    def build(self, clients):
        return forward.Forwarder(self.conf, self.route, clients,
                                 metrics=self.metrics,
                                 translate=to_zaqar.translate_reply)


# The service running each kind of route.
SERVICES = {TO_ZAQAR: ForwardService, TO_AMQP: ReverseService,
            replies.KIND: RepliesService}


def service_for(route):
    return SERVICES[route.kind]


class MetricsService(cotyledon.Service):
    """``/metrics`` and ``/healthz`` over HTTP ([metrics] options)."""

    name = 'metrics'

    def __init__(self, worker_id, conf, path):
        super().__init__(worker_id)
        self.conf = conf
        self.path = path
        self.server = None
        self._stop = threading.Event()

    def run(self):
        group = self.conf.metrics
        failures = 0
        while not self._stop.is_set():
            try:
                self.server = health.make_server(group.bind_host, group.port,
                                                 self.path)
                break
            except OSError as exc:
                # Not fatal: the bridge works without its endpoint.
                (LOG.debug if failures else LOG.error)(
                    'Metrics endpoint cannot listen on %s port %d (%s); '
                    'trying again', group.bind_host, group.port, exc)
                failures += 1
                self._stop.wait(5.0)
        if self.server is None:
            return
        LOG.info('Metrics endpoint on http://%s:%d/metrics and /healthz',
                 group.bind_host, group.port)
        try:
            self.server.serve_forever(poll_interval=0.5)
        finally:
            self.server.server_close()

    def terminate(self):
        self._stop.set()
        if self.server is not None:
            self.server.shutdown()
