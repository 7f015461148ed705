"""What the bridge declares on RabbitMQ: each route's exchange, a to_zaqar
route's queue and bindings, the queue a notification waits in, and the
dead letters.  ``route`` arguments are read for their exchange and
queue settings only (bridge/routes/).

Dead letters: messages that can never be delivered, kept for operators.

Both directions use one place, on RabbitMQ: the durable direct exchange
``[amqp] dead_letter_exchange`` bound to the durable queue
``[amqp] dead_letter_queue`` (routing key = the route name).  A dead
letter is the original body with headers saying why::

    x-bridge-route        the route
    x-bridge-direction    to_zaqar | to_amqp
    x-bridge-reason       one line: what is wrong
    x-bridge-message-id   the message id (oslo _unique_id, Zaqar id...)
    x-bridge-exchange, x-bridge-routing-key   where it came from (to_zaqar)
    x-bridge-tenant, x-bridge-zaqar-queue     where it came from (to_amqp)

``amqp-zaqar-bridge-manage dead-letters`` lists, shows, replays and purges
them.
"""

import time

import kombu

from bridge.amqp import connection as amqp_connection


# Where a to_zaqar message was first published.  A replayed dead letter
# keeps them; the forward path takes its exchange and routing key from them.
ORIGIN_EXCHANGE = 'x-bridge-exchange'
ORIGIN_ROUTING_KEY = 'x-bridge-routing-key'


def exchange(conf):
    return kombu.Exchange(conf.amqp.dead_letter_exchange, type='direct',
                          durable=True, auto_delete=False)


def queue(conf, channel=None):
    return kombu.Queue(conf.amqp.dead_letter_queue, exchange=exchange(conf),
                       routing_key='#', durable=True, auto_delete=False,
                       queue_arguments=amqp_connection.queue_arguments(conf),
                       channel=channel)


def declare(conf, channel):
    """Declare the dead-letter exchange and queue, bound for every route."""
    q = queue(conf, channel)
    q.declare()
    return q


def bind_route(conf, channel, route_name):
    q = queue(conf, channel)
    q.bind_to(exchange=exchange(conf), routing_key=route_name)


def headers(route, direction, reason, message_id=None, **where):
    out = {'x-bridge-route': route,
           'x-bridge-direction': direction,
           'x-bridge-reason': reason[:1000],
           'x-bridge-message-id': message_id or '',
           'x-bridge-dead-lettered-at': int(time.time())}
    for key, value in where.items():
        if value is not None:
            out['x-bridge-' + key.replace('_', '-')] = value
    return out


def route_exchange(route):
    """The exchange a route consumes or publishes to."""
    return kombu.Exchange(route.exchange, type=route.exchange_type,
                          durable=route.exchange_durable,
                          auto_delete=route.exchange_auto_delete)


def route_queue(route, conf):
    """A to_zaqar route's durable queue with its bindings to the
    route's exchange."""
    arguments = amqp_connection.queue_arguments(conf)
    if not route.exchange:  # the default exchange binds every queue
        return kombu.Queue(route.amqp_queue, durable=True, auto_delete=False,
                           queue_arguments=arguments)
    exchange = route_exchange(route)
    if route.exchange_type == 'headers':
        bindings = [kombu.binding(exchange,
                                  arguments=dict(route.binding_arguments))]
    elif route.exchange_type == 'fanout':
        bindings = [kombu.binding(exchange, routing_key='')]
    else:
        bindings = [kombu.binding(exchange, routing_key=key)
                    for key in route.binding_keys]
    return kombu.Queue(route.amqp_queue, bindings=bindings, durable=True,
                       auto_delete=False, queue_arguments=arguments)


def notification_queue(route, routing_key):
    """The queue a notification published by ``route`` waits in for its
    listener: oslo.messaging's notifier declares it (named as the routing
    key), so does the bridge."""
    return kombu.Queue(routing_key, route_exchange(route),
                       routing_key=routing_key,
                       durable=route.exchange_durable)
