"""The replies route: controllers' answers to guests' calls.

A route kind of its own.  When a guest may call the control plane (a
to_amqp route with ``envelope = oslo``), the reverse flow publishes the
call with ``_reply_q = [rpc] amqp_reply_queue``; every bridge worker of
this route consumes that durable queue on the default exchange and posts
each answer to the guest reply queue its token names
(:func:`bridge.translate.to_zaqar.translate_reply`, run by the forward
flow).  It has no section of its own: it is built from ``[rpc]``.
"""

from bridge.routes.common import TO_AMQP
from bridge.routes.common import TO_ZAQAR
from bridge.routes.route import OPTS
from bridge.routes.route import Route

NAME = 'rpc-replies'
KIND = 'replies'


class RepliesRoute(Route):
    """The internal route carrying answers to guests' calls."""

    kind = KIND

    def describe(self):
        return ('%s: answers to guests\' calls from AMQP queue %r -> the '
                'guest reply queues their tokens name (%d worker(s))'
                % (self.name, self.amqp_queue, self.workers))


def route(conf):
    """The replies route for ``[rpc]`` of ``conf``."""
    values = {opt.dest: opt.default for opt in OPTS}
    values.update(direction=TO_ZAQAR, exchange='', batch_timeout=0.0,
                  amqp_queue=conf.rpc.amqp_reply_queue, tenant=None,
                  context_keys=frozenset())
    return RepliesRoute.build(NAME, values)


def needed(routes):
    """Can guests call through any of ``routes``?"""
    return any(r.direction == TO_AMQP and r.envelope == 'oslo'
               for r in routes)


def with_replies(conf, routes):
    """The routes plus the replies route when guests can call."""
    if needed(routes):
        return list(routes) + [route(conf)]
    return list(routes)
