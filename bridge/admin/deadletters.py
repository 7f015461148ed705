"""Reading the dead-letter queue without taking anything out of it.

RabbitMQ has no "browse": :meth:`DeadLetterQueue.walk` takes messages with
``basic.get`` and leaves them unacknowledged, so a walk never meets the same
message twice.  What the caller does not acknowledge (replayed, purged)
goes back when the channel closes: RabbitMQ puts returned messages back at
their place in the queue, so the order is kept, and on quorum queues a
return on close does not count as a failed delivery (``basic.reject`` with
requeue, used in a loop, would do both wrong).

What a dead letter carries is described in bridge/amqp/topology.py.
"""

import base64
import datetime
import json

import amqp.exceptions
import kombu

from bridge.admin import Failure
from bridge.amqp import connection as amqp_connection
from bridge import backoff
from bridge.routes import common as route_common

PREFIX = 'x-bridge-'
# Where a to_zaqar message was first published; kept on replay so the
# forward path renders the same Zaqar queue as the first time.
ORIGIN_HEADERS = (PREFIX + 'exchange', PREFIX + 'routing-key')


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value


class DeadLetter:
    """One dead letter, still unacknowledged on the walking channel."""

    def __init__(self, index, message):
        self.index = index
        self.message = message
        self.headers = {k: _text(v)
                        for k, v in (message.headers or {}).items()}

    def header(self, name):
        return self.headers.get(PREFIX + name)

    @property
    def route(self):
        return self.header('route') or ''

    @property
    def direction(self):
        return self.header('direction') or ''

    @property
    def reason(self):
        return self.header('reason') or ''

    @property
    def message_id(self):
        return str(self.header('message-id') or '')

    @property
    def dead_lettered_at(self):
        try:
            return int(self.header('dead-lettered-at'))
        except (TypeError, ValueError):
            return None

    @property
    def source(self):
        """Where the message came from, in words."""
        if self.direction == route_common.TO_AMQP:
            return 'tenant %s queue %s' % (self.header('tenant'),
                                           self.header('zaqar-queue'))
        return 'exchange %r key %s' % (self.header('exchange') or '',
                                       self.header('routing-key'))

    def replay_headers(self):
        """The original headers: the bridge's own dropped, origin kept."""
        return {k: v for k, v in self.headers.items()
                if not k.startswith(PREFIX) or k in ORIGIN_HEADERS}

    def body(self):
        """(encoding, value): the body as JSON, text or base64."""
        raw = self.message.body
        if isinstance(raw, str):
            raw = raw.encode('utf-8')
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError:
            return 'base64', base64.b64encode(raw).decode('ascii')
        try:
            return 'json', json.loads(text)
        except ValueError:
            return 'text', text

    def summary(self):
        """The fields ``dead-letters list --format json`` prints."""
        return {'index': self.index, 'route': self.route,
                'direction': self.direction, 'reason': self.reason,
                'message_id': self.message_id, 'from': self.source,
                'dead_lettered_at': self.dead_lettered_at}

    def row(self, reason_width=60):
        """The same, shortened for a table."""
        row = self.summary()
        if len(row['reason']) > reason_width:
            row['reason'] = row['reason'][:reason_width - 3] + '...'
        row['dead_lettered_at'] = iso_time(row['dead_lettered_at'])
        return row

    def details(self):
        encoding, value = self.body()
        out = {'index': self.index, 'headers': self.headers,
               'content_type': self.message.content_type,
               'content_encoding': self.message.content_encoding,
               'body_encoding': encoding, 'body': value}
        inner = _oslo_message(value) if encoding == 'json' else None
        if inner is not None:
            out['oslo_message'] = inner
        return out


def _oslo_message(body):
    """The message inside an oslo.messaging 2.0 envelope, decoded."""
    if not isinstance(body, dict) or \
            not isinstance(body.get('oslo.message'), str):
        return None
    try:
        return json.loads(body['oslo.message'])
    except ValueError:
        return None


def iso_time(epoch):
    if epoch is None:
        return '-'
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%SZ')


def select(letters, route=None, ident=None):
    """The letters of ``route`` whose message id (else index) is ``ident``."""
    chosen = [letter for letter in letters
              if route is None or letter.route == route]
    if ident is None:
        return chosen
    by_id = [letter for letter in chosen if letter.message_id == ident]
    if by_id or not ident.isdigit():
        return by_id
    return [letter for letter in chosen if letter.index == int(ident)]


class DeadLetterQueue:
    """``[amqp] dead_letter_queue``, opened for one command."""

    def __init__(self, conf):
        self.conf = conf
        self.name = conf.amqp.dead_letter_queue
        self.connection = None
        self._channel = None

    def __enter__(self):
        self.connection = amqp_connection.connection(self.conf)
        try:
            self.connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0,
                timeout=self.conf.amqp.connect_timeout)
        except Exception as exc:
            self.connection.release()
            raise Failure('RabbitMQ at %s is unreachable: %s'
                          % (amqp_connection.redact(self.conf.transport_url),
                             backoff.error_text(exc)))
        return self

    def __exit__(self, *exc_info):
        # Closing returns every message not acknowledged, in order.
        try:
            if self._channel is not None:
                self._channel.close()
        except Exception:  # the connection is closed just after anyway
            pass
        self.connection.release()

    @property
    def errors(self):
        """What a lost connection or a refused operation raises."""
        return self.connection.connection_errors + \
            self.connection.channel_errors

    def count(self):
        """Messages waiting, or None when the queue does not exist."""
        channel = self.connection.channel()
        try:
            _, count, _ = channel.queue_declare(queue=self.name,
                                                passive=True)
        except amqp.exceptions.NotFound:
            return None
        finally:
            if channel.is_open:
                channel.close()
        return count

    def walk(self, limit=None):
        """The dead letters from the head of the queue, at most ``limit``.

        Only those waiting when the walk starts: the ones dead-lettered
        meanwhile are for the next command.
        """
        try:
            total = self.count() or 0
            if limit is not None:
                total = min(total, limit)
            if not total:
                return
            self._channel = self.connection.channel()
            queue = kombu.Queue(self.name, channel=self._channel,
                                no_declare=True)
            for index in range(1, total + 1):
                message = queue.get(no_ack=False)
                if message is None:
                    return
                yield DeadLetter(index, message)
        except self.errors as exc:
            raise Failure('cannot read the dead-letter queue %s: %s'
                          % (self.name, backoff.error_text(exc)))
