"""Reading and validating routes: ``[route:NAME]`` sections -> Routes.

:func:`load` reads and validates every route listed in ``[DEFAULT]
routes`` and raises :class:`RouteError` naming the route and option that
are wrong.  :func:`check_zaqar_access` holds the routes against the
``[zaqar]`` access mode.
"""

from oslo_config import cfg

from bridge import confcheck
from bridge import context
from bridge import envelope
from bridge.routes.common import GROUP_PREFIX
from bridge.routes.common import REQUIRED
from bridge.routes.common import RouteError
from bridge.routes.common import TO_AMQP
from bridge.routes.common import TO_ZAQAR
from bridge.routes.route import OPTS
from bridge.routes.route import register_opts
from bridge.routes.route import Route
from bridge.routes import to_amqp
from bridge.routes import to_zaqar

RESOLVERS = {TO_ZAQAR: to_zaqar.resolve, TO_AMQP: to_amqp.resolve}


def _read(conf, name):
    group = register_opts(conf, name)
    values = {}
    for opt in OPTS:
        try:
            values[opt.dest] = confcheck.value(conf, group, opt)
        except confcheck.BadValue as exc:
            raise RouteError(name, opt.dest, str(exc))
        if opt.dest in REQUIRED and values[opt.dest] is None:
            raise RouteError(name, opt.dest, 'is required')
    if (values['direction'] == TO_AMQP and conf.get_location(
            'zaqar_queue', group).location == cfg.Locations.opt_default):
        # The default, {routing_key}, names the forward path's queues.
        raise RouteError(name, 'zaqar_queue', 'is required for a to_amqp '
                         'route: the queue drained in each tenant, e.g. '
                         'zaqar_queue = conductor')
    return values


def build(conf, name, sections=None):
    """The finished route ``name``, or RouteError."""
    if sections is not None and GROUP_PREFIX + name not in sections:
        raise RouteError(name, None, 'listed in [DEFAULT] routes but the '
                         'config has no [%s%s] section' % (GROUP_PREFIX, name))
    values = _read(conf, name)
    if values['exchange'] is None:
        raise RouteError(name, 'exchange', 'is required')
    if values['exchange_auto_delete'] is None:
        values['exchange_auto_delete'] = values['exchange_type'] == 'fanout'
    values.update(RESOLVERS[values['direction']](name, values))
    values['context_keys'] = _context_keys(name, values)
    return Route.build(name, values)


def _context_keys(name, values):
    """The route's context allowlist, checked, as a frozenset."""
    if values['context_keys'] is None:
        return frozenset(context.TO_ZAQAR_DEFAULT
                         if values['direction'] == TO_ZAQAR
                         else context.TO_AMQP_DEFAULT)
    keys = frozenset(values['context_keys'])
    for key in sorted(keys):
        if not key or key.startswith(envelope.CONTEXT_PREFIX):
            raise RouteError(name, 'context_keys', 'name each key '
                             'without the %s prefix (got %r)'
                             % (envelope.CONTEXT_PREFIX, key))
    forced = keys & set(context.FORCED_KEYS)
    if values['direction'] == TO_AMQP and forced:
        raise RouteError(name, 'context_keys', '%s: always set by '
                         'the bridge on a to_amqp route, can\'t be listed'
                         % ', '.join(sorted(forced)))
    return keys


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
    routes = [build(conf, name, sections) for name in route_names(conf)]
    known = {GROUP_PREFIX + r.name for r in routes}
    return routes, sorted(s for s in (sections or ())
                          if s.startswith(GROUP_PREFIX) and s not in known)


def check_zaqar_access(conf, routes):
    """One line naming the [zaqar] option the routes can't work with,
    or None."""
    group = conf.zaqar
    keystone = group.auth_strategy == 'keystone'
    for route in routes:
        if route.tenant_discovery == 'trusts' and not (
                keystone and group.tenant_access == 'trusts'):
            return ('route %r option \'tenant_discovery\': trusts needs '
                    '[zaqar] auth_strategy = keystone and tenant_access = '
                    'trusts' % route.name)
    if not keystone:
        return None
    if group.tenant_access == 'trusts':
        if group.auth_type not in ('password', 'v3password'):
            return ('[zaqar] auth_type: tenant_access = trusts needs a '
                    'user\'s password (auth_type = password), got %r'
                    % (group.auth_type,))
        return None
    for route in routes:
        for option in _tenant_templates(route):
            value = getattr(route, option)
            if '{tenant}' not in value:
                return ('route %r option %r: with [zaqar] tenant_access = '
                        'service_project every tenant\'s queues share the '
                        'bridge\'s project, so it must contain {tenant} '
                        '(got %r)' % (route.name, option, value))
    return None


def _tenant_templates(route):
    """The options of ``route`` naming queues of one tenant."""
    yield 'zaqar_queue'
    if route.envelope != 'oslo':
        return
    if route.direction == TO_ZAQAR:
        yield 'reply_queue'     # where guests answer controllers' calls
    elif route.allowed_methods:
        yield 'guest_reply_queue'   # where guests' calls are answered
