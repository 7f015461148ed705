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

Each guest and the direct server run in a process of their own, so their
polling threads do not share the caller's interpreter.
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

GOAL = 4.0
PAYLOAD = 'x' * 100


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
    p.add_argument('--bridge-debug', action='store_true',
                   help='run the daemon with debug = true (one log line '
                        'per message, with timestamps; slower) and keep '
                        'the temp dir')
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


def run_guest(args, mp, guest, run_id, zaqar, tenant, client, ctxt,
              direct, daemon):
    """One guest variant: (name, answered_by, summary or why not)."""
    import oslo_messaging
    topic = 'guestagent.%s-%s' % (guest, run_id)
    if guest == 'a':
        name, what = 'bridge (guest a)', 'python-zaqarclient claim loop'
        child = Child(mp, _zaqarclient_guest, zaqar.url, tenant,
                      topic.replace('.', '_'), args.guest_poll)
    else:
        name, what = 'bridge (guest b)', 'RPCServer on zaqar://'
        if importlib.util.find_spec('bridge.drivers.zaqar.driver') is None:
            return name, what, 'bridge/drivers/zaqar/ is missing'
        url = ('zaqar://127.0.0.1:%d/?project_id=%s&poll_interval_min=%s'
               % (zaqar.port, tenant, args.guest_poll))
        child = Child(mp, _serve, url, {'topic': topic,
                                        'server': 'guest-b'})
    try:
        child.start()
    except common.BenchError as exc:
        common.log('%s unavailable: %s' % (name, exc))
        child.stop()
        return name, what, 'unavailable: %s' % exc
    bridge = Caller(client(topic), ctxt, name, args.bridge_debug)
    try:
        common.log('%s: %d calls, alternating with direct calls'
                   % (name, args.calls))
        for _ in range(args.warmup):
            bridge.call(keep=False)
        deadline = time.monotonic() + args.budget / max(1, len(args.guests))
        for _ in range(args.calls):
            direct.call()
            bridge.call()
            if time.monotonic() > deadline:
                common.log('%s: out of time (--budget) after %d calls'
                           % (name, len(bridge.samples)))
                break
        daemon.check_alive(every=0)
    except oslo_messaging.MessagingTimeout as exc:
        raise common.BenchError('%s: call timed out (%s); guest error: %s'
                                % (name, exc, child.error()))
    finally:
        child.stop()
    return name, what, bridge.summary()


def run(args, workdir, dbids):
    import oslo_messaging
    run_id = common.run_id()
    exchange = 'bench-rpc-%s' % run_id
    tenant = 'bench-tenant-%s' % run_id
    direct_topic = 'bench-direct-%s' % run_id
    mp = multiprocessing.get_context('spawn')
    zaqar = common.Zaqar(workdir, dbids, args.gunicorn,
                         pipeline=args.doorbell)
    daemon = None
    transport = None
    rows = []
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
        ctxt = {'project_id': tenant, 'user_id': 'bench'}
        bridged = []
        try:
            server.start()
            for _ in range(args.warmup):
                direct.call(keep=False)
            for guest in args.guests:
                got = run_guest(args, mp, guest, run_id, zaqar, tenant,
                                client, ctxt, direct, daemon)
                bridged.append(got)
                if not isinstance(got[2], str):
                    common.log('%s p50 %.1f ms (direct so far %.1f ms)' % (
                        got[0], got[2]['p50_ms'],
                        direct.summary()['p50_ms']))
            if not args.guests:
                for _ in range(args.calls):
                    direct.call()
        finally:
            server.stop()
        rows.append(('direct', 'RPCServer on rabbit://', direct.summary()))
        rows.extend(bridged)
    finally:
        if transport is not None:
            transport.cleanup()
        if daemon is not None:
            code = daemon.stop()
            if code not in (0, None):
                common.log('the bridge exited with %s; see %s'
                           % (code, daemon.log_path))
        zaqar.stop()
    return zaqar, rows


def report(args, zaqar, rows):
    direct = rows[0][2]
    data = {'benchmark': 'rpc', 'zaqar_server': zaqar.describe(),
            'bridge_source': common.bridge_source(args.bridge_src),
            'settings': {k: v for k, v in vars(args).items()
                         if k not in ('json', 'keep')},
            'rows': [], 'goal_p50_ratio_max': GOAL,
            'machine': common.machine()}
    table_rows = []
    for name, what, got in rows:
        if isinstance(got, str):
            data['rows'].append({'name': name, 'answered_by': what,
                                 'error': got})
            table_rows.append([name, '-', '-', '-', '-', got])
            continue
        ratio = got['p50_ms'] / direct['p50_ms']
        data['rows'].append(dict(got, name=name, answered_by=what,
                                 p50_ratio=ratio))
        table_rows.append([name, got['count'], got['p50_ms'],
                           got['p99_ms'], got['mean_ms'],
                           '-' if name == 'direct' else '%.1f' % ratio])
    bridged = [r for r in data['rows'] if 'p50_ratio' in r
               and r['name'] != 'direct']
    data['goal_met'] = bool(bridged) and all(r['p50_ratio'] <= GOAL
                                             for r in bridged)
    if args.json:
        common.dump_json(data)
        return data
    print('RPC round trip: oslo.messaging RPCClient.call() on rabbit://, '
          'up to %d calls per guest (+%d warm-up), each after a direct '
          'call' % (args.calls, args.warmup))
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
                        'p50 ratio'], table_rows))
    print()
    print('p50 ratio = bridge p50 / direct p50; goal <= %.0f: %s' % (
        GOAL, 'met' if data['goal_met'] else 'NOT met'))
    for name, what, _ in rows:
        print('  %-17s answered by %s' % (name + ':', what))
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
        zaqar, rows = run(args, workdir, dbids)
        report(args, zaqar, rows)
    return 0


if __name__ == '__main__':
    common.run_main(main)
