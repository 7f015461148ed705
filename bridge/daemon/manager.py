"""The supervised daemon: one cotyledon service per route."""

import threading

import cotyledon
from cotyledon import oslo_config_glue
from oslo_log import log

from bridge.daemon import notify
from bridge.daemon import reload
from bridge.daemon import workers
from bridge.flows import answers_due
from bridge import metrics

LOG = log.getLogger(__name__)


class ServiceManager(cotyledon.ServiceManager):
    """cotyledon's manager, with metrics and systemd notifications.

    It prepares the metrics and answer hints (bridge/flows/answers_due.py)
    directories before any worker starts, forgets
    the live gauges of dead workers, serves ``/metrics`` and ``/healthz``
    (``[metrics] enabled``) and tells systemd ``READY=1`` only once every
    route is connected (bridge.notify).
    """

    def __init__(self, conf):
        super().__init__()
        # SIGHUP changes the services in the main thread while cotyledon's
        # supervisor thread walks them.
        self._services_lock = threading.RLock()
        self.metrics_dir = metrics.setup(conf)
        answers_due.setup()
        self.metrics = metrics.Metrics()
        self.routes = {}  # service id -> route name
        self.notifier = notify.Notifier(self.metrics_dir)
        self.register_hooks(on_terminate=self.notifier.stop,
                            on_dead_worker=self._forget_dead_worker)
        self.conf = conf

    def add_route(self, service, route_name, count, args):
        """``add()``, telling health how many workers the route has."""
        service_id = self.add(service, workers=count, args=args)
        self.routes[service_id] = route_name
        self.metrics.configured(route_name, count)
        return service_id

    def add(self, *args, **kwargs):
        with self._services_lock:
            return super().add(*args, **kwargs)

    def reconfigure(self, service_id, workers):
        with self._services_lock:
            super().reconfigure(service_id, workers)
        if service_id in self.routes:
            self.metrics.configured(self.routes[service_id], workers)

    # The private methods below are cotyledon's, the same from 1.7.0 to
    # 2.2.0 (requirements.txt pins that range): no public hook can refuse
    # a respawn.
    def _adjust_workers(self):
        with self._services_lock:
            super()._adjust_workers()

    def _start_worker(self, service_id, worker_id):
        # cotyledon respawns every worker that exits, even one reconfigure()
        # has just stopped (a route removed or changed by SIGHUP), then
        # stops it again at once; a child stopped before it installed its
        # own signal handlers runs the manager's and takes the whole
        # process group down with it.  Don't respawn what isn't wanted.
        with self._services_lock:
            if worker_id >= self._services[service_id].workers:
                return
            super()._start_worker(service_id, worker_id)

    def _forget_dead_worker(self, service_id, worker_id, exit_code):
        try:
            metrics.forget_dead_processes(self.metrics_dir)
        except Exception:  # never break cotyledon's supervisor thread
            LOG.exception('Cannot drop the metrics of a dead worker')

    def run(self):
        if self.conf.metrics.enabled:  # started after the routes' workers
            self.add(workers.MetricsService, workers=1,
                     args=(self.conf, self.metrics_dir))
        self.notifier.start()
        super().run()


def build(conf, routes):
    manager = ServiceManager(conf)
    oslo_config_glue.setup(manager, conf)   # SIGHUP re-reads the files...
    running = reload.Routes(manager, conf)
    running.start(routes)

    def apply():                                      # ...then applies
        manager.notifier.reloading()
        try:
            running.reload()
        finally:
            manager.notifier.reloaded()
    manager.register_hooks(on_reload=apply)
    return manager
