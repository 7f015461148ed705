"""Metrics, /healthz and systemd notifications of the running daemon."""

import socket
import tempfile
import threading
import signal
import time

import oslo_messaging
import pytest

from tests.fixtures import servers
from tests.fixtures import web
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional

METRICS = '''
[metrics]
port = {port}
zaqar_check_interval = 0.5
'''


@pytest.fixture
def port():
    return servers.free_port()


@pytest.fixture
def config(tmp_path, rabbit, zaqar, names, port):
    path = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar,
        [('guests', bridgeutil.FORWARD.format(exchange=names.exchange))],
        extra=METRICS.format(port=port))
    yield path
    bridgeutil.delete_queues(rabbit, path)


@pytest.fixture
def daemon(config, tmp_path):
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log')
    yield d
    assert d.stop() == 0


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())))


def healthz(port, expect):
    return bridgeutil.wait_until(
        lambda: web.get(port, '/healthz')[0] == expect
        and web.get(port, '/healthz'),
        what=lambda: '/healthz %s, got %s' % (expect,
                                              web.get(port, '/healthz')))


def cast(rabbit, names, n):
    target = oslo_messaging.Target(exchange=names.exchange,
                                   topic='guestagent.%s' % names.guest)
    client = oslo_messaging.get_rpc_client(bridgeutil.rpc_transport(rabbit),
                                           target)
    for i in range(n):
        client.cast({'project_id': names.tenant}, 'ping', n=i)


def test_metrics_count_forwarded_messages(daemon, port, rabbit, zaqar,
                                          names):
    daemon.start(2)
    healthz(port, 200)
    found = bridgeutil.samples(port)
    assert value(found, 'bridge_workers', route='guests') == 2
    assert value(found, 'bridge_workers_configured', route='guests') == 2
    assert value(found, 'bridge_messages_forwarded_total',
                 route='guests') == 0

    cast(rabbit, names, 3)
    bridgeutil.drain(zaqar.client(names.tenant).queue(
        'guestagent_%s' % names.guest), 3)

    def counted():
        found = bridgeutil.samples(port)
        return value(found, 'bridge_messages_forwarded_total',
                     route='guests') == 3 and found
    found = bridgeutil.wait_until(counted, what='3 messages forwarded')
    assert value(found, 'bridge_messages_received_total',
                 route='guests') == 3
    assert value(found, 'bridge_messages_dead_lettered_total',
                 route='guests') == 0
    assert value(found, 'bridge_messages_retried_total',
                 route='guests') == 0
    assert value(found, 'bridge_forward_latency_seconds_count',
                 route='guests') == 3
    assert 0 < value(found, 'bridge_forward_latency_seconds_sum',
                     route='guests') < 30
    assert value(found, 'bridge_in_flight', route='guests') == 0
    for side in ('rabbitmq', 'zaqar'):
        assert value(found, 'bridge_connection_up', route='guests',
                     side=side) == 1


def test_healthz_follows_zaqar(daemon, port, zaqar):
    daemon.start(2)
    assert healthz(port, 200) == (200, 'ok\n')
    zaqar.stop()
    try:
        status, text = healthz(port, 503)
        assert text == 'route guests: zaqar down\n'
        assert value(bridgeutil.samples(port), 'bridge_connection_up',
                     route='guests', side='zaqar') == 0
    finally:
        zaqar.start()
    healthz(port, 200)


class NotifySocket:
    """A stand-in for systemd's notification socket."""

    def __init__(self, directory):
        self.path = str(directory / 'notify')
        if len(self.path) > 100:  # sun_path is 108 bytes
            self.path = tempfile.mkdtemp(prefix='bridge-') + '/notify'
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, variable, log so far)
        self.daemon = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            now = time.monotonic()
            log = self.daemon.log() if self.daemon else ''
            for line in data.decode().splitlines():
                self.messages.append((now, line, log))

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def lines(self, prefix, since=0.0):
        return [(t, line, log) for t, line, log in list(self.messages)
                if line.startswith(prefix) and t >= since]

    def wait_for(self, prefix, since=0.0, timeout=60, text='', count=1):
        """The lines starting with ``prefix`` (and holding ``text``) since
        ``since``, once there are ``count`` of them."""
        def found():
            got = [m for m in self.lines(prefix, since) if text in m[1]]
            return got if len(got) >= count else None
        return bridgeutil.wait_until(
            found, timeout=timeout, interval=0.05,
            what=lambda: '%d x %s%s, got %s' % (
                count, prefix, text, [m[1] for m in self.messages]))


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(tmp_path)
    yield sock
    sock.close()


def test_systemd_notifications(config, tmp_path, zaqar, notify_socket):
    daemon = bridgeutil.Daemon(
        config, tmp_path / 'bridge.log',
        env={'NOTIFY_SOCKET': notify_socket.path,
             'WATCHDOG_USEC': '2000000', 'WATCHDOG_PID': None})
    notify_socket.daemon = daemon
    zaqar.stop()
    try:
        # RabbitMQ is there, Zaqar is not: not ready, but the workers
        # run (and retry): the watchdog goes on.
        daemon.start(2)
        (down_at, _, _), = notify_socket.wait_for(
            'STATUS=', text='route guests: zaqar down')[:1]
        # Two pings while Zaqar is down, and still no READY=1.
        notify_socket.wait_for('WATCHDOG=1', since=down_at, count=2)
        assert not notify_socket.lines('READY=1')
        zaqar.start()

        (ready_at, _, log), = notify_socket.wait_for('READY=1')
        # Sent only once every worker had connected and said so.
        assert daemon.ready_count(log) >= 2
        assert 'Every route is connected' in log
        notify_socket.wait_for('STATUS=', since=ready_at,
                               text='1 route, forwarded 0 msgs, '
                                    'dead-lettered 0')

        # Pings go on while healthy (every half WATCHDOG_USEC; how
        # regularly is not asserted: the machine may be loaded).
        notify_socket.wait_for('WATCHDOG=1', since=ready_at, count=4)

        zaqar.stop()
        stopped_at = time.monotonic()
        (down_at, _, _), = notify_socket.wait_for(
            'STATUS=', since=stopped_at, text='route guests: zaqar down')[:1]
        # An outage is no reason for systemd to restart the bridge.
        notify_socket.wait_for('WATCHDOG=1', since=down_at, count=2)
    finally:
        zaqar.start()
    (back_at, _, _), = notify_socket.wait_for(
        'STATUS=', since=down_at, text='1 route')[:1]
    notify_socket.wait_for('WATCHDOG=1', since=back_at)
    assert len(notify_socket.lines('READY=1')) == 1

    # systemctl reload: RELOADING=1, then READY=1 once applied.
    reload_at = time.monotonic()
    daemon.proc.send_signal(signal.SIGHUP)
    notify_socket.wait_for('RELOADING=1', since=reload_at)
    notify_socket.wait_for('MONOTONIC_USEC=', since=reload_at)
    notify_socket.wait_for('READY=1', since=reload_at)
    assert daemon.stop() == 0
    notify_socket.wait_for('STOPPING=1', timeout=5)
