"""Reading the metrics: health, ``/metrics`` and ``/healthz``.

Every process writes its metrics to the directory set up by
bridge.metrics; this module merges them.  The daemon is healthy when every
route (``bridge_workers_configured``, written by the master) has all its
workers running and each of them connected to both RabbitMQ and Zaqar.
The same verdict answers ``/healthz`` and decides when systemd hears
``READY=1``; ``WATCHDOG=1`` only needs every worker running, as the
workers reconnect by themselves (bridge.notify).
"""

import collections
import dataclasses
import socket
import socketserver
from wsgiref import simple_server

from oslo_log import log

from bridge import metrics as bridge_metrics

LOG = log.getLogger(__name__)


def collect(path):
    """The merged metric families of every process."""
    from prometheus_client import multiprocess
    return list(multiprocess.MultiProcessCollector(None, path).collect())


@dataclasses.dataclass
class Health:
    routes: int = 0
    problems: list = dataclasses.field(default_factory=list)  # workers
    totals: dict = dataclasses.field(default_factory=dict)
    down: list = dataclasses.field(default_factory=list)      # sides

    @property
    def ok(self):
        """Every worker running and connected to both sides."""
        return self.alive and not self.down

    @property
    def alive(self):
        """Every worker running (maybe retrying an unreachable side)."""
        return self.routes > 0 and not self.problems

    def status(self):
        """One line for systemd's STATUS=."""
        counts = 'forwarded %d msgs, dead-lettered %d' % (
            self.totals.get('forwarded', 0),
            self.totals.get('dead_lettered', 0))
        if self.ok:
            return '%d route%s, %s' % (
                self.routes, '' if self.routes == 1 else 's', counts)
        return '%s; %s' % (', '.join(self.problems + self.down)
                           or 'no route', counts)


def check(path):
    """The health of the daemon whose processes write to ``path``."""
    values = collections.defaultdict(dict)
    totals = collections.Counter()
    for family in collect(path):
        for sample in family.samples:
            if sample.name.startswith('bridge_messages_') and \
                    sample.name.endswith('_total'):
                totals[sample.name[len('bridge_messages_'):-6]] += \
                    sample.value
            labels = sample.labels
            key = (labels.get('route'), labels.get('side'))
            values[sample.name][key] = sample.value
    health = Health(totals=dict(totals))
    configured = values['bridge_workers_configured']
    for (route, _), wanted in sorted(configured.items()):
        if wanted < 1:
            continue
        health.routes += 1
        running = values['bridge_workers'].get((route, None), 0)
        if running < wanted:
            health.problems.append('route %s: %d/%d workers running'
                                   % (route, running, wanted))
            continue
        for side in bridge_metrics.SIDES:
            if values['bridge_connection_up'].get((route, side), 0) < 1:
                health.down.append('route %s: %s down' % (route, side))
    return health


# -- the HTTP endpoint

def application(path):
    """A WSGI app: /metrics (Prometheus text), /healthz (200 ok or 503)."""
    from prometheus_client import exposition
    from prometheus_client import multiprocess
    from prometheus_client import registry
    collectors = registry.CollectorRegistry()
    multiprocess.MultiProcessCollector(collectors, path)

    def app(environ, start_response):
        url = environ.get('PATH_INFO', '/')
        if url == '/metrics':
            body = exposition.generate_latest(collectors)
            start_response('200 OK', [
                ('Content-Type', exposition.CONTENT_TYPE_LATEST)])
            return [body]
        if url == '/healthz':
            health = check(path)
            if health.ok:
                status, text = '200 OK', 'ok\n'
            else:
                status = '503 Service Unavailable'
                text = '\n'.join(health.problems + health.down
                                 or ['no route']) + '\n'
            start_response(status, [
                ('Content-Type', 'text/plain; charset=utf-8')])
            return [text.encode('utf-8')]
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'/metrics or /healthz\n']
    return app


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):
        LOG.debug('metrics endpoint: ' + format, *args)


def make_server(host, port, path):
    """The metrics endpoint, bound (not yet serving)."""
    server_class = _Server6 if ':' in host else _Server
    return simple_server.make_server(host, port, application(path),
                                     server_class=server_class,
                                     handler_class=_Handler)
