"""All options of the bridge, for oslo-config-generator.

Each option list lives beside the code that reads it; this module only
gathers them (entry point ``oslo.config.opts: amqp_zaqar_bridge``).
"""

import itertools


def list_opts():
    from bridge.amqp import connection
    from bridge import metrics
    from bridge import routing
    from bridge import rpc
    from bridge import service
    from bridge.zaqar import client
    return [
        ('DEFAULT', itertools.chain(service.DEFAULT_OPTS)),
        ('amqp', itertools.chain(connection.OPTS)),
        ('rpc', itertools.chain(rpc.OPTS)),
        ('zaqar', itertools.chain(client.list_opts())),
        ('metrics', itertools.chain(metrics.OPTS)),
        (routing.SAMPLE_GROUP, itertools.chain(routing.OPTS)),
    ]
