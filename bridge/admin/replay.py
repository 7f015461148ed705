"""Putting a dead letter back where the bridge picks it up again.

* ``to_zaqar``: the original body, content type and headers (without the
  bridge's own, but with where it was first published) go straight into
  the route's durable queue, through the default exchange, so only the
  bridge sees the message again; the broker confirms it.
* ``to_amqp``: the Zaqar body (the dead letter is ``{"body": ...}``) is
  posted again into the tenant's queue, which the route drains; Zaqar
  answers 201.

Each one raises :class:`~bridge.admin.Failure` saying why it can't.
"""

import json

from bridge.admin import Failure
from bridge.amqp import publisher
from bridge import backoff
from bridge.routes import common as route_common
from bridge.rpc import replies as rpc_replies
from bridge.zaqar import client as zaqar_client
from bridge.zaqar import clients as zaqar_clients


class Replayer:
    def __init__(self, conf, routes, connection):
        self.conf = conf
        self.routes = {route.name: route for route in routes}
        replies = rpc_replies.route(conf)
        self.routes.setdefault(replies.name, replies)
        self.connection = connection
        self._publisher = None
        self._clients = None

    def target(self, letter):
        """Where ``letter`` would go, in words; Failure if nowhere."""
        if letter.direction == route_common.TO_ZAQAR:
            return 'amqp queue %s' % self._route_of(letter).amqp_queue
        if letter.direction == route_common.TO_AMQP:
            tenant, queue = self._zaqar_address(letter)
            self._zaqar_body(letter)
            return 'zaqar queue %s of tenant %s' % (queue, tenant)
        raise Failure('its x-bridge-direction %r is neither %s nor %s'
                      % (letter.direction, route_common.TO_ZAQAR,
                         route_common.TO_AMQP))

    def replay(self, letter):
        if letter.direction == route_common.TO_ZAQAR:
            self._to_route_queue(letter)
        else:
            self._to_tenant_queue(letter)

    # -- to_zaqar: back into the route's own AMQP queue

    def _route_of(self, letter):
        route = self.routes.get(letter.route)
        if route is None:
            raise Failure('route %r is not in [DEFAULT] routes: add it back '
                          'to replay this dead letter' % letter.route)
        if route.direction != route_common.TO_ZAQAR:
            raise Failure('route %r is now a %s route; this dead letter '
                          'came from a %s route'
                          % (route.name, route.direction,
                             route_common.TO_ZAQAR))
        return route

    def _to_route_queue(self, letter):
        route = self._route_of(letter)
        if self._publisher is None:
            self._publisher = publisher.Publisher(self.connection, self.conf)
        try:
            delivered = self._publisher.publish(
                letter.message.body, '', route.amqp_queue,
                headers=letter.replay_headers(), mandatory=True,
                content_type=letter.message.content_type)
        except (self.connection.connection_errors
                + self.connection.channel_errors) as exc:
            raise Failure('RabbitMQ did not take it: %s'
                          % backoff.error_text(exc))
        if not delivered:
            raise Failure('queue %s of route %s does not exist: start the '
                          'bridge once so it declares it'
                          % (route.amqp_queue, route.name))

    # -- to_amqp: back into the tenant's Zaqar queue

    @staticmethod
    def _zaqar_address(letter):
        tenant = letter.header('tenant')
        queue = letter.header('zaqar-queue')
        if not tenant or not queue:
            raise Failure('it has no x-bridge-tenant or x-bridge-zaqar-queue '
                          'header')
        return tenant, queue

    @staticmethod
    def _zaqar_body(letter):
        try:
            return json.loads(letter.message.body)['body']
        except (ValueError, TypeError, KeyError):
            raise Failure('its body is not {"body": <the Zaqar message '
                          'body>}')

    def _to_tenant_queue(self, letter):
        tenant, queue = self._zaqar_address(letter)
        body = self._zaqar_body(letter)
        if self._clients is None:
            self._clients = zaqar_clients.Clients(self.conf)
        client = self._clients.for_project(self._clients.project_of(tenant))
        try:
            client.queue(queue).post([{'body': body}])
        except zaqar_client.PERMANENT_ERRORS as exc:
            raise Failure('Zaqar refused it for tenant %s queue %s: %s'
                          % (tenant, queue, backoff.error_text(exc)))
        except zaqar_client.TRANSIENT_ERRORS as exc:
            raise Failure('Zaqar at %s is unreachable: %s'
                          % (self.conf.zaqar.url, backoff.error_text(exc)))
