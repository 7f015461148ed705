"""Routes: one ``[route:NAME]`` section per bridged flow.

``[DEFAULT] routes`` names the routes to run; each one has a section
``[route:NAME]`` with the options below.  ``direction`` says which way
the route carries messages:

* ``to_zaqar``: consume an AMQP exchange, mirror every message into a
  per-tenant Zaqar queue (the forward path, bridge/amqp/forward.py);
* ``to_amqp``: drain per-tenant Zaqar queues, publish to an AMQP exchange
  (the reverse path, bridge/zaqar/reverse.py).

:func:`load` reads and validates every route and raises
:class:`RouteError` naming the route and option that are wrong.
"""

import string

from oslo_config import cfg

from bridge import naming
from bridge.tenant import rules as tenant_rules

GROUP_PREFIX = 'route:'
SAMPLE_GROUP = GROUP_PREFIX + 'name'
TO_ZAQAR = 'to_zaqar'
TO_AMQP = 'to_amqp'

FORWARD_FIELDS = ('routing_key', 'exchange', 'route', 'tenant', 'server',
                  'topic')
REVERSE_FIELDS = ('tenant', 'route')
REPLY_FIELDS = ('tenant', 'route')

OPTS = [
    # Not required=True: oslo.config would then refuse to reload files
    # where a removed route's section is gone (checked in _read instead).
    cfg.StrOpt('direction',
               choices=[(TO_ZAQAR, 'AMQP exchange -> per-tenant Zaqar '
                         'queues'),
                        (TO_AMQP, 'per-tenant Zaqar queues -> AMQP '
                         'exchange')],
               help='Which way this route carries messages. Required.'),
    cfg.IntOpt('workers', default=1, min=1, max=64,
               help='Worker processes running this route.'),
    cfg.StrOpt('envelope', default='oslo',
               choices=[('oslo', 'oslo.messaging 2.0 envelope: decoded, '
                         'context checked, calls answered across the '
                         'bridge'),
                        ('raw', 'any body: JSON as is, anything else '
                         'base64 with its content type')],
               help='How message bodies are read.'),
    cfg.StrOpt('exchange',
               help='to_zaqar: the AMQP exchange consumed. to_amqp: the '
                    'exchange published to ("" is the default exchange). '
                    'Required.'),
    cfg.StrOpt('exchange_type', default='topic',
               choices=['topic', 'direct', 'fanout', 'headers'],
               help='Type of the exchange; it is declared with this type, '
                    'which must match how its other users declare it.'),
    cfg.BoolOpt('exchange_durable', default=False,
                help='Declare the exchange durable. oslo.messaging declares '
                     'its exchanges durable only with amqp_durable_queues; '
                     'match it.'),
    cfg.BoolOpt('exchange_auto_delete',
                help='Declare the exchange auto-delete. Default: true for '
                     'fanout exchanges (as oslo.messaging declares '
                     '<topic>_fanout), false otherwise.'),
    # ---- to_zaqar
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
    cfg.StrOpt('zaqar_queue', default='{routing_key}',
               help='Zaqar queue name template. to_zaqar fields: '
                    '{routing_key}, {exchange}, {route}, {tenant}, {topic}, '
                    '{server} (topic and server split at the first dot). '
                    'to_amqp fields: {tenant}, {route}. The result is '
                    'mapped to Zaqar\'s rules: "." becomes "_", other '
                    'characters outside [A-Za-z0-9_-] become "-", and a '
                    'result longer than 64 characters keeps its first 47 '
                    'followed by "-" and 16 hex digits of its SHA-256 '
                    '(README, Zaqar queue names).'),
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
    cfg.FloatOpt('retry_max_interval', default=30.0, min=0.1,
                 help='Longest wait between two retries while the other '
                      'side is unreachable (the backoff starts at 0.5 s).'),
    # ---- to_amqp
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
                     'polled at all. 0: no doorbell, poll.'),
    cfg.HostAddressOpt('doorbell_host', default='127.0.0.1',
                       help='to_amqp: address the doorbell listens on.'),
    cfg.URIOpt('doorbell_url', schemes=['http', 'https'],
               help='to_amqp: URL Zaqar rings (as zaqar-server reaches the '
                    'bridge). Default: http://<doorbell_host>:'
                    '<doorbell_port>/'),
    cfg.FloatOpt('sweep_interval', default=1.0, min=0.01,
                 help='to_amqp with a doorbell: the safety sweep looks at '
                      'one tenant queue every this many seconds, in turn, '
                      'to catch a lost ring (and re-subscribes it).'),
    cfg.FloatOpt('tenant_rate_limit', default=0.0, min=0.0,
                 help='to_amqp: most messages per second taken from one '
                      'tenant\'s queue; the rest waits in Zaqar. 0: no '
                      'limit. Each round takes at most claim_limit '
                      'messages from each tenant, so one busy tenant never '
                      'starves the others.'),
]

REQUIRED = ('direction',)


class RouteError(ValueError):
    """A route the bridge can't run; the message names route and option."""

    def __init__(self, route, option, message):
        self.route = route
        self.option = option
        if option:
            text = 'route %r option %r: %s' % (route, option, message)
        else:
            text = 'route %r: %s' % (route, message)
        super().__init__(text)


# Route attributes built from its options, not options themselves.
DERIVED = ('tenant_resolver', 'guest_reply_pattern')


class Route:
    """One validated route; attributes are the section's options."""

    def __init__(self, name, values):
        self.name = name
        self.__dict__.update(values)
        # Built from the options when the route is checked.
        self.tenant_resolver = None
        self.guest_reply_pattern = None

    @property
    def group(self):
        return GROUP_PREFIX + self.name

    def describe(self):
        """A one-line summary for logs and the manage CLI."""
        if self.direction == TO_ZAQAR:
            return ('%s: %s exchange %r keys %s -> zaqar %r (tenant %s, '
                    '%d worker(s))' % (self.name, self.exchange_type,
                                       self.exchange,
                                       ','.join(self.binding_keys),
                                       self.zaqar_queue, self.tenant,
                                       self.workers))
        tenants = ','.join(self.tenants)
        if self.tenant_discovery != 'none':
            tenants = ' + '.join(filter(None, [
                tenants, 'tenants found by %s' % self.tenant_discovery]))
        return ('%s: zaqar %r of %s -> %s exchange %r key %r (%d worker(s))'
                % (self.name, self.zaqar_queue, tenants or 'no tenants',
                   self.exchange_type, self.exchange, self.routing_key,
                   self.workers))

    def __eq__(self, other):
        return (isinstance(other, Route)
                and self.settings() == other.settings())

    def __hash__(self):
        return hash(self.name)

    def settings(self):
        return {k: v for k, v in self.__dict__.items()
                if k not in DERIVED}


def register_opts(conf, name):
    group = GROUP_PREFIX + name
    if group not in conf:
        conf.register_opts(OPTS, group=group)
    return group


def _template_fields(template):
    try:
        return {field for _, field, _, _ in string.Formatter().parse(template)
                if field is not None}
    except ValueError as exc:
        raise ValueError('not a valid template: %s' % exc)


def _check_template(route, option, template, allowed):
    try:
        fields = _template_fields(template)
    except ValueError as exc:
        raise RouteError(route, option, str(exc))
    unknown = fields - set(allowed)
    if unknown or '' in fields:
        raise RouteError(route, option, 'unknown field(s) %s; allowed: %s'
                         % (', '.join(sorted('{%s}' % f for f in unknown)),
                            ', '.join('{%s}' % f for f in allowed)))


def _read(conf, name):
    group = register_opts(conf, name)
    values = {}
    for opt in OPTS:
        try:
            values[opt.dest] = conf[group][opt.dest]
        except (cfg.ConfigFileValueError, ValueError) as exc:
            raise RouteError(name, opt.dest, 'bad value: %s'
                             % _short(exc))
        if opt.dest in REQUIRED and values[opt.dest] is None:
            raise RouteError(name, opt.dest, 'is required')
    return values


def _short(exc):
    text = str(exc)
    return text.split('\n')[0]


def load_route(conf, name, sections=None):
    if sections is not None and GROUP_PREFIX + name not in sections:
        raise RouteError(name, None, 'listed in [DEFAULT] routes but the '
                         'config has no [%s%s] section' % (GROUP_PREFIX, name))
    values = _read(conf, name)
    route = Route(name, values)
    if route.exchange is None:
        raise RouteError(name, 'exchange', 'is required')
    if route.exchange_auto_delete is None:
        route.exchange_auto_delete = route.exchange_type == 'fanout'
    if route.direction == TO_ZAQAR:
        _check_forward(route)
    else:
        _check_reverse(route)
    return route


def _check_forward(route):
    name = route.name
    if not route.exchange:
        raise RouteError(name, 'exchange', 'a to_zaqar route must name an '
                         'exchange to consume (not the default exchange)')
    if not route.tenant:
        raise RouteError(name, 'tenant', 'is required for a to_zaqar route')
    try:
        route.tenant_resolver = tenant_rules.load(route.tenant)
    except ValueError as exc:
        raise RouteError(name, 'tenant', str(exc))
    _check_template(name, 'zaqar_queue', route.zaqar_queue, FORWARD_FIELDS)
    _check_template(name, 'reply_queue', route.reply_queue, REPLY_FIELDS)
    try:
        naming.render(route.reply_queue, tenant='t', route=name)
    except naming.QueueNameError as exc:
        raise RouteError(name, 'reply_queue', str(exc))
    if route.amqp_queue is None:
        route.amqp_queue = 'amqp-zaqar-bridge.%s' % name
    if route.exchange_type == 'headers' and not route.binding_arguments:
        raise RouteError(name, 'binding_arguments', 'a headers exchange '
                         'needs binding arguments')


def _check_reverse(route):
    name = route.name
    _check_template(name, 'zaqar_queue', route.zaqar_queue, REVERSE_FIELDS)
    if route.routing_key is None:
        if '{' in route.zaqar_queue and _publishes_requests(route):
            raise RouteError(name, 'routing_key', 'is required when '
                             'zaqar_queue is a template')
        # Unused when only answers pass: they go to the caller's queue.
        route.routing_key = route.zaqar_queue
    try:
        route.guest_reply_pattern = naming.QueuePattern(
            route.guest_reply_queue)
    except naming.QueueNameError as exc:
        raise RouteError(name, 'guest_reply_queue', str(exc))
    if not route.tenants and route.tenant_discovery == 'none':
        raise RouteError(name, 'tenants', 'a to_amqp route needs at least '
                         'one tenant to drain, or tenant_discovery')
    if route.doorbell_port and route.doorbell_url is None:
        route.doorbell_url = 'http://%s:%d/' % (route.doorbell_host,
                                                route.doorbell_port)
    for tenant in route.tenants:
        try:
            naming.render(route.zaqar_queue, tenant=tenant, route=name)
        except naming.QueueNameError as exc:
            raise RouteError(name, 'zaqar_queue', 'for tenant %r: %s'
                             % (tenant, exc))


def _publishes_requests(route):
    """False for a route only answers to controllers' calls can pass."""
    return (route.envelope == 'raw' or bool(route.allowed_methods)
            or bool(route.allowed_event_types))


REPLIES_ROUTE = 'rpc-replies'


def replies_route(conf):
    """The internal route carrying controllers' answers to guests' calls.

    It consumes ``[rpc] amqp_reply_queue`` (on the default exchange) and
    posts each answer to the guest reply queue named in its token.
    """
    values = {opt.dest: opt.default for opt in OPTS}
    values.update(direction=TO_ZAQAR, exchange='', batch_timeout=0.0,
                  amqp_queue=conf.rpc.amqp_reply_queue, tenant='token',
                  zaqar_queue='{routing_key}')
    return Route(REPLIES_ROUTE, values)


def route_names(conf):
    names = conf.routes
    seen = set()
    for name in names:
        if not name or name in seen:
            raise RouteError(name, None, 'route names in [DEFAULT] routes '
                             'must be unique and not empty')
        seen.add(name)
    return list(names)


def load(conf):
    """Read every route listed in ``[DEFAULT] routes``."""
    try:
        sections = set(conf.list_all_sections())
    except Exception:
        sections = None
    routes = [load_route(conf, name, sections) for name in route_names(conf)]
    known = {GROUP_PREFIX + r.name for r in routes}
    return routes, sorted(s for s in (sections or ())
                          if s.startswith(GROUP_PREFIX) and s not in known)
