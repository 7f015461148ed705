"""The control-plane broker connection, from an oslo.messaging URL.

``[DEFAULT] transport_url`` uses oslo.messaging's syntax
(``rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost``), which kombu
does not read: it is parsed with :class:`oslo_messaging.TransportURL` and
turned into a kombu connection with failover across all hosts, heartbeats
and publisher confirms.
"""

import socket
from urllib import parse

import kombu
from oslo_config import cfg
import oslo_messaging

from bridge.amqp import transport

GROUP = 'amqp'

# [DEFAULT]
DEFAULT_OPTS = [
    cfg.StrOpt('transport_url', secret=True,
               default='rabbit://guest:guest@127.0.0.1:5672/',
               help='The control-plane RabbitMQ, in oslo.messaging\'s URL '
                    'syntax: rabbit://user:pass@host1:5672,user:pass@'
                    'host2:5672/vhost. Several hosts fail over in turn.'),
]

OPTS = [
    cfg.IntOpt('heartbeat', default=60, min=0,
               help='AMQP heartbeat interval in seconds (0 disables). '
                    'Every worker services heartbeats while idle, so '
                    'RabbitMQ never closes a quiet route\'s connection.'),
    cfg.StrOpt('dead_letter_exchange', default='amqp-zaqar-bridge.dlx',
               help='Exchange (direct, durable) that receives messages the '
                    'bridge can never deliver, with headers x-bridge-route, '
                    'x-bridge-reason and x-bridge-routing-key.'),
    cfg.StrOpt('dead_letter_queue', default='amqp-zaqar-bridge.dead-letters',
               help='Durable queue bound to dead_letter_exchange where '
                    'dead letters wait for an operator (list, replay, '
                    'purge with amqp-zaqar-bridge-manage).'),
    cfg.BoolOpt('quorum_queues', default=False,
                help='Declare the bridge\'s own durable queues as quorum '
                     'queues (x-queue-type=quorum), as oslo.messaging\'s '
                     'rabbit_quorum_queue does, so a clustered broker loses '
                     'nothing when a node goes away.'),
    cfg.FloatOpt('connect_timeout', default=5.0, min=0.1,
                 help='Seconds to wait for one connection attempt.'),
]

SCHEMES = ('rabbit', 'amqp')


class URLError(ValueError):
    """A transport_url the bridge can't use."""


def kombu_url(transport_url):
    """Convert an oslo.messaging transport URL into a kombu URL string."""
    try:
        url = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(),
                                                transport_url)
    except Exception as exc:  # InvalidTransportURL and parse errors
        raise URLError('transport_url is not valid: %s' % exc)
    if url.transport not in SCHEMES:
        raise URLError('transport_url scheme %r is not supported; use '
                       'rabbit://' % (url.transport,))
    if not url.hosts or not all(h.hostname for h in url.hosts):
        raise URLError('transport_url names no host')
    vhost = url.virtual_host or ''
    parts = []
    for host in url.hosts:
        auth = ''
        if host.username:
            auth = parse.quote(host.username, safe='')
            if host.password:
                auth += ':' + parse.quote(host.password, safe='')
            auth += '@'
        hostname = host.hostname
        if ':' in hostname:
            hostname = '[%s]' % hostname
        parts.append('amqp://%s%s:%d/%s' % (auth, hostname, host.port or 5672,
                                            parse.quote(vhost, safe='')))
    return ';'.join(parts)


def connection(conf, transport_url=None, buffered=False):
    """A kombu Connection (not yet connected) for the control plane.

    ``buffered``: read frames from a buffer (bridge/amqp/transport.py), for
    a consumer that takes many messages in a row.
    """
    url = kombu_url(transport_url or conf.transport_url)
    if buffered:
        return transport.KombuConnection(
            url, transport=transport.Transport,
            heartbeat=conf[GROUP].heartbeat,
            connect_timeout=conf[GROUP].connect_timeout,
            failover_strategy='round-robin',
            transport_options={'confirm_publish': True})
    return kombu.Connection(
        url,
        heartbeat=conf[GROUP].heartbeat,
        connect_timeout=conf[GROUP].connect_timeout,
        failover_strategy='round-robin',
        transport_options={'confirm_publish': True},
    )


def keep_alive(conn):
    """Service the heartbeats of a connection that may sit idle.

    As oslo.messaging's heartbeat thread does: ``heartbeat_check`` sends a
    heartbeat when nothing else was sent lately (and raises a connection
    error once the broker's heartbeats stopped coming), and a short read
    takes in the broker's heartbeat frames.  Call it about every
    :func:`tick` seconds; a consumer reading the connection (kombu's
    ConsumerMixin) does this already.
    """
    if not conn.heartbeat or not conn.connected:
        return
    # Read first: heartbeats waiting in the socket count as received.
    try:
        conn.drain_events(timeout=0.001)
    except socket.timeout:
        pass
    conn.heartbeat_check()


def tick(conf, longest):
    """Longest wait in seconds between two :func:`keep_alive` calls."""
    if not conf[GROUP].heartbeat:
        return longest
    return min(longest, conf[GROUP].heartbeat / 4.0)


def queue_arguments(conf):
    """Arguments for the bridge's own durable queues."""
    if conf[GROUP].quorum_queues:
        return {'x-queue-type': 'quorum'}
    return {}


def redact(url):
    """A URL safe for logs: passwords replaced by ***."""
    try:
        parsed = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url)
    except Exception:
        return '<unparsable transport_url>'
    hosts = ','.join('%s%s:%s' % ((h.username + ':***@') if h.username else '',
                                  h.hostname, h.port or 5672)
                     for h in parsed.hosts)
    return '%s://%s/%s' % (parsed.transport, hosts, parsed.virtual_host or '')
