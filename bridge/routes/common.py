"""What every route has: its name, direction, exchange and Zaqar queue.

``[DEFAULT] routes`` names the routes to run; each one has a section
``[route:NAME]``.  ``direction`` says which way the route carries
messages:

* ``to_zaqar``: consume an AMQP exchange, mirror every message into a
  per-tenant Zaqar queue (the forward flow, bridge/flows/forward.py;
  its own options are bridge/routes/to_zaqar.py);
* ``to_amqp``: drain per-tenant Zaqar queues, publish to an AMQP exchange
  (the reverse flow, bridge/flows/reverse.py; bridge/routes/to_amqp.py).

The options of both directions are read from every route section, and
are documented together under ``[route:name]`` in the sample.
"""

import string

from oslo_config import cfg

from bridge import context

GROUP_PREFIX = 'route:'
SAMPLE_GROUP = GROUP_PREFIX + 'name'
TO_ZAQAR = 'to_zaqar'
TO_AMQP = 'to_amqp'

# [DEFAULT]
DEFAULT_OPTS = [
    cfg.ListOpt('routes', default=[],
                help='Names of the routes to run; each has a [route:NAME] '
                     'section.'),
]

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
    cfg.StrOpt('zaqar_queue', default='{routing_key}',
               help='Zaqar queue name template (required for to_amqp; '
                    'the default is for to_zaqar). to_zaqar fields: '
                    '{routing_key}, {exchange}, {route}, {tenant}, {topic}, '
                    '{server} (topic and server split at the first dot). '
                    'to_amqp fields: {tenant}, {route}. The result is '
                    'mapped to Zaqar\'s rules: "." becomes "_", other '
                    'characters outside [A-Za-z0-9_-] become "-", and a '
                    'result longer than 64 characters keeps its first 47 '
                    'followed by "-" and 16 hex digits of its SHA-256 '
                    '(README, Zaqar queue names).'),
    cfg.ListOpt('context_keys',
                help='Request-context keys (oslo.messaging\'s _context_<key> '
                     'fields, named without the prefix) that cross the '
                     'bridge; every other context field is dropped. '
                     'to_zaqar (what guests see), default: %s; a '
                     'controller\'s auth_token, roles and is_admin reach '
                     'guests only if listed here. to_amqp (what the control '
                     'plane trusts), default: %s; on top of them %s are '
                     'always set to the tenant of the queue the message was '
                     'read from, is_admin and is_admin_project to false and '
                     'roles to [] (these can\'t be listed).'
                     % (', '.join(context.TO_ZAQAR_DEFAULT),
                        ', '.join(context.TO_AMQP_DEFAULT),
                        ', '.join(context.PROJECT_KEYS))),
    cfg.FloatOpt('retry_max_interval', default=30.0, min=0.1,
                 help='Longest wait between two retries while the other '
                      'side is unreachable (the backoff starts at 0.5 s).'),
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


def _template_fields(template):
    try:
        return {field for _, field, _, _ in string.Formatter().parse(template)
                if field is not None}
    except ValueError as exc:
        raise ValueError('not a valid template: %s' % exc)


def check_template(route, option, template, allowed):
    try:
        fields = _template_fields(template)
    except ValueError as exc:
        raise RouteError(route, option, str(exc))
    unknown = fields - set(allowed)
    if unknown or '' in fields:
        raise RouteError(route, option, 'unknown field(s) %s; allowed: %s'
                         % (', '.join(sorted('{%s}' % f for f in unknown)),
                            ', '.join('{%s}' % f for f in allowed)))
