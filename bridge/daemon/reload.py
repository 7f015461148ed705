"""SIGHUP: re-read the configuration and apply what changed.

cotyledon re-reads the config files in the manager (oslo_config_glue) and
then signals every worker; workers ignore that signal (workers.Worker),
and :class:`Routes` decides in the manager which services change:

* a route that is new gets its workers;
* a route that is gone has its workers stopped (SIGTERM: in-flight
  messages are finished or released, see workers.py);
* a route whose section changed is stopped and started again with its
  new settings;
* every other route keeps running, untouched.

A change to the shared sections (``[DEFAULT] transport_url``, ``[amqp]``,
``[rpc]``, ``[zaqar]``) restarts every route.  A new configuration that
does not validate is refused with one log line; the running routes keep
going as they were.
"""

from oslo_log import log

from bridge.daemon import config
from bridge.daemon import workers
from bridge.rpc import replies

LOG = log.getLogger(__name__)

SHARED_GROUPS = ('amqp', 'rpc', 'zaqar')


def shared_settings(conf):
    values = {'transport_url': conf.transport_url}
    for group in SHARED_GROUPS:
        for name in conf[group]:
            try:
                values['%s.%s' % (group, name)] = repr(conf[group][name])
            except Exception as exc:  # an invalid value is a change too
                values['%s.%s' % (group, name)] = 'invalid: %s' % exc
    return values


class Routes:
    """The routes a manager runs, and their cotyledon service ids."""

    def __init__(self, manager, conf):
        self.manager = manager
        self.conf = conf
        self.running = {}      # route name -> (service id, Route)
        self.shared = None

    def start(self, routes):
        self.shared = shared_settings(self.conf)
        for route in replies.with_replies(self.conf, routes):
            self._add(route)

    def _add(self, route):
        LOG.info('Route %s', route.describe())
        service_id = self.manager.add_route(workers.service_for(route),
                                            route.name, route.workers,
                                            (self.conf, route))
        self.running[route.name] = (service_id, route)

    def _remove(self, name):
        service_id, _ = self.running.pop(name)
        self.manager.reconfigure(service_id, 0)

    def reload(self):
        """The manager's on_reload hook (the files are already re-read)."""
        try:
            new = {r.name: r for r in replies.with_replies(
                self.conf, config.load_routes(self.conf))}
        except config.ConfigError as exc:
            LOG.error('Reload refused, the running configuration stays: %s',
                      exc)
            return
        shared = shared_settings(self.conf)
        restart_all = shared != self.shared
        self.shared = shared
        changes = []
        for name in list(self.running):
            if name not in new:
                self._remove(name)
                changes.append('removed %s' % name)
            elif restart_all or self.running[name][1] != new[name]:
                self._remove(name)
                self._add(new[name])
                changes.append('restarted %s' % name)
        for name, route in new.items():
            if name not in self.running:
                self._add(route)
                changes.append('added %s' % name)
        LOG.info('Reloaded the configuration: %s',
                 ', '.join(changes) or 'no route changed')
