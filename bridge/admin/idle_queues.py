"""Queues without a consumer that a route's exchange still feeds.

Trove's ``API.prepare()`` and ``rebuild()`` start and stop an RPC server
on RabbitMQ (``_create_guest_queue()``): the queues ``guestagent.<id>`` and
``guestagent.<id>.<id>`` stay, bound to the ``trove`` exchange, and with
guests on Zaqar nobody ever consumes them, so every later message to that
guest piles up there too (casts carry no expiry).  ``check-config`` lists
such queues for every route: consumerless queues bound to the exchange a
``to_zaqar`` route consumes (with a key its ``binding_keys`` overlap) or a
``to_amqp`` route publishes to (matching its ``routing_key``).  The
routes' own queues are left out.

AMQP cannot list queues or bindings, so this asks ``rabbitmqctl``
(``list_bindings`` and ``list_queues`` of the transport URL's vhost), which
works on a broker node as root or the rabbitmq user, or through whatever
the operator gives as ``--rabbitmqctl`` (``ssh node sudo rabbitmqctl``,
``kubectl exec rabbitmq-0 -- rabbitmqctl``).  It reports the node that
command reaches, which the operator must make sure is the broker of
``transport_url``.  It deliberately does not count with a passive
``queue.declare``: RabbitMQ counts that as use of the queue and restarts
its ``expires`` timer, so a check run often would keep alive the very
queues a policy is meant to remove.
"""

import functools
import json
import shlex
import subprocess

from bridge.admin import Failure
from bridge.routes import common as route_common

TIMEOUT = 60.0
BINDING_FIELDS = ('source_name', 'source_kind', 'destination_name',
                  'destination_kind', 'routing_key')
QUEUE_FIELDS = ('name', 'consumers', 'messages')


def topic_overlap(a, b):
    """True when some routing key matches both topic patterns.

    ``*`` stands for one word, ``#`` for zero or more (words are split on
    ``.``), as in AMQP topic exchanges.
    """
    a, b = a.split('.'), b.split('.')

    @functools.lru_cache(maxsize=None)
    def meet(i, j):
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == '#' and meet(i + 1, j):
            return True
        if j < len(b) and b[j] == '#' and meet(i, j + 1):
            return True
        if i == len(a) or j == len(b):
            return False
        x, y = a[i], b[j]
        if x == '#' and y == '#':
            return False  # covered by letting either match nothing
        if x not in '*#' and y not in '*#' and x != y:
            return False
        # Both take the same word; a "#" may take more.
        return meet(i if x == '#' else i + 1, j if y == '#' else j + 1)
    return meet(0, 0)


def _feeds(exchange_type, keys, binding_key):
    """Can a message the route handles go through this binding?"""
    if exchange_type in ('fanout', 'headers'):
        return True  # headers: the arguments are not compared
    if exchange_type == 'direct':
        return binding_key in keys
    return any(topic_overlap(key, binding_key) for key in keys)


def _route_side(route):
    """``(exchange, keys)`` the route consumes or publishes, or None."""
    if not route.exchange:
        return None  # the default exchange: a queue per routing key
    if route.direction == route_common.TO_ZAQAR:
        return route.exchange, route.binding_keys
    return route.exchange, [route.routing_key]


def find(routes, bindings, queues, own=()):
    """Rows for consumerless queues bound where a route's messages go.

    ``bindings`` and ``queues`` are ``rabbitmqctl --formatter json``
    records (:data:`BINDING_FIELDS`, :data:`QUEUE_FIELDS`); ``own`` the
    bridge's own queue names, never reported.
    """
    idle = {q['name']: q for q in queues
            if not q.get('consumers') and q['name'] not in own}
    rows = {}
    for route in routes:
        side = _route_side(route)
        if side is None:
            continue
        exchange, keys = side
        for b in bindings:
            queue = b.get('destination_name')
            if (b.get('source_kind') != 'exchange'
                    or b.get('destination_kind') != 'queue'
                    or b.get('source_name') != exchange
                    or queue not in idle or (route.name, queue) in rows
                    or not _feeds(route.exchange_type, keys,
                                  b.get('routing_key', ''))):
                continue
            rows[route.name, queue] = {
                'route': route.name, 'exchange': exchange,
                'binding_key': b.get('routing_key', ''), 'queue': queue,
                'messages': idle[queue].get('messages', 0)}
    return sorted(rows.values(), key=lambda r: (r['route'], r['queue']))


def _run(command, vhost, what, fields):
    argv = shlex.split(command) + ['-q', what, '-p', vhost,
                                   '--formatter', 'json'] + list(fields)
    try:
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failure('%s: %s' % (command, exc))
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise Failure('%s %s exited with %d: %s' % (
            command, what, result.returncode,
            lines[0] if lines else 'no output'))
    try:
        return json.loads(result.stdout or '[]')
    except ValueError as exc:
        raise Failure('%s %s: not JSON (%s)' % (command, what, exc))


def inspect(command, vhost, routes, own=()):
    """The rows of :func:`find` for ``vhost``, read with ``command``.

    Raises :class:`Failure` (one line) when the command can't tell.
    """
    bindings = _run(command, vhost, 'list_bindings', BINDING_FIELDS)
    queues = _run(command, vhost, 'list_queues', QUEUE_FIELDS)
    return find(routes, bindings, queues, own)


def own_queues(conf, routes):
    """The bridge's own queues: consumed by the daemon, never strays."""
    names = {conf.amqp.dead_letter_queue, conf.rpc.amqp_reply_queue}
    names.update(r.amqp_queue for r in routes
                 if r.direction == route_common.TO_ZAQAR)
    return names


def warning(rows):
    """The one line for the operator, or None."""
    if not rows:
        return None
    queues = sorted({r['queue'] for r in rows})
    total = sum(r['messages'] for r in {r['queue']: r for r in rows}
                .values())
    shown = ', '.join(queues[:5]) + (', ...' if len(queues) > 5 else '')
    return ('warning: %d queue(s) bound where the routes\' messages go have '
            'no consumer and keep every message routed to them (%d now): '
            '%s; a policy with expires and message-ttl removes them '
            '(README, Trove)' % (len(queues), total, shown))


def add_arguments(parser):
    parser.add_argument(
        '--rabbitmqctl', default='rabbitmqctl', metavar='COMMAND',
        help='How to run rabbitmqctl on a node of the broker, to list '
             'queues without consumers bound where the routes\' messages go '
             '(default: rabbitmqctl, on a broker node as root or rabbitmq; '
             'e.g. "ssh broker1 sudo rabbitmqctl"; "" skips the check).')
