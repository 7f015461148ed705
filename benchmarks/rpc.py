"""RPC round trip: oslo.messaging ``call()`` direct, and across the bridge.

    python -m benchmarks.rpc [--calls K] [--poll-interval S] [--json] ...

The caller is the same unmodified ``RPCClient.call()`` on ``rabbit://``
in every row; it sends ``echo(seq, payload)`` and times each call.

* **direct**: an ``RPCServer`` (rabbit driver, threading executor, in a
  process of its own) answers over RabbitMQ: the baseline.
* **bridge (guest a)**: the call goes to topic ``guestagent.<id>``; the
  bridge daemon's ``to_zaqar`` route (``tenant = context:project_id``)
  posts it into the tenant's Zaqar queue, a guest using only
  python-zaqarclient claims it (polling every ``--guest-poll`` seconds
  while the queue is empty), answers into ``bridge_replies`` with the reply
  token, and the daemon's ``to_amqp`` route (``exchange =``, the default
  exchange; ``poll_interval = --poll-interval``) hands the answer to the
  caller's reply queue.
* **bridge (guest b)**: the same, answered by an oslo.messaging
  ``RPCServer`` on ``zaqar://`` (bridge/drivers/zaqar/, with
  ``poll_interval_min = --guest-poll``).

* **Zaqar floor**: what the bridged call cannot avoid: post, claim and
  delete on one queue, then the same on a second, sequentially, over one
  keep-alive HTTP session (``requests``), against the same zaqar-server;
  timed between the calls, as the direct ones are.

Goals (issue 16, P3), for guest b: p50 <= 1.5 x (floor + direct p50);
p99 <= 2 x p50; the first call after ``--idle`` seconds (default 300) of
silence <= 2 x the steady p50.  While the guests sit idle, a second
guest b (another topic, the same options) reaches Zaqar through counting
proxies (HTTP: common.CountingProxy; websocket: benchmarks/wscount.py):
its Zaqar requests per second idle are the idle-guest goal (<= 0.1).

zaqar-server runs the notification pipeline and a websocket server
(push); guest b is given its ``websocket_url``.  Each guest and the
direct server run in a process of their own, so their polling threads do
not share the caller's interpreter.
"""

import argparse
import importlib.util
import logging
import multiprocessing
import os
import signal
import sys
import time

from benchmarks import common
from tests.fixtures import servers

GOAL_FLOOR = 1.5        # p50 <= this x (Zaqar floor + direct p50)
GOAL_TAIL = 2.0         # p99 <= this x p50
GOAL_FIRST = 2.0        # first call after idle <= this x steady p50
GOAL_IDLE = 0.1         # an idle guest's Zaqar requests/s
PAYLOAD = 'x' * 100
# Where a zaqar:// guest logs at debug level (--bridge-debug: the temp dir).
GUEST_LOG_ENV = 'BENCH_GUEST_LOG_DIR'


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.rpc',
        description='oslo.messaging call() round trip, direct over '
                    'RabbitMQ and across the bridge, in the same run.')
    p.add_argument('-k', '--calls', type=int, default=200,
                   help='timed calls per row (default 200)')
    p.add_argument('--warmup', type=int, default=10,
                   help='untimed calls before each row (default 10)')
    p.add_argument('--poll-interval', type=float, default=0.05,
                   help='the reply route\'s poll_interval, seconds, min '
                        '0.01 (default 0.05)')
    p.add_argument('--guest-poll', type=float, default=0.05,
                   help='seconds between a guest\'s polls of its empty '
                        'queue: guest a\'s sleep, guest b\'s '
                        'poll_interval_min (default 0.05)')
    p.add_argument('--doorbell', action='store_true',
                   help='the reply route uses the doorbell (Zaqar\'s '
                        'webhook rings the bridge; zaqar-server runs the '
                        'notification pipeline) instead of polling')
    p.add_argument('--batch-timeout', type=float, default=0.02,
                   help='the guests route\'s batch_timeout (default 0.02)')
    p.add_argument('--guests', default='a,b',
                   help='guest variants to run: a (zaqarclient), b '
                        '(zaqar:// RPCServer) (default a,b)')
    p.add_argument('--budget', type=float, default=100,
                   help='seconds the timed calls may take in all; each '
                        'guest stops early (fewer calls, shown in the '
                        'table) when its share runs out (default 100)')
    p.add_argument('--call-timeout', type=float, default=30,
                   help='timeout of each call (default 30)')
    p.add_argument('--idle', type=float, default=300,
                   help='seconds the guests sit idle before the first '
                        'call after idle, while the idle guest\'s requests '
                        'are counted; 0 skips (default 300)')
    p.add_argument('--bridge-debug', action='store_true',
                   help='run the daemon with debug = true (one log line '
                        'per message, with timestamps; slower), log guest '
                        'b\'s driver at debug level into guest-b.log, and '
                        'keep the temp dir')
    common.add_run_options(
        p, 'use the bridge package of this checkout (daemon and guest '
           'driver) instead of the installed one')
    args = p.parse_args(argv)
    args.guests = [g.strip() for g in args.guests.split(',') if g.strip()]
    if set(args.guests) - {'a', 'b'}:
        p.error('--guests takes a, b or a,b')
    if args.calls < 1 or args.poll_interval < 0.01:
        p.error('--calls must be >= 1 and --poll-interval >= 0.01')
    return args


def oslo_conf():
    """oslo.messaging registers its tracing options on cfg.CONF only
    (see /work/shared/pitfalls.md), so every process uses cfg.CONF."""
    from oslo_config import cfg
    if not getattr(oslo_conf, 'done', False):
        cfg.CONF([], project='amqp-zaqar-bridge-benchmark')
        oslo_conf.done = True
    return cfg.CONF


class Echo:
    def echo(self, ctxt, **kwargs):
        return kwargs


# -- the answering side, each in a process of its own

def _serve(url, target_kwargs, ready, stop, errors):
    """An oslo.messaging RPCServer (rabbit:// or zaqar://) until ``stop``."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    logging.getLogger('amqp').setLevel(logging.ERROR)
    log_dir = os.environ.get(GUEST_LOG_ENV)
    if log_dir and url.startswith('zaqar:'):
        # --bridge-debug: the guest's side of each call, with timestamps.
        logging.basicConfig(
            filename=os.path.join(log_dir, '%s.log' % target_kwargs['server']),
            level=logging.DEBUG, format='%(asctime)s.%(msecs)03d %(process)d '
            '%(levelname)s %(name)s %(message)s', datefmt='%Y-%m-%d %H:%M:%S')
    try:
        import oslo_messaging
        transport = oslo_messaging.get_rpc_transport(oslo_conf(), url=url)
        server = oslo_messaging.get_rpc_server(
            transport, oslo_messaging.Target(**target_kwargs), [Echo()],
            executor='threading')
        server.start()
    except BaseException as exc:
        errors.put('%s: %s' % (type(exc).__name__, exc))
        return
    ready.set()
    stop.wait()
    server.stop()
    server.wait()
    transport.cleanup()


def _zaqarclient_guest(url, tenant, queue, poll, ready, stop, errors):
    """Guest a: claims with python-zaqarclient, answers per
    doc/protocol.rst (``reply.queue`` + ``reply_token``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    import uuid
    try:
        client = common.zaqar_client(url, tenant)
        requests = client.queue(queue, auto_create=False)
        replies = {}
        list(requests.claim(ttl=60, grace=60, limit=1))  # warm the client
    except BaseException as exc:
        errors.put('%s: %s' % (type(exc).__name__, exc))
        return
    ready.set()
    while not stop.is_set():
        try:
            claimed = list(requests.claim(ttl=60, grace=60, limit=10))
            for message in claimed:
                body = message.body
                msg = body['message']
                if 'reply' in body:
                    name = body['reply']['queue']
                    if name not in replies:
                        replies[name] = client.queue(name, auto_create=False)
                    replies[name].post([{'ttl': 60, 'body': {
                        'bridge': 1, 'id': uuid.uuid4().hex,
                        'reply_token': body['reply']['token'],
                        'message': {'result': msg['args'], 'failure': None,
                                    'ending': True,
                                    '_msg_id': msg['_msg_id']}}}])
                message.delete()
        except Exception as exc:  # keep answering; the caller times out
            errors.put('%s: %s' % (type(exc).__name__, exc))
            claimed = []
        if not claimed:
            stop.wait(poll)


class Child:
    """A spawned process that answers calls, started and stopped."""

    def __init__(self, mp, target, *args):
        self.ready = mp.Event()
        self.stop_event = mp.Event()
        self.errors = mp.Queue()
        self.proc = mp.Process(target=target, daemon=True, args=args + (
            self.ready, self.stop_event, self.errors))

    def start(self, timeout=60):
        self.proc.start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if not self.errors.empty():
                raise common.BenchError(self.errors.get())
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise common.BenchError('%s did not get ready' % (
                    self.proc.name,))
        return self

    def error(self):
        return None if self.errors.empty() else self.errors.get()

    def stop(self):
        self.stop_event.set()
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# -- the caller

class Caller:
    """Times ``echo`` calls of one RPCClient; checks every answer."""

    def __init__(self, client, ctxt, name, trace=False):
        self.client = client
        self.ctxt = ctxt
        self.name = name
        self.trace = trace
        self.samples = []
        self.seq = 0

    def call(self, keep=True):
        self.seq += 1
        t0 = time.perf_counter()
        wall = time.time()
        result = self.client.call(self.ctxt, 'echo', seq=self.seq,
                                  payload=PAYLOAD)
        elapsed = time.perf_counter() - t0
        if self.trace:
            common.log('%s call %d at %s.%03d took %.1f ms' % (
                self.name, self.seq,
                time.strftime('%H:%M:%S', time.localtime(wall)),
                int(wall * 1000) % 1000, elapsed * 1000))
        if result != {'seq': self.seq, 'payload': PAYLOAD}:
            raise common.BenchError('%s call %d: wrong answer %r'
                                    % (self.name, self.seq, result))
        if keep:
            self.samples.append(elapsed)

    def summary(self):
        return common.latency_summary(self.samples)


def bridge_routes(args, exchange, tenant):
    guests = ['direction = to_zaqar', 'exchange = %s' % exchange,
              'binding_keys = guestagent.*', 'tenant = context:project_id',
              'batch_timeout = %s' % args.batch_timeout]
    replies = ['direction = to_amqp', 'exchange =',
               'zaqar_queue = bridge_replies', 'tenants = %s' % tenant,
               'poll_interval = %s' % args.poll_interval]
    if args.doorbell:
        replies.append('doorbell_port = %d' % servers.free_port())
    return [('guests', '\n'.join(guests)), ('replies', '\n'.join(replies))]


class Floor:
    """The six Zaqar requests a bridged call cannot do without, timed.

    Post, claim (limit 1) and delete on one queue, then the same on a
    second, sequentially, over one keep-alive ``requests`` session.
    """

    def __init__(self, url, project):
        import requests
        import uuid
        self.url = url
        self.session = requests.Session()
        self.session.headers.update({'Client-ID': str(uuid.uuid4()),
                                     'X-Project-ID': project})
        self.queues = ['floor_a', 'floor_b']
        self.samples = []

    def _one(self, queue):
        base = '%s/v2/queues/%s' % (self.url, queue)
        r = self.session.post(base + '/messages', json={'messages': [
            {'ttl': 60, 'body': {'payload': PAYLOAD}}]})
        r.raise_for_status()
        r = self.session.post(base + '/claims?limit=1',
                              json={'ttl': 60, 'grace': 60})
        r.raise_for_status()
        message = r.json()['messages'][0]
        r = self.session.delete(self.url + message['href'])
        r.raise_for_status()

    def sample(self, keep=True):
        t0 = time.perf_counter()
        for queue in self.queues:
            self._one(queue)
        if keep:
            self.samples.append(time.perf_counter() - t0)

    def summary(self):
        return common.latency_summary(self.samples)


def guest_b_url(port, tenant, args, ws_url):
    url = ('zaqar://127.0.0.1:%d/?project_id=%s&poll_interval_min=%s'
           % (port, tenant, args.guest_poll))
    if ws_url:
        url += '&websocket_url=%s' % ws_url
    return url


def start_guest(args, mp, guest, topic, zaqar, tenant):
    """(name, what, started Child) or (name, what, why not)."""
    if guest == 'a':
        name, what = 'bridge (guest a)', 'python-zaqarclient claim loop'
        child = Child(mp, _zaqarclient_guest, zaqar.url, tenant,
                      topic.replace('.', '_'), args.guest_poll)
    else:
        name, what = 'bridge (guest b)', 'RPCServer on zaqar://'
        if importlib.util.find_spec('bridge.drivers.zaqar.driver') is None:
            return name, what, 'bridge/drivers/zaqar/ is missing'
        child = Child(mp, _serve, guest_b_url(
            zaqar.port, tenant, args, getattr(zaqar, 'ws_url', None)),
            {'topic': topic, 'server': 'guest-b'})
    try:
        child.start()
    except common.BenchError as exc:
        common.log('%s unavailable: %s' % (name, exc))
        child.stop()
        return name, what, 'unavailable: %s' % exc
    return name, what, child


class IdleGuest:
    """A guest b of its own topic whose Zaqar requests are counted."""

    def __init__(self, args, mp, zaqar, tenant, topic):
        from benchmarks import wscount
        self.http = common.CountingProxy(zaqar.port).start()
        self.ws = None
        ws_port = getattr(zaqar, 'ws_port', None)
        if ws_port:
            self.ws = wscount.WebsocketCountingProxy(ws_port).start()
        self.child = Child(mp, _serve, guest_b_url(
            self.http.port, tenant, args, self.ws and self.ws.url),
            {'topic': topic, 'server': 'idle-guest'})
        self.child.start()

    def requests(self):
        """(HTTP requests, websocket requests) so far."""
        http = sum(self.http.counts()['counts'].values())
        return http, self.ws.requests() if self.ws else 0

    def stop(self):
        self.child.stop()
        self.http.stop()
        if self.ws is not None:
            self.ws.stop()


def steady(args, name, bridge, direct, floor, daemon, child):
    """The timed calls, each after a direct call and a floor sample."""
    import oslo_messaging
    try:
        common.log('%s: %d calls, alternating with direct calls and Zaqar '
                   'floor samples' % (name, args.calls))
        for _ in range(args.warmup):
            bridge.call(keep=False)
        deadline = time.monotonic() + args.budget / max(1, len(args.guests))
        for _ in range(args.calls):
            direct.call()
            floor.sample()
            bridge.call()
            if time.monotonic() > deadline:
                common.log('%s: out of time (--budget) after %d calls'
                           % (name, len(bridge.samples)))
                break
        daemon.check_alive(every=0)
    except oslo_messaging.MessagingTimeout as exc:
        raise common.BenchError('%s: call timed out (%s); guest error: %s'
                                % (name, exc, child.error()))


def idle_then_call(args, mp, zaqar, tenant, run_id, bridge, child):
    """Sit idle ``--idle`` seconds, counting an idle guest's requests;
    then time one call: (first call seconds, requests/s, detail)."""
    import oslo_messaging
    idle = IdleGuest(args, mp, zaqar, tenant,
                     'guestagent.idle-%s' % run_id)
    try:
        # Its start-up (subscriptions, the first polls) is not idling.
        time.sleep(min(10.0, args.idle / 10))
        http0, ws0 = idle.requests()
        common.log('idle for %.0f s (counting an idle guest\'s requests)'
                   % args.idle)
        t0 = time.monotonic()
        time.sleep(args.idle)
        http1, ws1 = idle.requests()
        seconds = time.monotonic() - t0
    finally:
        idle.stop()
    first = len(bridge.samples)
    try:
        bridge.call()
    except oslo_messaging.MessagingTimeout as exc:
        raise common.BenchError('first call after idle timed out (%s); '
                                'guest error: %s' % (exc, child.error()))
    first_s = bridge.samples.pop(first)
    detail = {'idle_seconds': seconds, 'http_requests': http1 - http0,
              'websocket_requests': ws1 - ws0,
              'websocket': idle.ws is not None}
    return first_s, (http1 - http0 + ws1 - ws0) / seconds, detail


def run(args, workdir, dbids):
    import oslo_messaging
    run_id = common.run_id()
    exchange = 'bench-rpc-%s' % run_id
    tenant = 'bench-tenant-%s' % run_id
    direct_topic = 'bench-direct-%s' % run_id
    mp = multiprocessing.get_context('spawn')
    zaqar = common.Zaqar(workdir, dbids, args.gunicorn, pipeline=True,
                         websocket=True)
    daemon = None
    transport = None
    out = {'rows': [], 'idle': None}
    try:
        common.log('starting %s (redis dbs %d,%d)'
                   % (zaqar.describe(), *dbids))
        zaqar.start()
        common.log('starting the bridge')
        daemon = common.Daemon(workdir, zaqar.url,
                               bridge_routes(args, exchange, tenant),
                               run_id, source=args.bridge_src,
                               extra='[DEFAULT]\ndebug = true\n'
                               if args.bridge_debug else '')
        daemon.exchanges.append(exchange)
        daemon.queues += [direct_topic, '%s.s1' % direct_topic]
        daemon.start({'Route guests: consuming queue': 1,
                      'Route replies: connected to RabbitMQ': 1})
        transport = oslo_messaging.get_rpc_transport(
            oslo_conf(), url=common.RABBIT_URL)

        def client(topic):
            return oslo_messaging.get_rpc_client(
                transport, oslo_messaging.Target(exchange=exchange,
                                                 topic=topic),
                timeout=args.call_timeout)

        # The direct server answers all along; its calls alternate with
        # each guest's, so both see the same background load.
        server = Child(mp, _serve, common.RABBIT_URL, {
            'exchange': exchange, 'topic': direct_topic, 'server': 's1'})
        direct = Caller(client(direct_topic), {}, 'direct',
                        args.bridge_debug)
        floor = Floor(zaqar.url, tenant)
        ctxt = {'project_id': tenant, 'user_id': 'bench'}
        bridged = []
        try:
            server.start()
            for _ in range(args.warmup):
                direct.call(keep=False)
                floor.sample(keep=False)
            for guest in args.guests:
                topic = 'guestagent.%s-%s' % (guest, run_id)
                name, what, child = start_guest(args, mp, guest, topic,
                                                zaqar, tenant)
                if isinstance(child, str):
                    bridged.append((name, what, child))
                    continue
                bridge = Caller(client(topic), ctxt, name, args.bridge_debug)
                try:
                    steady(args, name, bridge, direct, floor, daemon, child)
                    if guest == 'b' and args.idle:
                        out['idle'] = idle_then_call(
                            args, mp, zaqar, tenant, run_id, bridge, child)
                finally:
                    child.stop()
                bridged.append((name, what, bridge.summary()))
                common.log('%s p50 %.1f ms (direct %.1f ms, floor %.1f ms '
                           'so far)' % (name, bridged[-1][2]['p50_ms'],
                                        direct.summary()['p50_ms'],
                                        floor.summary()['p50_ms']))
            if not args.guests:
                for _ in range(args.calls):
                    direct.call()
                    floor.sample()
        finally:
            server.stop()
        out['rows'] = [('direct', 'RPCServer on rabbit://',
                        direct.summary()),
                       ('Zaqar floor', 'post, claim, delete x 2 queues, '
                        'one keep-alive session', floor.summary())]
        out['rows'].extend(bridged)
    finally:
        if transport is not None:
            transport.cleanup()
        if daemon is not None:
            code = daemon.stop()
            if code not in (0, None):
                common.log('the bridge exited with %s; see %s'
                           % (code, daemon.log_path))
        zaqar.stop()
    return zaqar, out


def goals(rows, idle):
    """The P3 and idle-guest goals: [{name, bridge, baseline, ratio, goal,
    met}] (benchmarks.all prints them as they are)."""
    by = {name: got for name, _, got in rows}
    base = by['direct']['p50_ms'] + by['Zaqar floor']['p50_ms']
    out = []

    def goal(name, value, baseline, limit, reference=False):
        ratio = None
        if isinstance(value, (int, float)) and baseline:
            ratio = value / baseline
        compared = ratio if baseline else value
        out.append({'name': name, 'bridge': value, 'baseline': baseline,
                    'ratio': ratio,
                    'goal': '- (reference)' if reference
                    else '<= %g' % limit,
                    'met': None if reference else
                    isinstance(compared, (int, float)) and compared <= limit})
    for guest, label in (('bridge (guest b)', 'zaqar:// guest'),
                         ('bridge (guest a)', 'zaqarclient guest')):
        got = by.get(guest)
        if got is None:
            continue
        reference = guest.endswith('(guest a)')
        if isinstance(got, str):
            goal('rpc call p50 ms, %s (bridge / Zaqar floor + direct)'
                 % label, got, base, GOAL_FLOOR, reference=reference)
            continue
        goal('rpc call p50 ms, %s (bridge / Zaqar floor + direct)' % label,
             got['p50_ms'], base, GOAL_FLOOR, reference=reference)
        if reference:
            continue
        goal('rpc call p99 ms, %s (p99 / p50)' % label, got['p99_ms'],
             got['p50_ms'], GOAL_TAIL)
        if idle is not None:
            first_s, rate, detail = idle
            goal('rpc first call after %.0f s idle, ms (first / p50)'
                 % detail['idle_seconds'], first_s * 1000, got['p50_ms'],
                 GOAL_FIRST)
            goal('idle zaqar:// guest, Zaqar req/s (HTTP + websocket%s)'
                 % ('' if detail['websocket'] else ': none'), rate, None,
                 GOAL_IDLE)
    return out


def report(args, zaqar, out):
    rows = out['rows']
    data = {'benchmark': 'rpc', 'zaqar_server': zaqar.describe(),
            'bridge_source': common.bridge_source(args.bridge_src),
            'settings': {k: v for k, v in vars(args).items()
                         if k not in ('json', 'keep')},
            'rows': [], 'machine': common.machine()}
    table_rows = []
    base = rows[0][2]['p50_ms'] + rows[1][2]['p50_ms']
    for name, what, got in rows:
        if isinstance(got, str):
            data['rows'].append({'name': name, 'answered_by': what,
                                 'error': got})
            table_rows.append([name, '-', '-', '-', '-', got])
            continue
        data['rows'].append(dict(got, name=name, answered_by=what))
        table_rows.append([name, got['count'], got['p50_ms'],
                           got['p99_ms'], got['mean_ms'],
                           '%.2f' % (got['p50_ms'] / base)
                           if name.startswith('bridge') else '-'])
    data['goals'] = goals(rows, out['idle'])
    if out['idle'] is not None:
        data['idle'] = dict(out['idle'][2], first_call_ms=out['idle'][0]
                            * 1000, requests_per_s=out['idle'][1])
    data['goal_met'] = all(g['met'] for g in data['goals']
                           if g['met'] is not None)
    if args.json:
        common.dump_json(data)
        return data
    print('RPC round trip: oslo.messaging RPCClient.call() on rabbit://, '
          'up to %d calls per guest (+%d warm-up), each after a direct '
          'call and a Zaqar floor sample' % (args.calls, args.warmup))
    print('Zaqar: %s; %d CPUs, load %s'
          % (zaqar.describe(), os.cpu_count(),
             data['machine']['load_1min_at_end']))
    print('Reply route: %s; guest poll %ss; guests route batch_timeout %ss'
          % ('doorbell' if args.doorbell else
             'poll_interval %ss' % args.poll_interval, args.guest_poll,
             args.batch_timeout))
    print('Bridge: %s' % data['bridge_source'])
    print()
    print(common.table(['', 'calls', 'p50 ms', 'p99 ms', 'mean ms',
                        'p50 / (floor + direct)'], table_rows))
    print()
    print(common.table(['goal', 'bridge', 'baseline', 'ratio', 'goal',
                        'met?'], [[g['name'], common.fmt(g['bridge']),
                                   common.fmt(g['baseline']),
                                   common.fmt(g['ratio'], 2), g['goal'],
                                   '-' if g['met'] is None else
                                   'met' if g['met'] else 'NOT met']
                                  for g in data['goals']]))
    if out['idle'] is not None:
        d = out['idle'][2]
        print('idle guest: %d HTTP + %d websocket requests in %.0f s'
              % (d['http_requests'], d['websocket_requests'],
                 d['idle_seconds']))
    for name, what, _ in rows:
        print('  %-17s %s' % (name + ':', what))
    return data


def main(argv=None):
    args = parse_args(argv)
    # py-amqp warns about frames that arrive while the client's transport
    # closes its channels at the end; nothing to do with the figures.
    logging.getLogger('amqp').setLevel(logging.ERROR)
    if args.bridge_src:
        # Spawned guests inherit sys.path: the driver comes from there too.
        sys.path.insert(0, os.path.abspath(args.bridge_src))
    with common.workspace('bench-rpc-', args.keep or args.bridge_debug) \
            as workdir, \
            common.redis_dbs() as dbids:
        if args.bridge_debug:
            # Spawned guests inherit the environment.
            os.environ[GUEST_LOG_ENV] = str(workdir)
        zaqar, out = run(args, workdir, dbids)
        report(args, zaqar, out)
    return 0


if __name__ == '__main__':
    common.run_main(main)
