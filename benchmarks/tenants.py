"""Thousands of tenants: what a to_amqp route costs while nothing happens.

    python -m benchmarks.tenants [--tenants 1000] [--active 10] [--json] ...

One ``to_amqp`` route drains the queue ``bench_reports`` of 1,000 projects
(t0000..t0999) with ``workers = 2``; 10 of the tenants are active.  Two
configurations, one after the other in the same run, against one
zaqar-server (fresh Redis databases, the 1,000 queues created before the
daemon starts, the notification pipeline on; polling runs first, before
any subscription exists):

* **polling**: no doorbell; ``poll_interval`` (route default 1.0 s);
* **doorbell**: ``doorbell_port`` = a free port, ``sweep_interval`` (route
  default 1.0 s).

The daemon's ``[zaqar] url`` points at a counting reverse proxy
(common.CountingProxy) in front of zaqar-server; the benchmark's own
requests (creating queues, the guests' posts) go straight to Zaqar and are
not counted.  Measured per configuration:

* start-up: seconds from launching the daemon until its first pass is done
  (every queue claimed once, and subscribed with the doorbell), and the
  requests that took;
* idle requests/s per worker: every request of the route's workers to
  Zaqar during ``--idle-seconds`` after ``--settle`` seconds more, all
  queues empty; a tenant's requests are counted for the worker whose shard
  it is in (bridge.flows.reverse.worker_of);
* latency: ``--active`` tenants each post ``--rate`` messages/s for
  ``--active-seconds`` (python-zaqarclient as the tenant, one thread per
  tenant in a process of its own, ~200-byte bodies carrying the time of
  the post); a kombu consumer bound to the route's exchange and routing
  key takes the time of delivery.  p50/p99 of post -> delivery;
* RSS: VmRSS of each worker process of the route after the active phase
  (/proc/<pid>/status; VmHWM, the peak, goes to JSON).

Everything is deleted at the end: the daemon's and the consumer's AMQP
names, and the Redis databases are emptied again.
"""

import argparse
import json
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import uuid

from benchmarks import common
from bridge.flows import reverse
from tests.fixtures import servers

ROUTE = 'tenants'
QUEUE = 'bench_reports'
METHOD = 'bench_report'
GOAL_IDLE = 1.0      # requests/s per worker while idle, at most
GOAL_P99_MS = 1000.0
GOAL_KIB_PER_QUEUE = 2.0   # worker memory per tenant queue
GOAL_STARTUP_S = 20.0
GOAL_LOST_RING_S = 300.0
CONFIGS = ('polling', 'doorbell')
# A queue was looked at: claimed from, or its stats read.
LOOKS = ('POST /queues/{q}/claims', 'GET /queues/{q}/stats')
# A queue was subscribed: a create, or its subscriptions listed.
SUBSCRIBES = ('POST /queues/{q}/subscriptions',
              'GET /queues/{q}/subscriptions')
# What a worker logs when its start-up pass is done (bridge/flows/recovery.py).
PASS_DONE = b'start-up pass done'
# Tenants of the small route whose RSS is the base of the per-queue cost.
BASE_TENANTS = 10
# Sequence numbers of the messages whose ring the benchmark makes lost.
LOST_SEQ = 1000000
# Seconds the bridge stays down after those posts.
RESTART_AFTER = 40


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.tenants',
        description='A to_amqp route over 1,000 tenant queues: idle '
                    'requests to Zaqar, latency and memory, polling '
                    'against the doorbell, in the same run.')
    p.add_argument('--tenants', type=int, default=1000,
                   help='tenant projects t0000.. (default 1000)')
    p.add_argument('--active', type=int, default=10,
                   help='tenants that post during the active phase '
                        '(default 10)')
    p.add_argument('--rate', type=float, default=2.0,
                   help='messages per second each active tenant posts '
                        '(default %(default)s)')
    p.add_argument('--active-seconds', type=float, default=20.0,
                   help='seconds the active tenants post (default 20)')
    p.add_argument('--idle-seconds', type=float, default=60.0,
                   help='the idle window, seconds (default %(default)s)')
    p.add_argument('--settle', type=float, default=3.0,
                   help='seconds between the end of the first pass and the '
                        'idle window (default %(default)s)')
    p.add_argument('--drain-timeout', type=float, default=10.0,
                   help='seconds to wait, after the last post, for the '
                        'last deliveries; messages still missing then are '
                        'reported as undelivered (default %(default)s)')
    p.add_argument('-w', '--workers', type=int, default=2,
                   help='the route\'s workers (default 2)')
    p.add_argument('--poll-interval', type=float,
                   help='the polling route\'s poll_interval (default: the '
                        'route default, 1.0)')
    p.add_argument('--sweep-interval', type=float,
                   help='the doorbell route\'s sweep_interval (default: '
                        'the route default, 1.0)')
    p.add_argument('--configs', default=','.join(CONFIGS),
                   help='configurations to run, in order (default '
                        'polling,doorbell)')
    p.add_argument('--body-size', type=int, default=200,
                   help='bytes of each posted Zaqar body (default 200)')
    p.add_argument('--startup-timeout', type=float, default=300.0,
                   help='seconds the first pass may take before the run '
                        'fails (default %(default)s)')
    p.add_argument('--lost', type=int, default=6,
                   help='doorbell: idle tenants that post one message each '
                        'whose ring is lost, once while the doorbell is '
                        'unreachable and once while the bridge is down; '
                        '0: skip both (default %(default)s)')
    p.add_argument('--lost-timeout', type=float, default=330.0,
                   help='seconds to wait for the messages whose ring was '
                        'lost (default %(default)s)')
    common.add_run_options(
        p, 'run the daemon with the bridge package of this checkout '
           'instead of the installed one')
    args = p.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(',') if c.strip()]
    if not args.configs or set(args.configs) - set(CONFIGS):
        p.error('--configs takes polling, doorbell or both')
    if not 1 <= args.active <= args.tenants or args.workers < 1:
        p.error('need 1 <= --active <= --tenants and --workers >= 1')
    if min(args.rate, args.active_seconds, args.idle_seconds) <= 0:
        p.error('--rate, --active-seconds and --idle-seconds must be > 0')
    return args


def tenant_names(n):
    return ['t%04d' % i for i in range(n)]


def active_tenants(tenants, n):
    """``n`` tenants spread over the list (and so over the shards)."""
    step = len(tenants) / float(n)
    return [tenants[int(i * step)] for i in range(n)]


worker_of = reverse.worker_of


# -- the guests: one thread per active tenant, in a process of its own

def _guest_body(tenant, seq, ts, pad):
    return {'bridge': 1, 'id': uuid.uuid4().hex, 'message': {
        'method': METHOD, 'version': '1.0', '_unique_id': uuid.uuid4().hex,
        '_context_project_id': tenant, '_context_user_id': 'guest',
        'args': {'tenant': tenant, 'seq': seq, 'ts': ts, 'pad': pad}}}


def _pad_for(body_size):
    probe = _guest_body('t0000', 0, time.time(), '')
    return 'x' * max(0, body_size - len(json.dumps(probe)))


def _posters(url, tenants, rate, seconds, body_size, go, results):
    """Post ``rate`` messages/s per tenant for ``seconds``, each stamped
    with the wall-clock time just before its POST."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    pad = _pad_for(body_size)
    count = int(round(rate * seconds))
    queues = {}
    try:
        for tenant in tenants:
            queue = common.zaqar_client(url, tenant).queue(
                QUEUE, auto_create=False)
            queue.stats  # noqa: B018 - the client's first request, a GET
            queues[tenant] = queue
    except BaseException as exc:
        results.put(('error', '%s: %s' % (type(exc).__name__, exc)))
        return
    results.put(('ready', None))
    go.wait()
    start = time.monotonic()

    def post(k, tenant):
        queue = queues[tenant]
        # Tenants take turns within each 1/rate period.
        offset = k / float(rate * len(tenants))
        posted, errors, failed, post_ms = 0, [], [], []
        for seq in range(count):
            delay = start + offset + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ts = time.time()
            try:
                queue.post([{'ttl': 600, 'body': _guest_body(
                    tenant, seq, ts, pad)}])
            except Exception as exc:
                errors.append('%s: %s' % (type(exc).__name__, exc))
                failed.append(seq)
                continue
            post_ms.append((time.time() - ts) * 1000.0)
            posted += 1
        results.put(('done', (tenant, posted, errors[:3], failed,
                              post_ms)))

    threads = [threading.Thread(target=post, args=(k, t))
               for k, t in enumerate(tenants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Guests:
    def __init__(self, mp, url, tenants, args):
        self.tenants = tenants
        self.go = mp.Event()
        self.results = mp.Queue()
        self.proc = mp.Process(target=_posters, daemon=True, args=(
            url, tenants, args.rate, args.active_seconds, args.body_size,
            self.go, self.results))

    def start(self, timeout=60):
        self.proc.start()
        kind, info = self.results.get(timeout=timeout)
        if kind != 'ready':
            raise common.BenchError('guests: %s' % info)
        return self

    def run(self, timeout, on_wait):
        """Post; return {tenant: (posted, first errors, seqs that failed,
        ms each POST took)}."""
        import queue as queue_mod
        self.go.set()
        done = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(self.tenants):
            try:
                kind, info = self.results.get(timeout=0.5)
            except queue_mod.Empty:
                on_wait()
                if time.monotonic() > deadline or not self.proc.is_alive():
                    raise common.BenchError('the guests did not finish '
                                            'posting')
                continue
            if kind == 'done':
                done[info[0]] = info[1:]
            elif kind == 'error':
                raise common.BenchError('guests: %s' % info)
        return done

    def stop(self):
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# -- the control plane: a kombu consumer on the route's exchange

class Sink:
    """Takes the time each bridged message arrives on the control plane."""

    def __init__(self, exchange, routing_key):
        import kombu
        self.conn = kombu.Connection(servers.kombu_url(common.RABBIT_URL))
        self.exchange = kombu.Exchange(exchange, type='topic',
                                       durable=False, auto_delete=False)
        self.queue = kombu.Queue('bench-sink-%s' % uuid.uuid4().hex[:10],
                                 self.exchange, routing_key=routing_key,
                                 exclusive=True, auto_delete=True)
        self.arrived = {}   # (tenant, seq) -> latency seconds
        self.duplicates = 0
        self.bad = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error = None
        self.interruptions = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        if not self._ready.wait(30) or self.error:
            self.stop()
            raise common.BenchError('the AMQP consumer did not start: %s'
                                    % self.error)
        return self

    def _on_message(self, message):
        now = time.time()
        try:
            body = json.loads(message.body)
            inner = json.loads(body['oslo.message'])
            args = inner['args']
            key = (args['tenant'], args['seq'])
            latency = now - args['ts']
        except (ValueError, KeyError, TypeError):
            with self.lock:
                self.bad += 1
            return
        with self.lock:
            if key in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[key] = latency

    def _run(self):
        import socket

        import kombu
        while not self._stop.is_set():
            try:
                with self.conn.channel() as channel:
                    consumer = kombu.Consumer(
                        channel, queues=[self.queue], no_ack=True,
                        on_message=self._on_message)
                    consumer.consume()
                    self._ready.set()
                    while not self._stop.is_set():
                        try:
                            self.conn.drain_events(timeout=0.2)
                        except socket.timeout:
                            pass
            except Exception as exc:
                self.error = '%s: %s' % (type(exc).__name__, exc)
                if not self._ready.is_set():
                    self._ready.set()
                    return
                # Somebody else's test restarted RabbitMQ (or closed our
                # connection): what was published meanwhile is lost to us.
                self.interruptions += 1
                common.log('the AMQP consumer lost its connection (%s); '
                           'reconnecting' % self.error)
                self.conn = self.conn.clone()
                self._stop.wait(0.5)

    def count(self):
        with self.lock:
            return len(self.arrived)

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        self.conn.release()


# -- a doorbell Zaqar can be kept from reaching

class Relay:
    """A TCP relay from :attr:`port` to ``target`` on loopback that can be
    turned off: Zaqar rings the doorbell through it (the route's
    ``doorbell_url``), and while it is off every ring is refused, as when
    the doorbell can't be reached: Zaqar retries 1 s and 12 s later, then
    the ring is lost for real."""

    def __init__(self):
        self.port = servers.free_port()
        self.target = None
        self.server = None

    def on(self):
        import socketserver
        target = self.target

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                import selectors
                import socket
                try:
                    up = socket.create_connection(('127.0.0.1', target),
                                                  timeout=10)
                except OSError:
                    return
                pair = {self.request: up, up: self.request}
                sel = selectors.DefaultSelector()
                for sock in pair:
                    sel.register(sock, selectors.EVENT_READ)
                try:
                    while True:
                        events = sel.select(timeout=30)
                        if not events:
                            return
                        for key, _ in events:
                            data = key.fileobj.recv(65536)
                            if not data:
                                return
                            pair[key.fileobj].sendall(data)
                except OSError:
                    return
                finally:
                    sel.close()
                    up.close()

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 128   # Zaqar rings from 10 threads each

        self.server = Server(('127.0.0.1', self.port), Handler)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()
        return self

    def off(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# -- one configuration

class Run:
    def __init__(self, args, config, workdir, zaqar, run):
        self.args = args
        self.config = config
        self.workdir = workdir / config
        self.workdir.mkdir()
        self.zaqar = zaqar
        self.run = '%s-%s' % (run, config)
        self.exchange = 'bench-%s' % self.run
        self.tenants = tenant_names(args.tenants)
        self.active = active_tenants(self.tenants, args.active)
        self.proxy = None
        self.daemon = None
        self.sink = None
        self.guests = None
        self.relay = None
        self.route_text = None
        self.log_errors = []
        self._log_offset = 0

    def route(self, tenants=None, relay=None):
        """The route's section: ``tenants`` (default: all); with
        ``relay``, Zaqar rings the doorbell through it."""
        a = self.args
        lines = ['direction = to_amqp',
                 'exchange = %s' % self.exchange,
                 'exchange_type = topic',
                 'zaqar_queue = %s' % QUEUE,
                 'routing_key = %s' % QUEUE,
                 'allowed_methods = %s' % METHOD,
                 'workers = %d' % a.workers,
                 'tenants = %s' % ', '.join(tenants or self.tenants)]
        if self.config == 'doorbell':
            port = servers.free_port()
            lines.append('doorbell_port = %d' % port)
            if relay is not None:
                relay.target = port
                lines.append('doorbell_url = http://127.0.0.1:%d/'
                             % relay.port)
            if a.sweep_interval is not None:
                lines.append('sweep_interval = %s' % a.sweep_interval)
        elif a.poll_interval is not None:
            lines.append('poll_interval = %s' % a.poll_interval)
        return '\n'.join(lines)

    def check_daemon(self):
        """Fail if the daemon exited; collect its ERROR/WARNING lines
        (the report shows them) instead of stopping the run."""
        if self.daemon.proc.poll() is not None:
            raise common.BenchError('the bridge exited (%s):\n%s' % (
                self.daemon.proc.returncode,
                common.tail(self.daemon.log_path)))
        try:
            with open(self.daemon.log_path, 'rb') as f:
                f.seek(self._log_offset)
                new = f.read()
        except FileNotFoundError:
            return
        self._log_offset += len(new)
        for line in new.decode(errors='replace').splitlines():
            if ' ERROR ' in line or ' WARNING ' in line:
                self.log_errors.append(line)

    def wait(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check_daemon()
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))

    # -- request accounting

    def split(self, counts, before=None):
        """Requests since ``before``: per worker (by shard), the daemon's
        own (other projects), and per kind."""
        a = self.args
        per_worker = [0] * a.workers
        other = 0
        kinds = {}
        old = before['counts'] if before else {}
        tenants = set(self.tenants)
        for key, n in counts['counts'].items():
            n -= old.get(key, 0)
            if not n:
                continue
            kind, project, status = key
            if project in tenants:
                per_worker[worker_of(project, a.workers)] += n
            else:
                other += n
            name = '%s %d' % (kind, status)
            kinds[name] = kinds.get(name, 0) + n
        return per_worker, other, kinds

    def idle_rates(self, records, started, ended):
        """Requests per second of each worker in the idle window.

        A worker's rate is taken between its first and its last request
        in the window ((n - 1) / span): counting n requests in a window of
        T seconds is off by up to 1/T for requests made at a steady pace
        (the sweep's one a second shows as 1.07/s in 15 s).  With fewer
        than 2 requests, or ones that span less than half the window, it
        is n / T.
        """
        a = self.args
        window = ended - started
        tenants = set(self.tenants)
        times = [[] for _ in range(a.workers)]
        other = own = 0
        kinds = {}
        for when, kind, project, status in records:
            name = '%s %d' % (kind, status)
            kinds[name] = kinds.get(name, 0) + 1
            if project in tenants:
                times[worker_of(project, a.workers)].append(when)
            else:
                other += 1
                # The route's requests in the bridge's own project (the
                # doorbell's canary), not the daemon's health checks.
                if kind != 'GET /queues':
                    own += 1

        def rate(ts):
            ts.sort()
            if len(ts) >= 2 and ts[-1] - ts[0] >= window / 2:
                return (len(ts) - 1) / (ts[-1] - ts[0])
            return len(ts) / window
        return {'seconds': window,
                'per_worker_per_s': [rate(ts) + own / window / a.workers
                                     for ts in times],
                'own_project_per_s': own / window,
                'per_worker_requests': [len(ts) for ts in times],
                'per_worker_count_per_s': [len(ts) / window for ts in times],
                'daemon_other_per_s': other / window,
                'by_kind': {k: n / window for k, n in kinds.items()}}

    @staticmethod
    def zaqar_ms(after, before):
        """Mean milliseconds zaqar-server took per kind of request (as
        the proxy saw it) between two snapshots."""
        n = {}
        for (kind, _, _), count in after['counts'].items():
            n[kind] = n.get(kind, 0) + count
        for (kind, _, _), count in before['counts'].items():
            n[kind] -= count
        return {kind: 1000.0 * (after['busy'][kind]
                                - before['busy'].get(kind, 0.0)) / count
                for kind, count in n.items() if count}

    @staticmethod
    def _by_tenant(counts):
        """{(kind, project): requests, every status} from counts()."""
        out = {}
        for (kind, project, _), n in counts['counts'].items():
            out[kind, project] = out.get((kind, project), 0) + n
        return out

    def passes_logged(self):
        """Start-up passes the route's workers logged as done so far
        (every launch of the daemon writes to the same log)."""
        try:
            with open(self.daemon.log_path, 'rb') as f:
                return f.read().count(PASS_DONE)
        except FileNotFoundError:
            return 0

    def first_pass(self, launched, before=None, what='first pass',
                   need=None, passes=None):
        """Wait until, since ``before`` (a counts() snapshot), a request of
        each kind set in ``need`` was made for every queue; by default,
        with the doorbell, every queue subscribed (a create, or a list of
        its subscriptions: the doorbell rings for it), without, every
        queue looked at (a claim, or its stats).  With ``passes``, also
        done once the log holds that many start-up passes done (a worker
        whose record says its subscriptions exist makes no request per
        queue to subscribe: bridge/flows/recovery.py).  Return (when that
        was seen, counts then)."""
        old = self._by_tenant(before) if before else {}
        if need is None:
            need = [SUBSCRIBES] if self.config == 'doorbell' else [LOOKS]
        deadline = launched + self.args.startup_timeout
        last_log = 0.0
        pending = list(self.tenants)
        while True:
            logged = passes is not None and self.passes_logged() >= passes
            counts = self.proxy.counts()
            now = counts['time']
            new = self._by_tenant(counts)
            pending = [t for t in pending if not all(
                any(new.get((k, t), 0) > old.get((k, t), 0) for k in kinds)
                for kinds in need)]
            if not pending or logged:
                if pending:
                    common.log('%s: %s: every worker logged its start-up '
                               'pass done; %d queue(s) not subscribed by a '
                               'request of this launch (its record says '
                               'they are)' % (self.config, what,
                                              len(pending)))
                return now, counts
            if now > deadline:
                raise common.BenchError(
                    '%s: the %s did not finish in %.0fs (%d of %d queues)'
                    % (self.config, what, self.args.startup_timeout,
                       len(self.tenants) - len(pending), len(self.tenants)))
            if now - last_log > 10:
                common.log('%s: %s, %d of %d queues'
                           % (self.config, what,
                              len(self.tenants) - len(pending),
                              len(self.tenants)))
                last_log = now
            self.check_daemon()
            time.sleep(0.5)

    def looked_at(self, launched, before, out):
        """After the start-up (doorbell): wait until every queue was also
        looked at (a claim, or its stats: what was posted while nothing
        rang is found then); note when in ``out``."""
        done_at, counts = self.first_pass(launched, before,
                                          'look at every queue', [LOOKS])
        out['seconds_to_looked_at'] = done_at - launched
        out['requests_to_looked_at'] = self.requests_between(before, counts)
        common.log('%s: every queue looked at %.1fs after launch (%d '
                   'requests)' % (self.config, done_at - launched,
                                  out['requests_to_looked_at']))
        return done_at, counts

    @staticmethod
    def requests_between(before, after):
        return (sum(after['counts'].values())
                - sum((before or {'counts': {}})['counts'].values()))

    def startup_meter(self):
        """CPU of zaqar-server, Redis and the counting proxy from now on
        (:meth:`startup_cpu` adds the daemon's, all of it since it was
        launched)."""
        return common.CpuMeter({
            'zaqar': self.zaqar.pids(),
            'redis': common.pids_named('redis-server'),
            'proxy': [self.proxy.proc.pid]}).start()

    def startup_cpu(self, meter, seconds, subscribes):
        """CPU seconds each part used during a start-up, and per
        subscription request (ms)."""
        cpu = meter.stop()
        cpu['bridge'] = sum(common.cpu_seconds(p) for p in [
            self.daemon.proc.pid] + common.children(self.daemon.proc.pid))
        out = {'cpu_s': cpu, 'cpu_busy_of_2_cores': sum(cpu.values())
               / (2.0 * seconds)}
        if subscribes:
            out['cpu_ms_per_subscribe'] = {
                k: 1000.0 * v / subscribes for k, v in cpu.items()}
        common.log('%s: start-up CPU s: %s (%.0f%% of 2 cores)' % (
            self.config, ', '.join('%s %.1f' % kv for kv in cpu.items()),
            100.0 * out['cpu_busy_of_2_cores']))
        return out

    def worker_memory(self, pids):
        return [common.memory_mib(pid) for pid in pids]

    # -- the run

    def execute(self):
        a = self.args
        out = {'config': self.config}
        self.proxy = common.CountingProxy(self.zaqar.port).start()
        if self.config == 'doorbell':
            out['memory_base'] = self.base_memory()
            self.relay = Relay()
        self.route_text = self.route(relay=self.relay)
        if self.relay is not None:
            self.relay.on()
        self.daemon = common.Daemon(
            self.workdir, self.proxy.url, [(ROUTE, self.route_text)],
            self.run, source=a.bridge_src,
            extra='[metrics]\nport = %d\n' % servers.free_port())
        self.daemon.exchanges.append(self.exchange)
        common.log('%s: starting the bridge (%d workers, %d tenants)'
                   % (self.config, a.workers, len(self.tenants)))
        before = self.proxy.counts()
        meter = self.startup_meter()
        launched = time.monotonic()
        self.daemon.start({'Route %s: connected to RabbitMQ' % ROUTE:
                           a.workers}, timeout=a.startup_timeout)
        ready = time.monotonic()
        pids = self.daemon.worker_pids('reverse %s worker' % ROUTE)
        if len(pids) != a.workers:
            raise common.BenchError('expected %d route workers, found %s'
                                    % (a.workers, pids))
        done_at, counts = self.first_pass(launched, before)
        per_worker, other, kinds = self.split(counts, before)
        out['startup'] = {
            'seconds_to_idle': done_at - launched,
            'seconds_to_connected': ready - launched,
            'first_pass_seconds': done_at - ready,
            'requests': self.requests_between(before, counts),
            'requests_by_kind': kinds}
        out['startup'].update(self.startup_cpu(
            meter, done_at - launched, len(self.tenants)))
        common.log('%s: first pass done %.1fs after launch (%d requests)'
                   % (self.config, done_at - launched,
                      out['startup']['requests']))
        if self.config == 'doorbell':
            done_at, counts = self.looked_at(launched, before,
                                             out['startup'])

        # The guests and the consumer get ready while the bridge settles.
        mp = multiprocessing.get_context('spawn')
        self.guests = Guests(mp, self.zaqar.url, self.active, a).start()
        self.sink = Sink(self.exchange, QUEUE).start()
        self.wait(max(0.0, done_at + a.settle - time.monotonic()))

        common.log('%s: idle window, %.0fs' % (self.config, a.idle_seconds))
        started = self.proxy.record()
        meter = common.CpuMeter({'bridge workers': pids}).start()
        self.wait(a.idle_seconds)
        cpu = meter.stop()
        ended, records = self.proxy.recorded()
        out['idle'] = self.idle_rates(records, started, ended)
        out['idle']['cpu_percent_workers'] = (
            100.0 * cpu['bridge workers'] / (ended - started))
        other = out['idle']['daemon_other_per_s']
        out['memory_idle'] = self.worker_memory(pids)
        common.log('%s: idle %s req/s per worker (+%.2f/s other)'
                   % (self.config, ', '.join(
                       '%.2f' % r for r in out['idle']['per_worker_per_s']),
                      other))

        common.log('%s: %d tenants post %.0f msg/s each for %.0fs'
                   % (self.config, len(self.active), a.rate,
                      a.active_seconds))
        before = self.proxy.counts()
        meter = common.CpuMeter({
            'bridge workers': pids,
            'zaqar': [self.zaqar.proc.pid] + common.children(
                self.zaqar.proc.pid),
            'redis': common.pids_named('redis-server'),
            'rabbitmq': common.pids_named('beam.smp'),
            'proxy': [self.proxy.proc.pid],
            'guests': [self.guests.proc.pid]}).start()
        posted = self.guests.run(a.active_seconds * 3 + 60,
                                 self.check_daemon)
        cpu = meter.stop()
        cpu_seconds = time.monotonic() - before['time']
        last_post = time.monotonic()
        total = sum(p[0] for p in posted.values())
        while (self.sink.count() < total
               and time.monotonic() - last_post < a.drain_timeout):
            self.check_daemon()
            time.sleep(0.05)
        after = self.proxy.counts()
        per_worker, other, kinds = self.split(after, before)
        out['active'] = {'seconds': after['time'] - before['time'],
                         'requests_per_worker': per_worker,
                         'requests_by_kind': kinds,
                         'zaqar_ms_by_kind': self.zaqar_ms(after, before),
                         'cpu_percent_while_posting': {
                             k: 100.0 * v / cpu_seconds
                             for k, v in cpu.items()}}
        out['memory'] = self.worker_memory(pids)
        out['latency'] = self.latencies(posted)
        lat = out['latency']
        common.log('%s: %d/%d delivered, p50 %.0f ms, p99 %.0f ms'
                   % (self.config, lat['delivered'], lat['posted'],
                      lat['p50_ms'], lat['p99_ms']))
        out['proxy_overhead_ms'] = self.proxy_overhead()
        self.check_daemon()
        out['log_warnings'] = len(self.log_errors)
        out['rabbitmq_lost'] = {
            'bridge_log_lines': sum(
                1 for line in self.log_errors
                if 'RabbitMQ unavailable' in line
                or 'Connection to broker lost' in line),
            'consumer': self.sink.interruptions}
        out['disturbed'] = bool(out['rabbitmq_lost']['bridge_log_lines']
                                or out['rabbitmq_lost']['consumer'])
        out['log_sample'] = self.log_errors[:5]
        if self.config == 'doorbell':
            if a.lost:
                out['lost_outage'] = self.lost_in_outage(pids)
                out['restart'] = self.restart()
            if out['memory_base']:
                n = len(self.tenants) - BASE_TENANTS
                out['kib_per_queue'] = max(
                    1024.0 * (m['rss'] - out['memory_base']['rss']) / n
                    for m in out['memory_idle'] if m)
        out['log_warnings'] = len(self.log_errors)
        out['log_sample'] = self.log_errors[:5]
        return out

    # -- memory: a route of BASE_TENANTS tenants

    def base_memory(self):
        """RSS of the workers of the same route over BASE_TENANTS tenants
        (other projects: nothing posts to them), settled; the per-queue
        cost is what the full route's workers hold beyond it."""
        a = self.args
        tenants = ['base%03d' % i for i in range(BASE_TENANTS)]
        saved = self.tenants
        self.tenants = tenants
        workdir = self.workdir / 'base'
        workdir.mkdir()
        daemon = common.Daemon(
            workdir, self.proxy.url,
            [(ROUTE + 'base', self.route(tenants=tenants))],
            self.run + '-base', source=a.bridge_src)
        daemon.exchanges.append(self.exchange)
        try:
            common.log('%s: the base route (%d tenants), for its RSS'
                       % (self.config, BASE_TENANTS))
            daemon.start({'Route %sbase: connected to RabbitMQ' % ROUTE:
                          a.workers}, timeout=a.startup_timeout)
            self.daemon = daemon
            self.first_pass(time.monotonic(), what='base route start-up',
                            need=[SUBSCRIBES, LOOKS])
            time.sleep(a.settle)
            pids = daemon.worker_pids('reverse %sbase worker' % ROUTE)
            mem = [common.memory_mib(p) for p in pids]
            mem = [m for m in mem if m]
            return {'rss': max(m['rss'] for m in mem)} if mem else None
        finally:
            self.tenants = saved
            self.daemon = None
            daemon.stop()
            self._log_offset = 0

    # -- lost rings

    def post_lost(self, tenants, seq):
        """Post one message to each of ``tenants`` (straight to Zaqar);
        {(tenant, seq): wall-clock time of its post}."""
        posted = {}
        pad = _pad_for(self.args.body_size)
        for tenant in tenants:
            ts = time.time()
            common.zaqar_request(
                self.zaqar.url, 'POST', '/v2/queues/%s/messages' % QUEUE,
                tenant, {'messages': [{'ttl': 3600, 'body': _guest_body(
                    tenant, seq, ts, pad)}]})
            posted[tenant, seq] = ts
        return posted

    def wait_lost(self, posted, since, timeout):
        """Wait for ``posted`` to reach AMQP; {key: seconds from the later
        of its post and ``since`` (wall clock)}, None if it did not come
        within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.sink.lock:
                if all(k in self.sink.arrived for k in posted):
                    break
            self.check_daemon()
            time.sleep(0.5)
        with self.sink.lock:
            arrived = dict(self.sink.arrived)
        found = {}
        for key, ts in posted.items():
            if key in arrived:
                # arrived[key] is seconds after ts (the post).
                found[key] = arrived[key] - max(0.0, since - ts)
            else:
                found[key] = None
        return found

    def lost_tenants(self, k):
        """``k`` idle tenants spread over the list (and the shards)."""
        idle = [t for t in self.tenants if t not in set(self.active)]
        return active_tenants(idle, k)

    def lost_in_outage(self, pids):
        """Zaqar can't reach the doorbell (the relay is off) while tenants
        post: their rings are lost for real; the time until each message
        reaches AMQP, and what the workers ask Zaqar meanwhile."""
        a = self.args
        tenants = self.lost_tenants(a.lost)
        common.log('%s: doorbell unreachable; %d tenants post one message '
                   'each; waiting up to %.0fs for them'
                   % (self.config, len(tenants), a.lost_timeout))
        self.relay.off()
        before = self.proxy.counts()
        try:
            posted = self.post_lost(tenants, LOST_SEQ)
            found = self.wait_lost(posted, 0.0, a.lost_timeout)
        finally:
            after = self.proxy.counts()
            self.relay.on()
        per_worker, other, kinds = self.split(after, before)
        seconds = after['time'] - before['time']
        times = [v for v in found.values() if v is not None]
        result = {'posted': len(posted), 'found': len(times),
                  'max_s': max(times) if len(times) == len(posted)
                  else None,
                  'times_s': sorted(times), 'seconds': seconds,
                  'req_per_worker_per_s': [n / seconds for n in per_worker],
                  'requests_by_kind': kinds}
        common.log('%s: %d/%d found, %s' % (
            self.config, len(times), len(posted), ', '.join(
                '%.0fs' % t for t in sorted(times))))
        return result

    def restart(self):
        """Stop the bridge, post while it is down (rings refused, given
        up after 12 s), start it again RESTART_AFTER s later: its start-up
        (subscriptions now exist) and the time until those messages reach
        AMQP."""
        a = self.args
        tenants = self.lost_tenants(a.lost)
        common.log('%s: restart: stopping the bridge; %d tenants post '
                   'while it is down' % (self.config, len(tenants)))
        code = common._stop(self.daemon.proc, 30)
        if code not in (0, None):
            common.log('the bridge exited with %s' % code)
        posted = self.post_lost(tenants, LOST_SEQ + 1)
        # Zaqar's last retry of a ring is 12 s after the post, later when
        # its notifier's threads are busy with other retries: only then
        # is the ring lost for sure.
        time.sleep(RESTART_AFTER)
        before = self.proxy.counts()
        meter = self.startup_meter()
        relaunched = time.time()
        launched = time.monotonic()
        self.daemon.start({'Route %s: connected to RabbitMQ' % ROUTE:
                           2 * a.workers}, timeout=a.startup_timeout)
        done_at, counts = self.first_pass(launched, before,
                                          what='restart\'s pass',
                                          passes=2 * a.workers)
        per_worker, other, kinds = self.split(counts, before)
        result = {'seconds_to_idle': done_at - launched,
                  'requests': self.requests_between(before, counts),
                  'requests_by_kind': kinds}
        result.update(self.startup_cpu(meter, done_at - launched,
                                       len(self.tenants)))
        self.looked_at(launched, before, result)
        found = self.wait_lost(posted, relaunched, a.lost_timeout)
        times = [v for v in found.values() if v is not None]
        result.update({
                  'posted': len(posted), 'found': len(times),
                  'max_s': max(times) if len(times) == len(posted)
                  else None, 'times_s': sorted(times)})
        common.log('%s: restart pass done %.1fs after launch (%d requests); '
                   'messages posted while down found %s after it' % (
                       self.config, result['seconds_to_idle'],
                       result['requests'], ', '.join(
                           '%.0fs' % t for t in sorted(times))))
        return result

    def proxy_overhead(self, n=30):
        """What the proxy adds to one request: the median of ``n`` GETs
        through it less the median of ``n`` straight to Zaqar (taken in
        turns, after the measurements)."""
        took = {self.zaqar.url: [], self.proxy.url: []}
        for _ in range(n):
            for url in took:
                t0 = time.monotonic()
                common.zaqar_request(url, 'GET', '/v2/queues/%s/stats'
                                     % QUEUE, 'bench-probe')
                took[url].append(time.monotonic() - t0)
        return 1000.0 * (common.median(took[self.proxy.url])
                         - common.median(took[self.zaqar.url]))

    def latencies(self, posted):
        a = self.args
        with self.sink.lock:
            arrived = dict(self.sink.arrived)
        count = int(round(a.rate * a.active_seconds))
        missing = []
        for tenant, (_, _, failed, _) in posted.items():
            failed = set(failed)
            missing.extend((tenant, s) for s in range(count)
                           if (tenant, s) not in arrived
                           and s not in failed)
        samples = list(arrived.values())
        summary = common.latency_summary(samples)
        # A message never delivered counts as slower than every other one
        # (then the p99 is infinite as soon as 1 % of them are missing).
        p99 = summary['p99_ms']
        if missing:
            everything = sorted(s * 1000.0 for s in samples) + \
                [float('inf')] * len(missing)
            p99 = everything[min(len(everything) - 1,
                                 int(len(everything) * 0.99))]
        post_ms = [ms for p in posted.values() for ms in p[3]]
        summary.update({
            'posted': sum(p[0] for p in posted.values()),
            'post_errors': sum(len(p[2]) for p in posted.values()),
            'post_error_sample': [e for p in posted.values()
                                  for e in p[1]][:3],
            'delivered': len(samples),
            'undelivered': len(missing),
            'undelivered_sample': missing[:10],
            'duplicates': self.sink.duplicates,
            'unreadable': self.sink.bad,
            'p99_ms_with_undelivered': p99,
            'over_1s': sum(1 for s in samples if s > 1.0),
            'guest_post_p50_ms': common.percentile(post_ms, 50),
            'guest_post_p99_ms': common.percentile(post_ms, 99)})
        return summary

    def stop(self):
        for thing in (self.guests, self.sink):
            if thing is not None:
                thing.stop()
        if self.daemon is not None:
            code = self.daemon.stop()
            if code not in (0, None):
                common.log('the bridge exited with %s; see %s'
                           % (code, self.daemon.log_path))
        if self.proxy is not None:
            self.proxy.stop()
        if self.relay is not None:
            self.relay.off()
        # What the next configuration (or run) must not find: messages
        # left in the active queues.
        for tenant in self.active:
            try:
                common.zaqar_request(self.zaqar.url, 'POST',
                                     '/v2/queues/%s/purge' % QUEUE, tenant,
                                     {'resource_types': ['messages']})
            except OSError as exc:
                common.log('could not purge %s/%s: %s' % (tenant, QUEUE, exc))


# -- the report

def lost_ring_seconds(result):
    """The longest time a message whose ring was lost took to reach AMQP
    (inf: one never came), over the outage and the restart; None if not
    measured."""
    cases = [result[k] for k in ('lost_outage', 'restart') if k in result]
    if not cases:
        return None
    if any(c['max_s'] is None for c in cases):
        return float('inf')
    return max(c['max_s'] for c in cases)


def goals(result):
    """(name, value, goal text, met) for one configuration; a value is
    compared as the table prints it (1.004 req/s is 1.00: met).  A value
    not measured (the polling route: no doorbell) is None."""
    idle = max(result['idle']['per_worker_per_s'])
    p99 = result['latency']['p99_ms_with_undelivered']
    kib = result.get('kib_per_queue')
    lost = lost_ring_seconds(result)
    startup = result['startup']['seconds_to_idle']

    def met(value, goal, digits):
        return None if value is None else round(value, digits) <= goal
    return [('worker KiB per tenant queue', kib,
             '<= %g' % GOAL_KIB_PER_QUEUE, met(kib, GOAL_KIB_PER_QUEUE, 2)),
            ('start-up s', startup, '<= %.0f' % GOAL_STARTUP_S,
             met(startup, GOAL_STARTUP_S, 1)),
            ('lost ring found s', lost, '<= %.0f' % GOAL_LOST_RING_S,
             met(lost, GOAL_LOST_RING_S, 0)),
            ('idle req/s per worker', idle, '<= %g' % GOAL_IDLE,
             met(idle, GOAL_IDLE, 2)),
            ('p99 ms', p99, '<= %.0f' % GOAL_P99_MS,
             met(p99, GOAL_P99_MS, 0))]


KIND_NAMES = [('POST /queues/{q}/claims 201', 'claims with messages'),
              ('POST /queues/{q}/claims 204', 'empty claims'),
              ('POST /queues/{q}/claims', 'claims'),
              ('DELETE /queues/{q}/messages/{id}', 'deletes'),
              ('POST /queues/{q}/subscriptions', 'subscribes'),
              ('PATCH /queues/{q}/subscriptions/{id}',
               'subscription PATCHes'),
              ('GET /queues/{q}/subscriptions/{id}', 'subscription GETs'),
              ('GET /queues/{q}/subscriptions', 'subscription lists'),
              ('GET /queues/{q}/stats', 'stats looks'),
              ('POST /queues/{q}/messages', 'posts'),
              ('GET /queues', 'queue lists')]


def kinds_text(kinds, number):
    """'claims 12, deletes 3' from {request kind [status]: value}."""
    out = []
    for kind, value in sorted(kinds.items(), key=lambda kv: -kv[1]):
        name = kind
        for prefix, short in KIND_NAMES:
            if kind == prefix or kind.startswith(prefix + ' '):
                name = short + kind[len(prefix):]
                break
        out.append(('%s ' + number) % (name, value))
    return ', '.join(out)


def report(args, zaqar, results):
    for r in results:
        r['goals'] = [{'name': n, 'value': v, 'goal': g, 'met': m}
                      for n, v, g, m in goals(r)]
    data = {'benchmark': 'tenants', 'results': results,
            'zaqar_server': zaqar.describe(),
            'bridge_source': common.bridge_source(args.bridge_src),
            'settings': {k: v for k, v in vars(args).items()
                         if k not in ('json', 'keep')},
            'goals': {'idle_per_worker_per_s': GOAL_IDLE,
                      'p99_ms': GOAL_P99_MS,
                      'kib_per_tenant_queue': GOAL_KIB_PER_QUEUE,
                      'startup_s': GOAL_STARTUP_S,
                      'lost_ring_s': GOAL_LOST_RING_S},
            'machine': common.machine()}
    if args.json:
        common.dump_json(data)
        return data

    def per_worker(values, digits):
        return ' / '.join('%.*f' % (digits, v) for v in values)

    def p99(r):
        value = r['latency']['p99_ms_with_undelivered']
        if math.isinf(value):
            return '>%.0f' % (args.drain_timeout * 1000)
        return '%.0f' % value
    print('Thousands of tenants: one to_amqp route, %d tenant queues, %d '
          'worker(s); %d active tenants x %g msg/s for %gs'
          % (args.tenants, args.workers, args.active, args.rate,
             args.active_seconds))
    print('Zaqar: %s (both rows); %d CPUs, load %s' % (
        zaqar.describe(), os.cpu_count(),
        data['machine']['load_1min_at_end']))
    print('Bridge: %s' % data['bridge_source'])
    print()
    def value(v, digits):
        if v is None:
            return 'n/a'
        if math.isinf(v):
            return 'never (>%.0f)' % args.lost_timeout
        return '%.*f' % (digits, v)
    rows = []
    for r in results:
        lat = r['latency']
        restart = r.get('restart')
        rows.append([r['config'] + (' (disturbed)' if r['disturbed']
                                    else ''),
                     value(r.get('kib_per_queue'), 2),
                     '%.1f (%d req)' % (r['startup']['seconds_to_idle'],
                                        r['startup']['requests']),
                     '%.1f (%d req)' % (restart['seconds_to_idle'],
                                        restart['requests'])
                     if restart else 'n/a',
                     value(lost_ring_seconds(r), 0),
                     per_worker(r['idle']['per_worker_per_s'], 2),
                     (lat['p50_ms'], 0), p99(r),
                     '%d/%d' % (lat['delivered'], lat['posted']),
                     per_worker([m['rss'] for m in r['memory'] if m], 0)])
    print(common.table(['', 'KiB per queue', 'start-up s', 'restart s',
                        'lost ring s', 'idle req/s per worker', 'p50 ms',
                        'p99 ms', 'delivered', 'RSS MiB per worker'], rows))
    print()
    digits = {'worker KiB per tenant queue': 2, 'start-up s': 1,
              'lost ring found s': 0, 'idle req/s per worker': 2,
              'p99 ms': 0}
    goal_rows = []
    for i, g in enumerate(results[0]['goals']):
        cells = []
        for r in results:
            mine = r['goals'][i]
            if mine['met'] is None:
                cells.append('n/a')
            else:
                cells.append('%s: %s' % (
                    value(mine['value'], digits[g['name']]),
                    'met' if mine['met'] else 'NOT met'))
        goal_rows.append(['%s %s' % (g['name'], g['goal'])] + cells)
    print(common.table(['goal'] + [r['config'] for r in results],
                       goal_rows))
    print()
    for r in results:
        s, idle, lat = r['startup'], r['idle'], r['latency']
        settings = ('poll_interval %s' % (args.poll_interval or '1.0 '
                                         '(default)')
                    if r['config'] == 'polling' else
                    'doorbell, sweep_interval %s'
                    % (args.sweep_interval or 'default'))
        print('%s (%s):' % (r['config'], settings))
        print('  start-up: %.1f s to idle: connected after %.1f s, first '
              'pass %.1f s, %d requests (%s)' % (
                  s['seconds_to_idle'], s['seconds_to_connected'],
                  s['first_pass_seconds'], s['requests'],
                  kinds_text(s['requests_by_kind'], '%d')))
        for when, c in (('start-up', s), ('restart', r.get('restart'))):
            if c and 'cpu_s' in c:
                print('  CPU s from launch to the end of the %s\'s pass: %s '
                      '(%.0f %% of 2 cores)' % (when, ', '.join(
                          '%s %.1f' % kv for kv in sorted(c['cpu_s'].items())),
                          100.0 * c['cpu_busy_of_2_cores']))
        if 'seconds_to_looked_at' in s:
            print('  every queue looked at (a claim, or its stats) after '
                  '%.1f s, %d requests' % (s['seconds_to_looked_at'],
                                            s['requests_to_looked_at']))
        print('  idle (%.0f s): %s req/s; of these the daemon\'s own checks '
              '(not the route\'s workers) %.2f req/s; the route\'s workers '
              'used %.1f %% of a core' % (
                  idle['seconds'], kinds_text(idle['by_kind'], '%.2f'),
                  idle['daemon_other_per_s'], idle['cpu_percent_workers']))
        if 'kib_per_queue' in r:
            print('  memory: %.2f KiB per tenant queue = (idle RSS %s MiB '
                  '- %.1f MiB of the same route over %d tenants) / %d '
                  'queues (each worker holds every queue of the route)' % (
                      r['kib_per_queue'], per_worker(
                          [m['rss'] for m in r['memory_idle'] if m], 1),
                      r['memory_base']['rss'], BASE_TENANTS,
                      args.tenants - BASE_TENANTS))
        for key, what in (('lost_outage', 'doorbell unreachable'),
                          ('restart', 'posted while the bridge was down')):
            c = r.get(key)
            if not c:
                continue
            print('  lost rings, %s: %d/%d messages reached AMQP, after %s '
                  's%s' % (what, c['found'], c['posted'], ', '.join(
                      '%.0f' % t for t in c['times_s']) or '-',
                      ' (from the restart)' if key == 'restart' else
                      ' (from the post)'))
            if key == 'lost_outage':
                print('    meanwhile %s req/s per worker (%s)' % (
                    per_worker(c['req_per_worker_per_s'], 2),
                    kinds_text(c['requests_by_kind'], '%d')))
            else:
                print('    restart: the doorbell rings for every queue after '
                      '%.1f s, %d requests (%s); every queue looked at '
                      'after %.1f s, %d requests' % (
                          c['seconds_to_idle'], c['requests'],
                          kinds_text(c['requests_by_kind'], '%d'),
                          c['seconds_to_looked_at'],
                          c['requests_to_looked_at']))
        active = r['active']
        print('  active: %d requests (%s); zaqar-server took (mean ms) %s'
              % (sum(active['requests_by_kind'].values()),
                 kinds_text(active['requests_by_kind'], '%d'),
                 kinds_text(active['zaqar_ms_by_kind'], '%.1f')))
        print('  CPU while the guests posted (%% of one core): %s; the '
              'counting proxy adds %.1f ms to a request (median)' % (
                  ', '.join('%s %.0f' % kv for kv in sorted(
                      active['cpu_percent_while_posting'].items())),
                  r['proxy_overhead_ms']))
        print('  guests\' POSTs p50 %.0f ms, p99 %.0f ms; %d message(s) '
              'delivered after more than 1 s, %d undelivered %g s after the '
              'last post, %d duplicate(s)' % (
                  lat['guest_post_p50_ms'], lat['guest_post_p99_ms'],
                  lat['over_1s'], lat['undelivered'], args.drain_timeout,
                  lat['duplicates']))
        lost = r['rabbitmq_lost']
        if lost['bridge_log_lines'] or lost['consumer']:
            print('  DISTURBED: RabbitMQ connections were lost during the '
                  'run (%d bridge log line(s), the consumer %d time(s)): '
                  'another user of the broker restarted or closed them; '
                  'messages claimed then come back after claim_ttl'
                  % (lost['bridge_log_lines'], lost['consumer']))
        if r['log_warnings']:
            print('  the bridge logged %d WARNING/ERROR line(s), e.g.:'
                  % r['log_warnings'])
            for line in r['log_sample'][:3]:
                print('    %s' % line[:200])
    return data


def main(argv=None):
    args = parse_args(argv)
    # py-amqp warns about deliveries arriving while the consumer closes.
    logging.getLogger('amqp').setLevel(logging.ERROR)
    run = common.run_id()
    results = []
    with common.workspace('bench-tenants-', args.keep) as workdir, \
            common.redis_dbs() as dbids:
        # One zaqar-server for both configurations, with the notification
        # pipeline the doorbell needs (polling runs first, before any
        # subscription exists).
        zaqar = common.Zaqar(workdir, dbids, args.gunicorn,
                             pipeline='doorbell' in args.configs)
        try:
            common.log('starting %s (redis dbs %d,%d)'
                       % (zaqar.describe(), *dbids))
            zaqar.start()
            t0 = time.monotonic()
            common.create_queues(zaqar.url, [(t, QUEUE) for t in
                                             tenant_names(args.tenants)])
            created = time.monotonic() - t0
            common.log('created %d tenant queues in %.1fs'
                       % (args.tenants, created))
            for config in args.configs:
                bench = Run(args, config, workdir, zaqar, run)
                try:
                    results.append(bench.execute())
                finally:
                    bench.stop()
        finally:
            zaqar.stop()
            zaqar.flush()
        report(args, zaqar, results)
    return 0


if __name__ == '__main__':
    common.run_main(main)
