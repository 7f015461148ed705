"""Dead letters: messages that can never be delivered, kept for operators.

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
