"""Tenant rules: ``[route:NAME] tenant = <kind>:<argument>``.

Each kind is a class registered in the stevedore entry point group
``amqp_zaqar_bridge.tenant_resolvers``; the built-in ones are:

``context:<key>``
    the ``_context_<key>`` of an oslo.messaging message
    (``context:project_id``).
``header:<name>``
    an AMQP message header.
``routing_key:<regex>``
    a regular expression matched against the routing key; the project is
    its group named ``tenant`` (or its first group).
``static:<project>``
    always this project.

A plugin is a class taking the argument string in its constructor and
answering ``resolve(incoming) -> project or None``; it raises
``ValueError`` for a bad argument.  ``incoming`` is an
:class:`Incoming`.  Rules only ever look at control-plane (trusted) data.
"""

from importlib import metadata
import re

NAMESPACE = 'amqp_zaqar_bridge.tenant_resolvers'
_PROJECT = re.compile(r'^[A-Za-z0-9_.@-]{1,255}$')


class TenantError(ValueError):
    """No project can be found for a message."""


class Incoming:
    """What a tenant rule may look at."""

    def __init__(self, exchange, routing_key, headers, message):
        self.exchange = exchange
        self.routing_key = routing_key
        self.headers = headers or {}
        self.message = message if isinstance(message, dict) else {}


class ContextRule:
    def __init__(self, key):
        if not key:
            raise ValueError('context: needs a context key, e.g. '
                             'context:project_id')
        self.key = '_context_' + key

    def resolve(self, incoming):
        return incoming.message.get(self.key)


class HeaderRule:
    def __init__(self, name):
        if not name:
            raise ValueError('header: needs a header name')
        self.name = name

    def resolve(self, incoming):
        value = incoming.headers.get(self.name)
        if isinstance(value, bytes):
            value = value.decode('utf-8', 'replace')
        return value


class RoutingKeyRule:
    def __init__(self, pattern):
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError('routing_key: %r is not a regular expression: '
                             '%s' % (pattern, exc))
        if not self.regex.groups:
            raise ValueError('routing_key: %r has no group to take the '
                             'tenant from' % pattern)
        self.group = 'tenant' if 'tenant' in self.regex.groupindex else 1

    def resolve(self, incoming):
        match = self.regex.search(incoming.routing_key or '')
        return match.group(self.group) if match else None


class StaticRule:
    def __init__(self, project):
        if not project:
            raise ValueError('static: needs a project id')
        self.project = project

    def resolve(self, incoming):
        return self.project


def load(rule):
    """Build the resolver for a ``kind:argument`` rule string.

    Raises ValueError with a message naming what is wrong.
    """
    from stevedore import driver

    kind, sep, argument = (rule or '').partition(':')
    if not sep or not kind:
        raise ValueError('%r is not <kind>:<argument> (context:project_id, '
                         'header:<name>, routing_key:<regex>, '
                         'static:<project>, or a plugin)' % (rule,))
    # Looked up first: stevedore logs a warning for a name it can't find.
    if kind not in {ep.name for ep in metadata.entry_points(group=NAMESPACE)}:
        raise ValueError('unknown tenant rule kind %r (no entry point in %s)'
                         % (kind, NAMESPACE))
    try:
        manager = driver.DriverManager(NAMESPACE, kind, invoke_on_load=True,
                                       invoke_args=(argument,))
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError('tenant rule %r failed to load: %s' % (rule, exc))
    return manager.driver


def resolve(resolver, incoming):
    """Ask ``resolver`` for the project; raise TenantError when none."""
    project = resolver.resolve(incoming)
    if not isinstance(project, str) or not _PROJECT.match(project):
        raise TenantError('no valid tenant for this message (got %r)'
                          % (project,))
    return project
