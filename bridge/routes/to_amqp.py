"""The options of a to_amqp route (Zaqar queues -> AMQP exchange), and
what is built from them: the routing key, the guest reply queue pattern,
the doorbell URL."""

from oslo_config import cfg

from bridge import naming
from bridge.routes.common import check_template
from bridge.routes.common import RouteError

REVERSE_FIELDS = ('tenant', 'route')

OPTS = [
    cfg.ListOpt('tenants', default=[],
                help='to_amqp: the projects whose queues are drained '
                     '(with tenant_discovery, on top of those found).'),
    cfg.StrOpt('tenant_discovery', default='none',
               choices=[('none', 'only the projects listed in tenants'),
                        ('trusts', 'also every project with an unexpired '
                         'trust naming the bridge\'s user as trustee '
                         '(needs [zaqar] tenant_access = trusts): a '
                         'tenant is served once one of its users creates '
                         'the trust')],
               help='to_amqp: how the route finds the tenants whose queues '
                    'it drains, besides tenants.'),
    cfg.IntOpt('tenant_discovery_interval', default=60, min=1,
               help='to_amqp with tenant_discovery: seconds between two '
                    'looks for new tenants (one Keystone request per '
                    'worker).'),
    cfg.StrOpt('routing_key',
               help='to_amqp: routing key of the published requests and '
                    'notifications (answers to calls go to the caller\'s '
                    'reply queue). Default: zaqar_queue, which then must '
                    'not be a template unless only answers pass (no '
                    'allowed_methods nor allowed_event_types).'),
    cfg.ListOpt('allowed_methods', default=[],
                help='to_amqp: RPC methods a guest may cast or call '
                     'through this route. Anything else is dead-lettered. '
                     'Empty: no RPC request passes (answers to calls and '
                     'allowed notifications still do).'),
    cfg.ListOpt('allowed_event_types', default=[],
                help='to_amqp: notification event types (shell patterns, '
                     'e.g. trove.instance.*) a guest may emit through this '
                     'route. Empty: no notification passes.'),
    cfg.StrOpt('guest_reply_queue', default='*',
               help='to_amqp: the Zaqar queues a guest\'s call may name as '
                    'its reply queue (_reply_q), where the bridge posts the '
                    'controller\'s answer for that guest\'s tenant. A '
                    'pattern: "*" stands for any run of letters, digits '
                    'and "_" (never "-"), {tenant} for the tenant. A call '
                    'naming any other queue is dead-lettered. "*": any '
                    'queue (each tenant\'s queues are in its own project). '
                    'With [zaqar] tenant_access = service_project it must '
                    'contain {tenant}, set off by "-" (e.g. '
                    '{tenant}-reply_*, which the guest driver uses with '
                    'queue_prefix = <tenant>-).'),
    cfg.IntOpt('max_depth', default=32, min=2, max=200,
               help='to_amqp: deepest nesting of JSON arrays and objects in '
                    'a guest\'s message (its Zaqar body); deeper messages '
                    'are dead-lettered. Python\'s JSON decoder, on the '
                    'receiving side, fails near 1000.'),
    cfg.FloatOpt('max_call_timeout', default=600.0, min=1.0, max=86400.0,
                 help='to_amqp: longest call-monitor timeout (_timeout, '
                      'seconds) a guest\'s message may give the receiving '
                      'RPC server; a larger one is lowered to this. A '
                      '_timeout that is not a number, not finite or '
                      'negative is dead-lettered.'),
    cfg.IntOpt('claim_ttl', default=60, min=60, max=43200,
               help='to_amqp: seconds a claimed message stays hidden from '
                    'other workers; a worker that dies releases its '
                    'messages after this long.'),
    cfg.IntOpt('claim_limit', default=20, min=1, max=20,
               help='to_amqp: messages claimed per request (Zaqar allows '
                    '20).'),
    cfg.FloatOpt('poll_interval', default=1.0, min=0.01,
                 help='to_amqp: longest pause between two claims on an '
                      'empty queue (the pause grows from 0.05 s to this). '
                      'Not used with a doorbell.'),
    cfg.PortOpt('doorbell_port', default=0,
                help='to_amqp: port of the doorbell webhook the route\'s '
                     'workers serve; Zaqar POSTs to it when a message is '
                     'posted to a tenant queue (needs zaqar-server\'s '
                     'notification pipeline), so empty queues are not '
                     'polled at all. Needs [rpc] reply_secret: each '
                     'subscription carries a proof for its tenant and '
                     'queue, and a ring without one is refused. 0: no '
                     'doorbell, poll.'),
    cfg.HostAddressOpt('doorbell_host', default='127.0.0.1',
                       help='to_amqp: address the doorbell listens on.'),
    cfg.URIOpt('doorbell_url', schemes=['http', 'https'],
               help='to_amqp: URL Zaqar rings (as zaqar-server reaches the '
                    'bridge). Default: http://<doorbell_host>:'
                    '<doorbell_port>/'),
    cfg.FloatOpt('sweep_interval', default=2.0, min=0.01,
                 help='to_amqp with a doorbell: the safety sweep looks at '
                      'one tenant queue of each worker\'s shard every this '
                      'many seconds, in turn, for a ring lost where '
                      'neither the start-up pass, the canary nor a Zaqar '
                      'outage can tell (a tenant deleted the bridge\'s '
                      'subscription, a zaqar-server restart no request '
                      'saw), and re-subscribes that queue.'),
    cfg.IntOpt('canary_interval', default=60, min=0,
               help='to_amqp with a doorbell: seconds between two canary '
                    'messages each worker posts to a queue of the bridge\'s '
                    'own project, subscribed like a tenant queue. When a '
                    'canary\'s ring does not come within 20 s, rings are '
                    'being lost: the worker looks at every queue of its '
                    'shard (recovery_sweep_time), again until a canary '
                    'rings. 0: no canary.'),
    cfg.FloatOpt('recovery_sweep_time', default=120.0, min=1.0,
                 help='to_amqp with a doorbell: seconds over which a '
                      'recovery sweep (after a lost canary or a Zaqar '
                      'outage) looks at every queue of a worker\'s shard, '
                      'one request each. A lost ring is found within '
                      'canary_interval + 20 + this many seconds.'),
    cfg.IntOpt('startup_concurrency', default=4, min=1, max=64,
               help='to_amqp with a doorbell: requests a worker makes at '
                    'once while it subscribes and looks at every queue of '
                    'its shard when it starts.'),
    cfg.FloatOpt('tenant_rate_limit', default=0.0, min=0.0,
                 help='to_amqp: most messages per second taken from one '
                      'tenant\'s queue; the rest waits in Zaqar. 0: no '
                      'limit. Each round takes at most claim_limit '
                      'messages from each tenant, so one busy tenant never '
                      'starves the others.'),
]


def resolve(name, route):
    """Check a to_amqp route's options (``route``: their values, by
    name); return the values the route takes besides them."""
    resolved = {}
    check_template(name, 'zaqar_queue', route['zaqar_queue'], REVERSE_FIELDS)
    if route['routing_key'] is None:
        if '{' in route['zaqar_queue'] and publishes_requests(route):
            raise RouteError(name, 'routing_key', 'is required when '
                             'zaqar_queue is a template')
        # Unused when only answers pass: they go to the caller's queue.
        resolved['routing_key'] = route['zaqar_queue']
    try:
        resolved['guest_reply_pattern'] = naming.QueuePattern(
            route['guest_reply_queue'])
    except naming.QueueNameError as exc:
        raise RouteError(name, 'guest_reply_queue', str(exc))
    if not route['tenants'] and route['tenant_discovery'] == 'none':
        raise RouteError(name, 'tenants', 'a to_amqp route needs at least '
                         'one tenant to drain, or tenant_discovery')
    if route['doorbell_port'] and route['doorbell_url'] is None:
        resolved['doorbell_url'] = 'http://%s:%d/' % (route['doorbell_host'],
                                                      route['doorbell_port'])
    for tenant in route['tenants']:
        try:
            naming.render(route['zaqar_queue'], tenant=tenant, route=name)
        except naming.QueueNameError as exc:
            raise RouteError(name, 'zaqar_queue', 'for tenant %r: %s'
                             % (tenant, exc))
    return resolved


def publishes_requests(route):
    """False for a route only answers to controllers' calls can pass."""
    return (route['envelope'] == 'raw' or bool(route['allowed_methods'])
            or bool(route['allowed_event_types']))
