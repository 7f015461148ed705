"""What the forward flow takes from kombu's consumer side.

kombu's :class:`~kombu.mixins.ConsumerMixin` runs the consumer loop and
reconnects; this module only adds a quieter log line for a lost
connection and a look at whether another delivery is already waiting.
"""

import logging
import select

from kombu import mixins

from bridge.amqp import transport as amqp_transport
from bridge import backoff


class ConnectionLost(logging.Filter):
    """kombu's ConsumerMixin logs a lost broker connection with its
    traceback before it reconnects (to the next transport_url host, if
    any): one line naming the route and the reason is enough."""

    def __init__(self, route_name):
        super().__init__()
        self.route_name = route_name

    def filter(self, record):
        if record.msg == mixins.W_CONN_LOST and record.exc_info:
            record.msg = 'Route %s: connection to RabbitMQ lost (%s), ' \
                'reconnecting'
            record.args = (self.route_name,
                           backoff.error_text(record.exc_info[1]))
            record.exc_info = record.exc_text = None
        return True


def log_lost_connections(route_name):
    """One log line per lost connection of ``route_name``'s consumer."""
    mixins.logger.addFilter(ConnectionLost(route_name))


def more_waiting(conn):
    """Is another delivery already waiting on kombu connection ``conn``?

    Frames received ahead of the one being handled sit in the buffer of
    bridge/amqp/transport.py's transport; with py-amqp's own, in its
    ``_read_buffer`` (a private attribute of py-amqp 5.x, read here only,
    with no public equivalent); when neither says, the socket alone is
    asked.  Any failure answers True: the caller then batches by time
    only.
    """
    try:
        buffered = amqp_transport.pending_bytes(conn)
        if buffered:
            return True
        transport = conn.connection.transport
        if buffered is None and getattr(transport, '_read_buffer', None):
            return True
        readable, _, _ = select.select([transport.sock], [], [], 0)
        return bool(readable)
    except Exception:
        return True
