"""All options of the bridge, for oslo-config-generator.

Each option list lives beside the code that reads it; this module only
gathers them (entry point ``oslo.config.opts: amqp_zaqar_bridge``).
"""

import itertools

from bridge.amqp import connection
from bridge import metrics
from bridge.routes import common as route_common
from bridge.routes import route as route_model
from bridge.rpc import options as rpc_options
from bridge.zaqar import options as zaqar_options


def list_opts():
    return [
        ('DEFAULT', itertools.chain(connection.DEFAULT_OPTS,
                                    route_common.DEFAULT_OPTS)),
        ('amqp', itertools.chain(connection.OPTS)),
        ('rpc', itertools.chain(rpc_options.OPTS)),
        ('zaqar', itertools.chain(zaqar_options.list_opts())),
        ('metrics', itertools.chain(metrics.OPTS)),
        (route_common.SAMPLE_GROUP, itertools.chain(route_model.OPTS)),
    ]
