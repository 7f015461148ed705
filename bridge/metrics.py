"""Prometheus metrics, written by every process of the daemon.

The workers are separate processes forked by cotyledon, so metrics use
prometheus_client's multiprocess mode: each process writes its values to
memory-mapped files in one directory (``PROMETHEUS_MULTIPROC_DIR``) and
whoever reads them (bridge.health: ``/metrics``, ``/healthz``, systemd
notifications) merges the files.  The master prepares that directory
(:func:`setup`) before any worker starts, and removes the files of a dead
worker's live gauges (:func:`forget_dead_processes`) so a crashed worker
neither holds messages nor keeps a route "connected".

Per route:

* ``bridge_messages_{received,forwarded,retried,dead_lettered}_total``
* ``bridge_forward_latency_seconds`` (histogram, received -> delivered)
* ``bridge_in_flight``: messages held unacknowledged or claimed (summed
  over the live workers)
* ``bridge_connection_up{side=rabbitmq|zaqar}``: 1 when every live worker
  of the route is connected to that side (the minimum over the workers)
* ``bridge_tenants``: tenant queues a to_amqp route drains (summed over
  the live workers, each counting its shard; grows with
  ``tenant_discovery``)
* ``bridge_doorbell_rings_refused_total{reason}``: doorbell rings dropped
  because their proof was ``missing``, ``malformed`` or ``invalid`` (a
  forgery, or a subscription not signed with this ``[rpc] reply_secret``)
* ``bridge_workers``: live worker processes, and
  ``bridge_workers_configured``: how many the route should have (written
  by the master)

A process makes one :class:`Metrics`.  :data:`NULL` does nothing, for
code run outside the daemon (tests, the CLI).
"""

import atexit
import glob
import os
import shutil
import tempfile

from oslo_config import cfg
from oslo_log import log

LOG = log.getLogger(__name__)

GROUP = 'metrics'
ENV = 'PROMETHEUS_MULTIPROC_DIR'
SIDES = ('rabbitmq', 'zaqar')

OPTS = [
    cfg.BoolOpt('enabled', default=True,
                help='Serve /metrics (Prometheus) and /healthz over HTTP '
                     'from a process of its own. Metrics are kept, and '
                     'systemd is notified, either way.'),
    cfg.HostAddressOpt('bind_host', default='127.0.0.1',
                       help='Address the metrics endpoint listens on.'),
    cfg.PortOpt('port', default=9465,
                help='Port the metrics endpoint listens on.'),
    cfg.StrOpt('multiproc_dir',
               help='Directory where each process keeps its metrics '
                    '(prometheus_client\'s PROMETHEUS_MULTIPROC_DIR); '
                    'created if missing and emptied at start. Unset: a '
                    'private temporary directory, removed at exit.'),
    cfg.FloatOpt('zaqar_check_interval', default=10.0, min=0.1,
                 help='Seconds between reachability checks of Zaqar by a '
                      'to_zaqar worker that has nothing to post, so '
                      '/healthz and systemd\'s STATUS= see an outage '
                      'without traffic.'),
]

# Received -> delivered: milliseconds normally, up to an outage's length.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0, float('inf'))


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def setup(conf):
    """Prepare the metrics directory; call in the master, before workers.

    Returns the directory.  A directory of our own is removed when the
    master exits.
    """
    path = conf[GROUP].multiproc_dir
    master = os.getpid()
    if path:
        os.makedirs(path, exist_ok=True)
        for name in glob.glob(os.path.join(path, '*.db')):
            os.remove(name)
    else:
        path = tempfile.mkdtemp(prefix='amqp-zaqar-bridge-metrics-')

        def cleanup():
            if os.getpid() == master:  # not in a forked child
                shutil.rmtree(path, ignore_errors=True)
        atexit.register(cleanup)
    use_dir(path)
    return path


def use_dir(path):
    """Make prometheus_client write to ``path`` in this process and its
    children."""
    os.environ[ENV] = path
    from prometheus_client import values
    if not getattr(values.ValueClass, '_multiprocess', False):
        # prometheus_client picks its value class when first imported;
        # if that was before the variable was set, pick again.
        values.ValueClass = values.get_value_class()


def forget_dead_processes(path=None):
    """Drop the live gauges of processes that are gone.

    For cotyledon's ``on_dead_worker`` hook, which is not told the pid: any
    process with files in the directory that no longer exists is dead.
    """
    from prometheus_client import multiprocess
    path = path or os.environ.get(ENV)
    if not path:
        return
    for pid in _pids(path):
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, path)


def _pids(path):
    pids = set()
    for name in glob.glob(os.path.join(path, 'gauge_live*_*.db')):
        pid = os.path.basename(name)[:-3].rsplit('_', 1)[-1]
        if pid.isdigit():
            pids.add(int(pid))
    return pids


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Metrics:
    """The metrics of one process (the worker of a route, or the master).

    Make one per process, after :func:`setup` (or :func:`use_dir`).
    """

    def __init__(self):
        import prometheus_client as prom

        def counter(name, doc):
            return prom.Counter(name, doc, ['route'], registry=None)

        self._received = counter(
            'bridge_messages_received',
            'Messages taken from the source side (RabbitMQ for to_zaqar '
            'routes, Zaqar for to_amqp routes).')
        self._forwarded = counter(
            'bridge_messages_forwarded',
            'Messages delivered to the other side and acknowledged.')
        self._retried = counter(
            'bridge_messages_retried',
            'Messages whose delivery failed and will be tried again.')
        self._dead_lettered = counter(
            'bridge_messages_dead_lettered',
            'Messages sent to the dead-letter queue.')
        self._latency = prom.Histogram(
            'bridge_forward_latency_seconds',
            'Seconds from receiving a message to its delivery.', ['route'],
            buckets=LATENCY_BUCKETS, registry=None)
        self._in_flight = prom.Gauge(
            'bridge_in_flight',
            'Messages received but not yet acknowledged (to_zaqar) or '
            'claimed but not yet deleted (to_amqp).', ['route'],
            multiprocess_mode='livesum', registry=None)
        self._connection = prom.Gauge(
            'bridge_connection_up',
            '1 when every live worker of the route is connected to that '
            'side, else 0.', ['route', 'side'], multiprocess_mode='livemin',
            registry=None)
        self._tenants = prom.Gauge(
            'bridge_tenants',
            'Tenant queues the route drains (to_amqp).', ['route'],
            multiprocess_mode='livesum', registry=None)
        self._rings_refused = prom.Counter(
            'bridge_doorbell_rings_refused',
            'Doorbell rings dropped for lack of a valid proof, by reason '
            '(missing, malformed, invalid); none made the bridge claim.',
            ['route', 'reason'], registry=None)
        self._workers = prom.Gauge(
            'bridge_workers', 'Live worker processes of the route.',
            ['route'], multiprocess_mode='livesum', registry=None)
        self._configured = prom.Gauge(
            'bridge_workers_configured',
            'Worker processes the route should have.', ['route'],
            multiprocess_mode='livemax', registry=None)
        self._children = {}

    def _child(self, metric, *labels):
        """``metric.labels(*labels)``, looked up once (a message costs a
        few of these: prometheus_client checks the labels every time)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the master

    def configured(self, route, workers):
        """The route runs ``workers`` processes (0: no longer a route)."""
        self._configured.labels(route).set(workers)

    # -- a worker

    def worker_started(self, route):
        """Count this process; both sides are down until it says so."""
        self._workers.labels(route).set(1)
        for side in SIDES:
            self._connection.labels(route, side).set(0)
        self._in_flight.labels(route).set(0)
        for metric in (self._received, self._forwarded, self._retried,
                       self._dead_lettered):
            metric.labels(route)  # shown as 0 before the first message

    def received(self, route, n=1):
        self._child(self._received, route).inc(n)

    def forwarded(self, route, *latency_seconds):
        """Messages were delivered, each ``latency_seconds`` after it was
        received."""
        self._child(self._forwarded, route).inc(len(latency_seconds))
        latency = self._child(self._latency, route)
        for seconds in latency_seconds:
            latency.observe(max(0.0, seconds))

    def retried(self, route, n=1):
        self._child(self._retried, route).inc(n)

    def dead_lettered(self, route):
        self._child(self._dead_lettered, route).inc()

    def in_flight(self, route, n):
        """This process now holds ``n`` messages of the route."""
        self._child(self._in_flight, route).set(n)

    def connection(self, route, side, up):
        """This process is (or is not) connected to ``side``."""
        self._connection.labels(route, side).set(1 if up else 0)

    def tenants(self, route, n):
        """This process drains ``n`` tenant queues of the route."""
        self._tenants.labels(route).set(n)

    def ring_refused(self, route, reason):
        """A doorbell ring without a valid proof was dropped."""
        self._rings_refused.labels(route, reason).inc()


class NullMetrics:
    """Same methods as :class:`Metrics`, doing nothing."""

    def _nothing(self, *args, **kwargs):
        pass

    configured = worker_started = received = forwarded = retried = \
        dead_lettered = in_flight = connection = tenants = ring_refused = \
        _nothing


NULL = NullMetrics()
