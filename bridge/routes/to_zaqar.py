"""The options of a to_zaqar route (AMQP exchange -> Zaqar queues), and
what is built from them: the tenant resolver, the route's AMQP queue."""

from oslo_config import cfg

from bridge import naming
from bridge.routes.common import check_template
from bridge.routes.common import RouteError
from bridge.tenant import rules as tenant_rules

FORWARD_FIELDS = ('routing_key', 'exchange', 'route', 'tenant', 'server',
                  'topic')
REPLY_FIELDS = ('tenant', 'route')

OPTS = [
    cfg.ListOpt('binding_keys', default=['#'],
                help='to_zaqar: routing keys the bridge queue is bound '
                     'with (topic/direct). Trove guests: guestagent.*'),
    cfg.DictOpt('binding_arguments', default={},
                help='to_zaqar, headers exchanges: binding arguments, e.g. '
                     'x-match:any,tenant:abc.'),
    cfg.StrOpt('amqp_queue',
               help='to_zaqar: the durable AMQP queue the bridge declares, '
                    'binds and consumes. Default: amqp-zaqar-bridge.<route>. '
                    'Every bridge on every controller shares it (competing '
                    'consumers).'),
    cfg.IntOpt('prefetch', default=100, min=1,
               help='to_zaqar: unacknowledged messages a worker holds at '
                    'most (basic.qos). Bounds memory while Zaqar is down.'),
    cfg.StrOpt('tenant',
               help='to_zaqar: where the owning project comes from: '
                    'context:<key>, header:<name>, routing_key:<regex with '
                    'a group "tenant">, static:<project>, or <plugin>:<arg> '
                    'for a resolver in the entry point group '
                    'amqp_zaqar_bridge.tenant_resolvers. Required.'),
    cfg.IntOpt('message_ttl', default=3600, min=60, max=1209600,
               help='to_zaqar: TTL in seconds of the messages posted to '
                    'Zaqar.'),
    cfg.IntOpt('batch_size', default=20, min=1, max=1000,
               help='to_zaqar: most messages in one POST to one queue.'),
    cfg.FloatOpt('batch_timeout', default=0.02, min=0.0,
                 help='to_zaqar: seconds to wait for more messages before '
                      'posting an incomplete batch.'),
    cfg.StrOpt('reply_queue', default='bridge_replies',
               help='to_zaqar: the Zaqar queue a guest answers RPC calls '
                    'into; the bridge tells the guest in each call. A '
                    'template with the fields {tenant} and {route}, mapped '
                    'like zaqar_queue. A to_amqp route must drain it for '
                    'every tenant. With [zaqar] tenant_access = '
                    'service_project it must contain {tenant} (e.g. '
                    '{tenant}-bridge_replies), or tenants would share it.'),
]


def resolve(name, route):
    """Check a to_zaqar route's options (``route``: their values, by
    name); return the values the route takes besides them."""
    resolved = {}
    if not route['exchange']:
        raise RouteError(name, 'exchange', 'a to_zaqar route must name an '
                         'exchange to consume (not the default exchange)')
    if not route['tenant']:
        raise RouteError(name, 'tenant', 'is required for a to_zaqar route')
    try:
        resolved['tenant_resolver'] = tenant_rules.load(route['tenant'])
    except ValueError as exc:
        raise RouteError(name, 'tenant', str(exc))
    check_template(name, 'zaqar_queue', route['zaqar_queue'], FORWARD_FIELDS)
    check_template(name, 'reply_queue', route['reply_queue'], REPLY_FIELDS)
    try:
        naming.render(route['reply_queue'], tenant='t', route=name)
    except naming.QueueNameError as exc:
        raise RouteError(name, 'reply_queue', str(exc))
    if route['amqp_queue'] is None:
        resolved['amqp_queue'] = 'amqp-zaqar-bridge.%s' % name
    if route['exchange_type'] == 'headers' and not route['binding_arguments']:
        raise RouteError(name, 'binding_arguments', 'a headers exchange '
                         'needs binding arguments')
    return resolved
