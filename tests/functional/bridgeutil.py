"""Run the installed daemon and talk oslo.messaging to it, for tests."""

import atexit
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import kombu
import oslo_messaging
from oslo_config import cfg
from oslo_messaging._drivers import common as rpc_common
from prometheus_client import parser

from tests.fixtures import proxy
from tests.fixtures import servers
from tests.fixtures import web

SECRET = 'functional-test-secret'


def bin_path(name):
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def write_config(path, rabbit, zaqar, routes, extra='', prefix='bridge-test',
                 secret=SECRET):
    """A config whose AMQP queues are this test's own.

    Every to_zaqar route and the reply queue get unique durable queue
    names (``<prefix>-<run>-<route>``, remembered for
    :func:`delete_queues`), so runs and tests never share a backlog.  The
    metrics endpoint gets a free port (unless ``extra`` has a [metrics]
    section), so daemons never share one.
    """
    names = ', '.join(name for name, _ in routes)
    run = uuid.uuid4().hex[:12]
    queues = ['%s-%s-replies' % (prefix, run)]
    text = textwrap.dedent('''
        [DEFAULT]
        transport_url = {rabbit}
        routes = {names}
        graceful_shutdown_timeout = 20
        [zaqar]
        url = {zaqar}
        [rpc]
        reply_secret = {secret}
        amqp_reply_queue = {reply_queue}
        ''').format(rabbit=rabbit.url, names=names, zaqar=zaqar.url,
                    secret=secret, reply_queue=queues[0])
    for name, body in routes:
        body = textwrap.dedent(body).strip()
        if 'to_zaqar' in body and 'amqp_queue' not in body:
            queues.append('%s-%s-%s' % (prefix, run, name))
            body += '\namqp_queue = %s' % queues[-1]
        text += '\n[route:%s]\n%s\n' % (name, body)
    extra = textwrap.dedent(extra)
    # A dead-letter queue and exchange of the test's own go with the test.
    queues += re.findall(r'^dead_letter_queue\s*=\s*(\S+)', extra, re.M)
    EXCHANGES[str(path)] = re.findall(r'^dead_letter_exchange\s*=\s*(\S+)',
                                      extra, re.M)
    if '[metrics]' not in extra:
        extra += '\n[metrics]\nport = %d\n' % servers.free_port()
    path.write_text(text + extra)
    QUEUES[str(path)] = queues
    return path


QUEUES = {}
EXCHANGES = {}


def route(direction, exchange, **options):
    """A route section: ``direction``, ``exchange``, then ``options``."""
    options = dict(direction=direction, exchange=exchange, **options)
    return ''.join('%s = %s\n' % item for item in options.items())


def guests_route(exchange, binding_keys='guestagent.*', **options):
    """to_zaqar: controllers' casts to guestagent.* -> the tenant's queue
    guestagent_<id>."""
    return route('to_zaqar', exchange, binding_keys=binding_keys,
                 tenant='context:project_id', **options)


def conductor_route(exchange, zaqar_queue, tenants, **options):
    """to_amqp: guests' heartbeats (by default) from ``zaqar_queue`` of
    each tenant."""
    options.setdefault('allowed_methods', 'heartbeat')
    return route('to_amqp', exchange, zaqar_queue=zaqar_queue,
                 tenants=', '.join(tenants), **options)


def heartbeat(n, ttl=300):
    """A guest's heartbeat cast (``n``), as it posts it to a conductor
    queue (doc/protocol.rst)."""
    return {'ttl': ttl, 'body': {'bridge': 1, 'message': {
        'method': 'heartbeat', 'args': {'n': n},
        '_unique_id': uuid.uuid4().hex}}}


def heartbeats_seen(conductor):
    """The ``n`` of each heartbeat a :class:`Conductor` was called with."""
    return [c[2]['n'] for c in conductor.calls if c[0] == 'heartbeat']


def dead_letter_section(name):
    """``[amqp]`` for dead letters of the test's own (exchange and queue
    ``name``), deleted with the test's queues."""
    return ('\n[amqp]\ndead_letter_exchange = %s\ndead_letter_queue = %s\n'
            % (name, name))


def delete_queues(rabbit, config):
    """Remove the durable queues (and dead-letter exchange) a test's
    daemon declared."""
    with kombu.Connection(rabbit.kombu_url) as conn:
        for name in QUEUES.pop(str(config), []):
            try:
                conn.default_channel.queue_delete(name)
            except conn.channel_errors:
                pass
        for name in EXCHANGES.pop(str(config), []):
            conn.default_channel.exchange_delete(name)


class Daemon:
    """The amqp-zaqar-bridge process started from a config file.

    ``env``: variables to set in (or, with the value None, remove from) the
    environment it inherits.
    """

    def __init__(self, config, log_path, *extra_args, env=None):
        self.config = config
        self.log_path = log_path
        self.args = [bin_path('amqp-zaqar-bridge'), '--config-file',
                     str(config), '--log-file', str(log_path)] + \
            list(extra_args)
        self.env = dict(env or {})
        self.proc = None

    def environment(self):
        env = dict(os.environ)
        for name, value in self.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        return env

    def start(self, workers=1):
        """Start, and wait until ``workers`` workers are connected."""
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     env=self.environment())
        RUNNING.add(self)
        self.wait_for_log(lambda text: self.ready_count(text) >= workers,
                          what='%d worker(s) ready' % workers)
        return self

    @staticmethod
    def ready_count(text):
        return text.count('consuming queue') + text.count(
            'connected to RabbitMQ, draining')

    def log(self):
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ''

    def wait_for_log(self, predicate, timeout=30, what='log line'):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.log()):
                return
            if self.proc.poll() is not None:
                raise AssertionError('daemon exited (%s) before %s:\n%s\n%s'
                                     % (self.proc.returncode, what,
                                        self.proc.stderr.read().decode(),
                                        self.log()[-3000:]))
            time.sleep(0.1)
        raise AssertionError('timed out waiting for %s:\n%s'
                             % (what, self.log()[-3000:]))

    def worker_pids(self):
        """The route workers (not the metrics endpoint's process)."""
        out = subprocess.run(['pgrep', '-P', str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        pids = []
        for pid in out.split():
            try:
                cmd = pathlib.Path('/proc/%s/cmdline' % pid).read_bytes()
            except FileNotFoundError:
                continue
            if b': metrics worker' in cmd:
                continue
            if b'worker' in cmd or b'amqp-zaqar-bridge' in cmd:
                pids.append(int(pid))
        return sorted(pids)

    def pid_logging(self, text):
        """The pid of the (latest) process that logged ``text``."""
        lines = [line for line in self.log().splitlines() if text in line]
        if not lines:
            raise AssertionError('nothing logged %r' % text)
        return int(lines[-1].split()[2])

    def stop(self, timeout=30):
        RUNNING.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError('daemon did not stop within %ss' % timeout)


# Daemons not stopped yet: a test that failed half-way leaves its daemon
# to this, so no bridge outlives the test run.
RUNNING = set()


@atexit.register
def _stop_leftovers():
    for daemon in list(RUNNING):
        try:
            daemon.stop(timeout=10)
        except AssertionError:
            pass   # killed


def run_manage(config, *args):
    return subprocess.run([bin_path('amqp-zaqar-bridge-manage'),
                           '--config-file', str(config)] + list(args),
                          capture_output=True, text=True, timeout=60)


_CONF = None


def oslo_conf():
    """oslo.messaging needs its tracing options on cfg.CONF."""
    global _CONF
    if _CONF is None:
        cfg.CONF([], project='bridge-functional-tests')
        _CONF = cfg.CONF
    return _CONF


def rpc_transport(rabbit):
    return oslo_messaging.get_rpc_transport(oslo_conf(), url=rabbit.url)


def rpc_server(rabbit, exchange, topic, endpoint, server='c1'):
    """A started oslo.messaging RPC server on RabbitMQ (rabbit://)."""
    srv = oslo_messaging.get_rpc_server(
        rpc_transport(rabbit),
        oslo_messaging.Target(exchange=exchange, topic=topic, server=server),
        [endpoint], executor='threading')
    srv.start()
    return srv


def stop_server(srv):
    srv.stop()
    srv.wait()


def notification_transport(rabbit):
    return oslo_messaging.get_notification_transport(oslo_conf(),
                                                     url=rabbit.url)


def wait_until(predicate, timeout=30, interval=0.2, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out waiting for %s'
                         % (what() if callable(what) else what))


def drain(queue, expect, timeout=30):
    """Claim and delete messages from a zaqarclient queue until ``expect``."""
    got = []

    def more():
        for message in queue.claim(ttl=60, grace=60, limit=20):
            got.append(message.body)
            message.delete()
        return len(got) >= expect
    wait_until(more, timeout, what=lambda: '%d message(s), got %d: %s'
               % (expect, len(got), got))
    return got


class HttpProxy(proxy.Proxy):
    """An HTTP proxy in front of a real server (zaqar-server, Keystone).

    It records every request (``requests``: method, path, Zaqar project,
    status; 502 when the server failed) and can hold the next request
    matching ``hold(predicate)`` until :meth:`release`, to catch the bridge
    in the middle of its work.  Give the bridge ``proxy.url`` (``[zaqar]
    url``, ``auth_url``) to see what it asks.
    """

    def __init__(self, target):
        self.requests = []
        super().__init__(target, observe=self._record)

    def _record(self, method, path, headers, status, took):
        self.requests.append((method, path, headers.get('X-Project-Id'),
                              status))


# The forward route most tests run.
FORWARD = '''
direction = to_zaqar
exchange = {exchange}
binding_keys = guestagent.*
tenant = context:project_id
workers = 2
'''


def rpc_client(rabbit, exchange, topic, **kw):
    target = oslo_messaging.Target(exchange=exchange, topic=topic, **kw)
    return oslo_messaging.get_rpc_client(rpc_transport(rabbit),
                                         target)


def dead_letters(rabbit, queue, expect):
    got = []
    with kombu.Connection(rabbit.kombu_url) as conn:
        q = kombu.Queue(queue, channel=conn.default_channel, no_declare=True)

        def more():
            message = q.get(no_ack=True)
            while message is not None:
                got.append(message)
                message = q.get(no_ack=True)
            return len(got) >= expect
        wait_until(more, what=lambda: '%d dead letters, got %s'
                   % (expect, [m.headers for m in got]))
    return got


def rpc_routes(names, tenants, allowed_methods='heartbeat, report'):
    """Calls both ways: guests (to_zaqar), conductor and replies
    (to_amqp) of ``tenants``."""
    return [
        ('guests', guests_route(names.exchange)),
        ('conductor', conductor_route(names.exchange, names.conductor,
                                      tenants, poll_interval=0.2,
                                      allowed_methods=allowed_methods)),
        ('replies', route('to_amqp', '', zaqar_queue='bridge_replies',
                          tenants=', '.join(tenants), poll_interval=0.2)),
    ]


def start_rpc_daemon(tmp_path, rabbit, zaqar, names, amqp_options=''):
    """A daemon carrying calls both ways: guests, conductor and replies.

    ``amqp_options``: more lines for its ``[amqp]`` section.
    """
    config = write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar,
        rpc_routes(names, (names.tenant_a, names.tenant_b)),
        extra=dead_letter_section(names.dlq) + amqp_options)
    return Daemon(config, tmp_path / 'bridge.log').start(4)


def stop_rpc_daemon(d, rabbit):
    assert d.stop() == 0
    delete_queues(rabbit, d.config)


class Guest:
    """A guest agent that answers calls using only zaqarclient.

    ``client`` is the guest's own zaqarclient client; the reply tokens it
    answered with are kept in ``tokens``.
    """

    def __init__(self, client, queue, handler):
        self.client = client
        self.queue = self.client.queue(queue)
        self.handler = handler
        self.tokens = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.is_set():
            for message in self.queue.claim(ttl=60, grace=60, limit=10):
                self.answer(message.body)
                message.delete()
            time.sleep(0.02)

    def answer(self, body):
        msg = body['message']
        if 'reply' not in body:
            return
        self.tokens.append(body['reply']['token'])
        try:
            result, failure = self.handler(msg['method'], msg['args']), None
        except Exception:
            result = None
            failure = rpc_common.serialize_remote_exception(sys.exc_info())
        self.client.queue(body['reply']['queue']).post([{'ttl': 60, 'body': {
            'bridge': 1, 'id': uuid.uuid4().hex,
            'reply_token': body['reply']['token'],
            'message': {'result': result, 'failure': failure,
                        'ending': True, '_msg_id': msg['_msg_id']}}}])

    def stop(self):
        self.stopped.set()
        self.thread.join()


def guest_handler(method, args):
    if method == 'boom':
        raise ValueError('guest says no: %s' % args['why'])
    return {'method': method, 'args': args}


def guest_rpc_client(rabbit, names, timeout=15):
    """An RPC client calling the guest of ``names`` (guestagent.<guest>)."""
    target = oslo_messaging.Target(exchange=names.exchange,
                                   topic='guestagent.%s' % names.guest)
    return oslo_messaging.get_rpc_client(rpc_transport(rabbit),
                                         target, timeout=timeout)


def post(zaqar, tenant, queue, body):
    zaqar.client(tenant).queue(queue).post([{'ttl': 300, 'body': body}])


def samples(port):
    """{(name, frozenset(labels)): value} from /metrics."""
    status, text = web.get(port, '/metrics')
    assert status == 200, text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(text)
            for s in family.samples}


class Conductor:
    """A control-plane RPC endpoint that records what reaches it."""

    def __init__(self):
        self.calls = []

    def heartbeat(self, ctxt, **kwargs):
        self.calls.append(('heartbeat', ctxt, kwargs))
        return {'seen': kwargs}

    def drop_everything(self, ctxt, **kwargs):
        self.calls.append(('drop_everything', ctxt, kwargs))


def doorbell_started(daemon, workers):
    """Wait until each worker's start-up sweep (after subscribing every
    queue it checks each subscription's options and looks at each queue,
    bridge/flows/recovery.py) is over.  A worker whose shard holds no
    tenant queue (both tenants can hash to one worker) has none."""
    def done(text):
        shards = re.findall(r'connected to RabbitMQ, draining (\d+) tenant',
                            text)
        busy = len([n for n in shards if int(n)])
        return len(shards) >= workers and \
            text.count('recovery sweep of') >= busy
    daemon.wait_for_log(done, what='the start-up sweeps')
