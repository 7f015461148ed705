"""Publishing with publisher confirms, and knowing when nobody got it.

The connection is opened with ``confirm_publish`` (bridge.amqp.connection),
so ``publish`` returns only after the broker acknowledged the message.
``mandatory`` messages the broker could not route come back as
``basic.return`` before that acknowledgement; :meth:`Publisher.publish`
reports them as ``False``.
"""

import json

import kombu

from bridge.amqp import topology


class Publisher:
    """Confirmed publishing on one connection (one per worker thread)."""

    def __init__(self, conn, conf):
        self.conn = conn
        self.conf = conf
        self._returned = False
        self._producer = None
        self._declared = set()

    @property
    def producer(self):
        if self._producer is None or self._producer.channel is None or \
                not self.conn.connected:
            self._producer = kombu.Producer(self.conn.default_channel,
                                            on_return=self._on_return)
            self._declared.clear()
        return self._producer

    def _on_return(self, exception, exchange, routing_key, message):
        self._returned = True

    def declare_exchange(self, name, type_, durable, auto_delete):
        key = (name, self.conn.default_channel)
        if not name or key in self._declared:
            return
        kombu.Exchange(name, type=type_, durable=durable,
                       auto_delete=auto_delete)(self.producer.channel) \
            .declare()
        self._declared.add(key)

    def publish(self, body, exchange, routing_key, headers=None,
                mandatory=False, expiration=None, content_type=None):
        """Publish and wait for the confirm; False if it was returned.

        ``body`` is a dict (sent as JSON) or bytes (sent as they are).
        """
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode('utf-8')
            content_type = 'application/json'
        self._returned = False
        self.producer.publish(
            body, exchange=exchange, routing_key=routing_key,
            headers=headers or {}, mandatory=mandatory,
            content_type=content_type or 'application/octet-stream',
            content_encoding='utf-8' if content_type else 'binary',
            expiration=expiration, delivery_mode=2, retry=False)
        return not self._returned

    def declare_dead_letters(self, route):
        """Declare the dead-letter exchange and queue, bound for ``route``.

        Done when a worker connects, so the queue is there for operators
        (and their tools) before the first dead letter.
        """
        key = ('dlx', route, self.conn.default_channel)
        if key not in self._declared:
            topology.declare(self.conf, self.producer.channel)
            topology.bind_route(self.conf, self.producer.channel, route)
            self._declared.add(key)

    def dead_letter(self, body, route, headers, content_type=None):
        """Publish ``body`` to the dead-letter exchange, confirmed."""
        self.declare_dead_letters(route)
        self.publish(body, self.conf.amqp.dead_letter_exchange, route,
                     headers=headers, content_type=content_type)
