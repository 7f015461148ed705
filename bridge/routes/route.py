"""A route, validated: an immutable value the flows and workers read.

Its attributes are the section's options (bridge/routes/common.py,
to_zaqar.py, to_amqp.py) with the defaults the options leave open filled
in, plus what is built from them (``tenant_resolver``,
``guest_reply_pattern``).  bridge/routes/load.py builds them; two routes
are equal when their settings are (a reload restarts a route that
changed).
"""

import dataclasses
import types

from bridge.routes import common
from bridge.routes import to_amqp
from bridge.routes import to_zaqar

# Every option of a [route:NAME] section, both directions.
OPTS = common.OPTS + to_zaqar.OPTS + to_amqp.OPTS


def _frozen(value):
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return types.MappingProxyType(dict(value))
    return value


class _RouteMethods:
    """What a route does beside holding its settings."""

    @property
    def kind(self):
        """Which service runs it: its direction, unless a subclass says."""
        return self.direction

    @property
    def group(self):
        return common.GROUP_PREFIX + self.name

    def describe(self):
        """A one-line summary for logs and the manage CLI."""
        if self.direction == common.TO_ZAQAR:
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

    @classmethod
    def build(cls, name, values):
        """A route named ``name`` from ``values`` (every option's value,
        by name, plus what was built from them)."""
        return cls(name=name, **{k: _frozen(v) for k, v in values.items()})


Route = dataclasses.make_dataclass(
    'Route',
    [('name', str)]
    + [(opt.dest, object) for opt in OPTS]
    # Built from the options; equal options build equal ones.
    + [('tenant_resolver', object,
        dataclasses.field(default=None, compare=False)),
       ('guest_reply_pattern', object,
        dataclasses.field(default=None, compare=False))],
    bases=(_RouteMethods,), frozen=True,
    namespace={'__hash__': lambda self: hash(self.name),
               '__module__': __name__,
               '__doc__': 'One validated route (immutable).'})


def register_opts(conf, name):
    group = common.GROUP_PREFIX + name
    if group not in conf:
        conf.register_opts(OPTS, group=group)
    return group
