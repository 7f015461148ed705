"""``status``: how messages flow, per route, from the daemon's metrics.

The daemon serves Prometheus metrics (``[metrics] bind_host`` and
``port``, path ``/metrics``); this reads them once and prints one row per
route: messages received, forwarded, retried and dead-lettered since the
daemon started, messages in flight, live workers of those configured,
and whether each side is connected (bridge/metrics.py names them).
"""

import collections
from urllib import error as url_error
from urllib import request as url_request

from oslo_config import cfg
from prometheus_client import parser as prom_parser

from bridge.admin import cli
from bridge.admin import Failure
from bridge.admin import output

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 9465
TIMEOUT = 5.0

# sample name without "_total" -> column
COUNTERS = collections.OrderedDict([
    ('bridge_messages_received', 'received'),
    ('bridge_messages_forwarded', 'forwarded'),
    ('bridge_messages_retried', 'retried'),
    ('bridge_messages_dead_lettered', 'dead_lettered'),
])
GAUGES = {'bridge_in_flight': 'in_flight', 'bridge_workers': 'workers',
          'bridge_workers_configured': 'configured'}
CONNECTION_UP = 'bridge_connection_up'
# A daemon listening on every address is reached on loopback.
ANY_ADDRESS = {'': DEFAULT_HOST, '0.0.0.0': DEFAULT_HOST, '*': DEFAULT_HOST,
               '::': '::1'}


def metrics_url(conf):
    """The daemon's /metrics, from ``[metrics]`` (defaults if absent)."""
    try:
        enabled = conf.metrics.enabled
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        enabled = True
    if not enabled:
        raise Failure('the daemon serves no metrics: [metrics] enabled is '
                      'false (set it to true, or give --url)')
    try:
        host = conf.metrics.bind_host
        port = conf.metrics.port
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        host, port = DEFAULT_HOST, DEFAULT_PORT
    host = ANY_ADDRESS.get(host or '', host)
    if ':' in host:
        host = '[%s]' % host
    return 'http://%s:%d/metrics' % (host, port)


def fetch(url, timeout=TIMEOUT):
    # Straight to the daemon: an http_proxy meant for the outside world
    # must not stand between a controller and its own metrics.
    opener = url_request.build_opener(url_request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.read().decode('utf-8')
    except url_error.HTTPError as exc:
        raise Failure('the metrics endpoint %s answered %s %s'
                      % (url, exc.code, exc.reason))
    except (url_error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise Failure('the metrics endpoint %s is not reachable (is the '
                      'daemon running?): %s' % (url, reason))


def _number(value):
    return int(value) if float(value).is_integer() else round(value, 3)


def _connections(sides):
    if not sides:
        return '-'
    words = []
    for side, values in sorted(sides.items()):
        up = sum(1 for v in values if v >= 1)
        state = ('up' if up == len(values) else 'down' if not up
                 else '%d/%d up' % (up, len(values)))
        words.append('%s %s' % (side, state))
    return ', '.join(words)


def parse(text, routes=()):
    """Rows, one per route: configured routes first, then any other."""
    counts = collections.defaultdict(lambda: collections.defaultdict(float))
    sides = collections.defaultdict(lambda: collections.defaultdict(list))
    try:
        for family in prom_parser.text_string_to_metric_families(text):
            for sample in family.samples:
                route = sample.labels.get('route')
                if route is None:
                    continue
                name = sample.name
                if name.endswith('_total'):
                    name = name[:-len('_total')]
                if name in COUNTERS:
                    counts[route][COUNTERS[name]] += sample.value
                elif name in GAUGES:
                    counts[route][GAUGES[name]] += sample.value
                elif name == CONNECTION_UP:
                    side = sample.labels.get('side', '?')
                    sides[route][side].append(sample.value)
    except ValueError as exc:
        raise Failure('not Prometheus text metrics: %s' % exc)
    names = list(routes)
    names += sorted((set(counts) | set(sides)) - set(names))
    rows = []
    for route in names:
        row = {'route': route}
        for column in COUNTERS.values():
            row[column] = _number(counts[route][column])
        row['in_flight'] = _number(counts[route]['in_flight'])
        row['workers'] = '%s/%s' % (_number(counts[route]['workers']),
                                    _number(counts[route]['configured']))
        row['connections'] = _connections(sides[route])
        rows.append(row)
    return rows


def status(conf, routes):
    url = conf.command.url or metrics_url(conf)
    text = fetch(url)
    try:
        rows = parse(text, [route.name for route in routes])
    except Failure as exc:
        raise Failure('the metrics endpoint %s: %s' % (url, exc))
    output.show(conf, rows, 'Flow per route since the daemon started '
                '(%s):' % url)
    return 0


def add_parser(subparsers):
    parser = cli.add_parser(
        subparsers, 'status',
        help='Messages received, forwarded, retried and dead-lettered per '
             'route, from the running daemon\'s metrics.',
        description='Read the daemon\'s Prometheus metrics ([metrics] '
                    'bind_host and port, path /metrics) and print one row '
                    'per route.')
    parser.set_defaults(func=status)
    parser.add_argument('--url', help='Read the metrics from this URL '
                                      'instead (another controller\'s '
                                      'daemon).')
    cli.add_format_option(parser)
    return parser
