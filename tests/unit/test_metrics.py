"""Metrics written by several processes, merged into health and /metrics."""

import logging
import multiprocessing
import os
from wsgiref import util as wsgi_util

from oslo_config import cfg
from prometheus_client import values
import pytest

from bridge import backoff
from bridge.daemon import health
from bridge import metrics

FORK = multiprocessing.get_context('fork')


class Process:
    """A forked process that records metrics, then lives until stop()."""

    def __init__(self, path, record):
        self._recorded = FORK.Event()
        self._release = FORK.Event()
        self.proc = FORK.Process(target=self._main, args=(path, record))
        self.proc.start()
        assert self._recorded.wait(20), 'metrics process did not start'

    def _main(self, path, record):
        metrics.use_dir(path)
        record(metrics.Metrics())
        self._recorded.set()
        self._release.wait(60)

    def stop(self):
        self._release.set()
        self.proc.join(20)


@pytest.fixture
def processes(tmp_path):
    started = []

    def start(record):
        started.append(Process(str(tmp_path), record))
        return started[-1]
    yield start
    for proc in started:
        proc.stop()


def master(routes):
    def record(m):
        for route, workers in routes.items():
            m.configured(route, workers)
    return record


def worker(route, rabbitmq=True, zaqar=True, received=0, forwarded=(),
           in_flight=0, dead=0, tenants=0):
    def record(m):
        m.worker_started(route)
        m.tenants(route, tenants)
        m.connection(route, 'rabbitmq', rabbitmq)
        m.connection(route, 'zaqar', zaqar)
        for _ in range(received):
            m.received(route)
        for latency in forwarded:
            m.forwarded(route, latency)
        for _ in range(dead):
            m.dead_lettered(route)
        m.in_flight(route, in_flight)
    return record


def request(app, url):
    environ = {'PATH_INFO': url}
    wsgi_util.setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers):
        answer['status'] = status
        answer['headers'] = dict(headers)
    body = b''.join(app(environ, start_response)).decode()
    return answer['status'], answer['headers'], body


def test_healthy_when_every_worker_is_connected(tmp_path, processes):
    processes(master({'r1': 2, 'r2': 1, 'gone': 0}))
    processes(worker('r1', received=3, forwarded=[0.1, 0.2]))
    processes(worker('r1', received=1, forwarded=[0.3], dead=1))
    processes(worker('r2'))
    result = health.check(str(tmp_path))
    assert result.ok
    assert result.problems == []
    assert result.routes == 2
    assert result.totals['received'] == 4
    assert result.status() == '2 routes, forwarded 3 msgs, dead-lettered 1'


def test_one_worker_down_makes_the_route_unhealthy(tmp_path, processes):
    processes(master({'r1': 2}))
    processes(worker('r1', in_flight=3, tenants=4))
    processes(worker('r1', zaqar=False, in_flight=2, tenants=3))
    result = health.check(str(tmp_path))
    assert not result.ok and result.alive
    assert result.problems == [] and result.down == ['route r1: zaqar down']
    assert result.status() == ('route r1: zaqar down; forwarded 0 msgs, '
                               'dead-lettered 0')

    status, headers, body = request(health.application(str(tmp_path)),
                                    '/metrics')
    assert status == '200 OK'
    assert headers['Content-Type'].startswith('text/plain')
    # livesum and livemin over the workers
    assert 'bridge_in_flight{route="r1"} 5.0' in body
    assert 'bridge_tenants{route="r1"} 7.0' in body
    assert 'bridge_connection_up{route="r1",side="zaqar"} 0.0' in body
    assert 'bridge_connection_up{route="r1",side="rabbitmq"} 1.0' in body
    assert 'bridge_workers{route="r1"} 2.0' in body
    assert 'bridge_messages_received_total{route="r1"} 0.0' in body

    status, _, body = request(health.application(str(tmp_path)), '/healthz')
    assert status == '503 Service Unavailable'
    assert body == 'route r1: zaqar down\n'


def test_missing_and_dead_workers(tmp_path, processes):
    processes(master({'r1': 2}))
    processes(worker('r1', received=2))
    assert health.check(str(tmp_path)).problems == [
        'route r1: 1/2 workers running']
    second = processes(worker('r1', received=5, zaqar=False))
    assert health.check(str(tmp_path)).down == ['route r1: zaqar down']

    second.stop()
    metrics.forget_dead_processes(str(tmp_path))
    result = health.check(str(tmp_path))
    assert result.problems == ['route r1: 1/2 workers running']
    assert result.totals['received'] == 7  # counters outlive the process
    assert not [name for name in os.listdir(tmp_path)
                if name.endswith('_%d.db' % second.proc.pid)
                and name.startswith('gauge_live')]


def test_not_yet_connected_and_no_route(tmp_path, processes):
    assert health.check(str(tmp_path)).status() == (
        'no route; forwarded 0 msgs, dead-lettered 0')
    assert not health.check(str(tmp_path)).ok
    processes(master({'r1': 1}))
    processes(lambda m: m.worker_started('r1'))
    assert health.check(str(tmp_path)).down == [
        'route r1: rabbitmq down', 'route r1: zaqar down']


def test_healthz_ok_and_unknown_path(tmp_path, processes):
    processes(master({'r1': 1}))
    processes(worker('r1'))
    app = health.application(str(tmp_path))
    assert request(app, '/healthz')[::2] == ('200 OK', 'ok\n')
    assert request(app, '/')[0] == '404 Not Found'


def test_endpoint_serves_over_http(tmp_path, processes):
    import threading
    import urllib.request
    processes(master({'r1': 1}))
    processes(worker('r1'))
    server = health.make_server('127.0.0.1', 0, str(tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = 'http://127.0.0.1:%d/healthz' % server.server_address[1]
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read() == b'ok\n'
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    metrics.register_opts(conf)
    conf([])
    return conf


def test_setup_empties_a_configured_directory(tmp_path, conf, monkeypatch):
    monkeypatch.setenv(metrics.ENV, 'placeholder')  # restored afterwards
    monkeypatch.setattr(values, 'ValueClass', values.ValueClass)
    directory = tmp_path / 'metrics'
    directory.mkdir()
    (directory / 'counter_1234.db').write_bytes(b'stale')
    (directory / 'keep.txt').write_text('not ours')
    conf.set_override('multiproc_dir', str(directory), group='metrics')
    assert metrics.setup(conf) == str(directory)
    assert os.environ[metrics.ENV] == str(directory)
    assert values.ValueClass._multiprocess
    assert sorted(os.listdir(directory)) == ['keep.txt']


def test_setup_makes_a_private_directory(conf, monkeypatch):
    monkeypatch.setenv(metrics.ENV, 'placeholder')
    monkeypatch.setattr(values, 'ValueClass', values.ValueClass)
    path = metrics.setup(conf)
    try:
        assert os.path.isdir(path) and not os.listdir(path)
        assert 'amqp-zaqar-bridge-metrics-' in path
        assert os.stat(path).st_mode & 0o077 == 0
    finally:
        os.rmdir(path)


def test_null_metrics_has_every_method():
    public = {name for name in vars(metrics.Metrics)
              if not name.startswith('_')}
    for name in public:
        assert getattr(metrics.NULL, name)('r', 1, True) is None


def test_outage_reports_each_failure_and_success():
    seen = []
    outage = backoff.Outage(logging.getLogger('test'), 'r1', 'Zaqar',
                            report=seen.append)
    outage.failed(OSError('down'))
    outage.failed(OSError('still down'))
    outage.ok()
    outage.ok()
    assert seen == [False, False, True, True]
