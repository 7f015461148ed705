"""Guests on the zaqar:// driver for the functional tests: unmodified
oslo.messaging servers and clients, their endpoints, the controller's
client on rabbit://, guests holding pre-signed URLs only, and a watch on
a listener's reads and push doorbell (:class:`Fetches`)."""

import json
import queue
import threading
import time

from oslo_config import cfg
import oslo_messaging
from oslo_messaging._metrics import client as metrics
from oslo_messaging._tracing import client as tracing

from tests.functional import bridgeutil

TIMEOUT = 10


class GuestError(Exception):
    """An exception type the caller is allowed to rebuild."""


def make_conf():
    conf = cfg.ConfigOpts()
    conf([], project='guest')
    # oslo.messaging 18 registers these on the global CONF only.
    conf.register_opts(tracing.oslo_messaging_tracing,
                       group='oslo_messaging_tracing')
    conf.register_opts(metrics.oslo_messaging_metrics,
                       group='oslo_messaging_metrics')
    return conf


class Endpoint:
    def __init__(self):
        self.received = queue.Queue()

    def echo(self, ctxt, value):
        self.received.put(('echo', value, ctxt))
        return {'echo': value, 'project': ctxt.get('project_id')}

    def note(self, ctxt, value):
        self.received.put(('note', value, ctxt))

    def fail_builtin(self, ctxt):
        raise ValueError('bad value from the guest')

    def fail_custom(self, ctxt):
        raise GuestError('custom failure')

    def nap(self, ctxt, seconds):
        time.sleep(seconds)
        return 'rested'


def client(transport, url, topic, exmods=None, **kw):
    return oslo_messaging.get_rpc_client(
        transport(url, exmods), oslo_messaging.Target(topic=topic),
        timeout=TIMEOUT, **kw)


class GuestAgent:
    def __init__(self, name):
        self.name = name
        self.casts = []

    def get_status(self, ctxt, **kwargs):
        return {'guest': self.name, 'project': ctxt.get('project_id'),
                'args': kwargs}

    def prepare(self, ctxt, **kwargs):
        self.casts.append(kwargs)

    def fail(self, ctxt, why):
        raise GuestError(why)

    def slow(self, ctxt, seconds):
        time.sleep(seconds)


def guest_server(url, topic, server, endpoint, exchange):
    transport = oslo_messaging.get_rpc_transport(make_conf(), url=url)
    srv = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=topic, server=server,
                                         exchange=exchange),
        [endpoint], executor='threading')
    srv.start()
    return srv, transport


def stop(srv, transport):
    srv.stop()
    srv.wait()
    transport.cleanup()


def controller_client(rabbit, names, timeout=20, **kw):
    target = oslo_messaging.Target(exchange=names.exchange,
                                   topic='guestagent.%s' % names.guest, **kw)
    transport = oslo_messaging.get_rpc_transport(bridgeutil.oslo_conf(),
                                                 url=rabbit.url)
    return oslo_messaging.get_rpc_client(transport, target, timeout=timeout)


METHODS = 'GET,POST,PATCH,DELETE'


def shared_routes(names, tenants):
    """Routes whose queue names all carry the tenant."""
    return [
        ('guests', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            tenant = context:project_id
            zaqar_queue = {tenant}-{routing_key}
            reply_queue = {tenant}-replies
            ''' % names.exchange),
        ('conductor', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = {tenant}-conductor
            routing_key = %s
            tenants = %s
            allowed_methods = heartbeat
            guest_reply_queue = {tenant}-reply_*
            poll_interval = 0.1
            ''' % (names.exchange, names.conductor, tenants)),
        ('replies', '''
            direction = to_amqp
            exchange =
            zaqar_queue = {tenant}-replies
            tenants = %s
            poll_interval = 0.05
            ''' % tenants),
    ]


def guest_queues(tenant, guest):
    """The queues a Trove-like guest uses, as the templates name them."""
    return {'serve': '%s-guestagent_%s' % (tenant, guest),
            'answers': '%s-replies' % tenant,
            'conductor': '%s-conductor' % tenant,
            'calls': '%s-reply_%s' % (tenant, guest[-8:])}


def issue_signed_urls(config, tenant, queues, path):
    """``amqp-zaqar-bridge-manage signed-url`` as installed -> a file."""
    args = ['signed-url', '--tenant', tenant, '--methods', METHODS,
            '--expires-in', '3600', '--format', 'json']
    for name in queues:
        args += ['--queue', name]
    result = bridgeutil.run_manage(config, *args)
    assert result.returncode == 0, result.stderr
    urls = json.loads(result.stdout)
    assert sorted(u['queue'] for u in urls) == sorted(queues)
    path.write_text(result.stdout)
    return path


def signed_guest_url(zaqar, tenant, signed_file, calls_queue):
    """The queues' project comes from the file; ``tenant`` names them."""
    host = zaqar.url.split('://', 1)[1].rstrip('/')
    return ('zaqar://%s/?auth_strategy=signed_url&queue_prefix=%s-'
            '&reply_queue=%s&signed_url_file=%s'
            % (host, tenant, calls_queue, signed_file))


def start_signed_guest(config, zaqar, tenant, guest, path):
    """A guest agent on signed URLs only: ``(agent, server, transport,
    signed URLs)``.  Its queues are named after ``tenant`` and live in the
    project the signed URLs name (its transport URL has no project_id).
    """
    queues = guest_queues(tenant, guest)
    signed_file = issue_signed_urls(config, tenant, list(queues.values()),
                                    path)
    url = signed_guest_url(zaqar, tenant, signed_file, queues['calls'])
    agent = GuestAgent('a')
    server, transport = guest_server(url, 'guestagent.%s' % guest,
                                     'host-a', agent, None)
    return agent, server, transport, json.loads(signed_file.read_text())


# Watching push (test_driver_push.py, tests/security/test_keystone_push.py).


def doorbell(srv):
    """The push doorbell of an RPC server's listener."""
    return srv.listener._poll_style_listener._doorbell


class Fetches:
    """The reads of Zaqar an RPC server's listener makes (its polls).

    Wraps the listener's ``_fetch`` to record each one, so a test waits
    for "the poller read its queues and found nothing" instead of
    sleeping.
    """

    def __init__(self, srv):
        self.listener = srv.listener._poll_style_listener
        self.done = []   # (started while subscribed to push, kept)
        self._changed = threading.Condition()
        fetch = self.listener._fetch

        def recorded(*args, **kwargs):
            pushing = self.listener._doorbell is not None and \
                self.listener._doorbell.subscribed.is_set()
            kept = fetch(*args, **kwargs)
            # A rung queue read to its end: the listener waits for a push.
            waits = not kept or (self.listener._drained and pushing)
            with self._changed:
                self.done.append((pushing, 0 if waits else kept))
                self._changed.notify_all()
            return kept
        self.listener._fetch = recorded

    def wait_idle(self, after=0, pushing=False, timeout=40):
        """Wait for a fetch (the ``after``-th or later) that found nothing,
        or read a rung queue to its end (and, with ``pushing``, started
        once push was subscribed): the listener then waits for its next
        poll, or a ring.  The timeout
        outlasts one poll interval, in case the fetch came before this
        wrapper."""
        def idle():
            return any(not kept and (push or not pushing)
                       for push, kept in self.done[after:])
        with self._changed:
            assert self._changed.wait_for(idle, timeout), self.done
            return len(self.done)

    def ring(self):
        """What a push does: wake the poller to read its queues."""
        self.listener._ring(None, None)
