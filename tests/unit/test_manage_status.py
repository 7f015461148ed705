"""amqp-zaqar-bridge-manage status: reading the daemon's metrics."""

from oslo_config import cfg
import prometheus_client as prom
import pytest

from bridge import admin
from bridge.admin import status
from bridge import metrics

SAMPLE = '''\
# HELP bridge_messages_received_total Messages taken from the source side.
# TYPE bridge_messages_received_total counter
bridge_messages_received_total{route="guests"} 12.0
bridge_messages_received_total{route="conductor"} 3.0
# HELP bridge_messages_received_created Created.
# TYPE bridge_messages_received_created gauge
bridge_messages_received_created{route="guests"} 1.7e+09
# TYPE bridge_messages_forwarded_total counter
bridge_messages_forwarded_total{route="guests"} 10.0
bridge_messages_forwarded_total{route="conductor"} 2.0
# TYPE bridge_messages_retried_total counter
bridge_messages_retried_total{route="guests"} 4.0
# TYPE bridge_messages_dead_lettered_total counter
bridge_messages_dead_lettered_total{route="guests"} 2.0
bridge_messages_dead_lettered_total{route="conductor"} 1.0
# TYPE bridge_forward_latency_seconds histogram
bridge_forward_latency_seconds_bucket{le="0.005",route="guests"} 9.0
bridge_forward_latency_seconds_bucket{le="+Inf",route="guests"} 10.0
bridge_forward_latency_seconds_count{route="guests"} 10.0
bridge_forward_latency_seconds_sum{route="guests"} 0.04
# TYPE bridge_in_flight gauge
bridge_in_flight{route="guests"} 1.5
# TYPE bridge_connection_up gauge
bridge_connection_up{route="guests",side="rabbitmq"} 1.0
bridge_connection_up{route="guests",side="zaqar"} 0.0
bridge_connection_up{route="conductor",side="rabbitmq"} 1.0
bridge_connection_up{route="conductor",side="zaqar"} 1.0
# TYPE bridge_workers gauge
bridge_workers{route="guests"} 2.0
bridge_workers{route="conductor"} 1.0
# TYPE bridge_workers_configured gauge
bridge_workers_configured{route="guests"} 2.0
bridge_workers_configured{route="conductor"} 1.0
# TYPE process_open_fds gauge
process_open_fds 12.0
'''


def test_parse_sample_exposition():
    rows = status.parse(SAMPLE, ['conductor', 'guests', 'idle'])
    assert rows == [
        {'route': 'conductor', 'received': 3, 'forwarded': 2, 'retried': 0,
         'dead_lettered': 1, 'in_flight': 0, 'workers': '1/1',
         'connections': 'rabbitmq up, zaqar up'},
        {'route': 'guests', 'received': 12, 'forwarded': 10, 'retried': 4,
         'dead_lettered': 2, 'in_flight': 1.5, 'workers': '2/2',
         'connections': 'rabbitmq up, zaqar down'},
        {'route': 'idle', 'received': 0, 'forwarded': 0, 'retried': 0,
         'dead_lettered': 0, 'in_flight': 0, 'workers': '0/0',
         'connections': '-'},
    ]


def test_routes_only_in_metrics_come_after_configured_ones():
    rows = status.parse(SAMPLE, ['guests'])
    assert [r['route'] for r in rows] == ['guests', 'conductor']


def test_parse_what_prometheus_client_writes():
    registry = prom.CollectorRegistry()
    received = prom.Counter('bridge_messages_received', 'x', ['route'],
                            registry=registry)
    received.labels('r1').inc(5)
    up = prom.Gauge('bridge_connection_up', 'x', ['route', 'side'],
                    registry=registry)
    up.labels('r1', 'rabbitmq').set(1)
    up.labels('r1', 'zaqar').set(0)
    (row,) = status.parse(prom.generate_latest(registry).decode())
    assert row['received'] == 5
    assert row['connections'] == 'rabbitmq up, zaqar down'


def test_connections_of_several_samples():
    text = ('bridge_connection_up{route="r",side="zaqar",pid="1"} 1\n'
            'bridge_connection_up{route="r",side="zaqar",pid="2"} 0\n')
    assert status.parse(text)[0]['connections'] == 'zaqar 1/2 up'


def test_not_prometheus_text():
    with pytest.raises(admin.Failure, match='not Prometheus text'):
        status.parse('this is { not metrics\n')


def conf_with_metrics(**values):
    conf = cfg.ConfigOpts()
    metrics.register_opts(conf)
    conf([])
    for name, value in values.items():
        conf.set_override(name, value, group='metrics')
    return conf


def test_metrics_url_without_a_metrics_group():
    conf = cfg.ConfigOpts()
    conf([])
    assert status.metrics_url(conf) == 'http://127.0.0.1:9465/metrics'


@pytest.mark.parametrize('host, url', [
    ('127.0.0.1', 'http://127.0.0.1:9999/metrics'),
    ('0.0.0.0', 'http://127.0.0.1:9999/metrics'),
    ('::', 'http://[::1]:9999/metrics'),
    ('fd00::5', 'http://[fd00::5]:9999/metrics'),
    ('ctl1.example.org', 'http://ctl1.example.org:9999/metrics'),
])
def test_metrics_url_from_config(host, url):
    conf = conf_with_metrics(bind_host=host, port=9999)
    assert status.metrics_url(conf) == url


def test_metrics_disabled():
    conf = conf_with_metrics(enabled=False)
    with pytest.raises(admin.Failure, match=r'\[metrics\] enabled'):
        status.metrics_url(conf)


def test_fetch_unreachable_names_the_url():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = 'http://127.0.0.1:%d/metrics' % port
    with pytest.raises(admin.Failure) as info:
        status.fetch(url, timeout=2)
    assert str(info.value).startswith(
        'the metrics endpoint %s is not reachable' % url)
