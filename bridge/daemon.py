"""The supervised daemon: one cotyledon service per route."""

import cotyledon
from cotyledon import oslo_config_glue
from oslo_log import log

from bridge import routing
from bridge import services

LOG = log.getLogger(__name__)


def service_for(route):
    if route.direction == routing.TO_ZAQAR:
        return services.ForwardService
    return services.ReverseService


def needs_replies(routes):
    """Guests' calls are answered through the replies service."""
    return any(r.direction == routing.TO_AMQP and r.envelope == 'oslo'
               for r in routes)


def build(conf, routes):
    manager = cotyledon.ServiceManager()
    oslo_config_glue.setup(manager, conf)
    for route in routes:
        LOG.info('Route %s', route.describe())
        manager.add(service_for(route), workers=route.workers,
                    args=(conf, route))
    if needs_replies(routes):
        manager.add(services.RepliesService, workers=1, args=(conf,))
    return manager
