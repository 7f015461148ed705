"""Forward throughput: oslo.messaging casts -> the bridge -> Zaqar.

    python -m benchmarks.forward [--messages N] [--workers W] [--json] ...

Two rows, measured in the same run against the same zaqar-server:

* **raw zaqarclient ingest** (the baseline): W processes post the N
  message bodies the bridge would post, with python-zaqarclient, in
  batches of ``--batch-size`` (the bridge's ``batch_size``), one POST in
  flight per process (as one bridge worker).
* **bridge forward**: N ~200-byte casts (oslo.messaging 2.0 envelope,
  persistent, JSON) are published to a topic exchange; a ``to_zaqar``
  route with ``tenant = context:project_id`` and ``workers = W`` moves
  them into the tenant's Zaqar queue.  The casts' AMQP frames are made
  beforehand (by py-amqp's frame writer) and written 100 a write, as the
  raw row's bodies are built beforehand: the benchmark process (publisher
  and the Redis counter) then takes ~25 us of the CPU it shares with
  RabbitMQ and the bridge a message, not ~100-130 (a ``basic_publish`` a
  message); in a deployment the publishers are other services, often on
  other hosts.

Throughput: from the first message sent to the last one claimable, counted
in Redis (ZCARD of the queue's message set, polled every 5 ms: no requests
to zaqar-server).  Median of ``--rounds`` rounds (raw and bridge take turns
going first).  Latency: a separate phase, one message in flight at a time
(every ``--latency-interval`` seconds), from just before the post
(raw) or publish (bridge) until it is claimable.

zaqar-server gets a CPU of its own in both rows (``--zaqar-cpus``, default
the last one): its processes are pinned there, and this process, the raw
posters and the bridge daemon (its children) to the others.  So that
RabbitMQ does not take zaqar-server's CPU either (its schedulers run on
every CPU, and it works only in the bridge rows), the casts go through a
private RabbitMQ node started for the run (``--rabbit private``, the
default: tests/fixtures/rabbit_node.py, the fault suite's nodes) pinned
with the bridge; ``--rabbit shared`` uses the machine's (BENCH_RABBIT_URL),
unpinned.  Redis serves zaqar-server in both rows and is left alone.
CPU per message of each row
is read from /proc over the measured window; the goals: bridge msg/s >=
0.9 x raw, and the bridge daemon's CPU per message <= 0.3 x
zaqar-server's (both of the bridge row).
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import subprocess
import time
import uuid

from benchmarks import common
from tests.fixtures import servers

GOAL = 0.9
# The bridge's CPU per forwarded message / zaqar-server's per stored one.
CPU_GOAL = 0.3
ROUTE = 'bench'
# Casts published a write (bridge rounds), their frames made beforehand:
# the benchmark then takes little of the CPU RabbitMQ and the bridge share.
PUBLISH_CHUNK = 100


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.forward',
        description='Bridge forward throughput against raw zaqarclient '
                    'ingest, in the same run.')
    p.add_argument('-n', '--messages', type=int, default=5000,
                   help='messages per throughput round (default 5000)')
    p.add_argument('-w', '--workers', type=int, default=2,
                   help='bridge workers = raw posting processes (default 2)')
    p.add_argument('--batch-size', type=int, default=20,
                   help='the route\'s batch_size = raw messages per POST '
                        '(default 20)')
    p.add_argument('--batch-timeout', type=float, default=0.02,
                   help='the route\'s batch_timeout (default 0.02)')
    p.add_argument('--prefetch', type=int, default=100,
                   help='the route\'s prefetch (default 100)')
    p.add_argument('--queues', type=int, default=1,
                   help='spread messages over this many Zaqar queues of '
                        'the tenant (routing keys), round-robin (default 1)')
    p.add_argument('--body-size', type=int, default=200,
                   help='bytes of each AMQP body (default 200)')
    p.add_argument('--rounds', type=int, default=3,
                   help='throughput rounds; the median is reported '
                        '(default 3)')
    p.add_argument('--budget', type=float, default=90,
                   help='seconds the throughput rounds may take: no new '
                        'round starts after that (at least one runs; the '
                        'header shows how many did) (default 90)')
    p.add_argument('--latency-messages', type=int, default=200,
                   help='messages of the latency phase, per row (default '
                        '200; 0 skips it)')
    p.add_argument('--latency-interval', type=float, default=0.05,
                   help='seconds between latency messages (default 0.05)')
    p.add_argument('--timeout', type=float, default=120,
                   help='seconds a phase may take before the run fails')
    p.add_argument('--zaqar-cpus', default=None, metavar='LIST',
                   help='CPUs zaqar-server is pinned to, e.g. "1" or "2,3" '
                        '(default: the last CPU); this process, the raw '
                        'posters and the bridge get the others; "none": '
                        'no pinning')
    p.add_argument('--rabbit', choices=('private', 'shared'),
                   default='private',
                   help='RabbitMQ for the casts: a node started for the run, '
                        'pinned with the bridge off zaqar-server\'s CPUs '
                        '(default; the shared one when rabbitmq-server '
                        'cannot be started here), or the shared one '
                        '(BENCH_RABBIT_URL), unpinned')
    p.add_argument('--profile', action='store_true',
                   help='record the first bridge worker with py-spy during '
                        'the first bridge round (py-spy on PATH or '
                        '$PY_SPY); top functions go to stderr and JSON')
    common.add_run_options(
        p, 'run the daemon with the bridge package of this checkout '
           '(PYTHONPATH) instead of the installed one, e.g. a `git archive '
           'HEAD` export')
    args = p.parse_args(argv)
    if min(args.messages, args.workers, args.batch_size, args.queues,
           args.rounds) < 1:
        p.error('counts must be at least 1')
    return args


# -- CPUs

def cpu_sets(spec):
    """(zaqar-server's CPUs, everything else's) from --zaqar-cpus, or
    (None, None) for no pinning."""
    have = sorted(os.sched_getaffinity(0))
    if spec == 'none' or len(have) < 2:
        return None, None
    zaqar = ({int(c) for c in spec.split(',')} if spec else {have[-1]})
    if not zaqar <= set(have) or zaqar == set(have):
        raise common.BenchError('--zaqar-cpus %s: pick some, not all, of '
                                'the CPUs %s' % (spec, have))
    return zaqar, set(have) - zaqar


def pin(pids, cpus):
    """Pin every thread of ``pids`` to ``cpus`` (taskset -acp)."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir('/proc/%d/task' % pid)]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def pin_zaqar(zaqar, cpus):
    """zaqar-server's processes (gunicorn's master and workers) to
    ``cpus``.  (Until benchmarks/common.py's Zaqar pins them itself.)"""
    pin([zaqar.proc.pid] + common.children(zaqar.proc.pid), cpus)


def cpu_list(cpus):
    return ','.join(str(c) for c in sorted(cpus))


@contextlib.contextmanager
def rabbitmq(args, workdir, cpus):
    """The RabbitMQ of the run: yields its beam pid (CPU metering) or None
    for the shared one.  A private node is pinned to ``cpus`` (None: not
    pinned) and stopped at the end; everything the run reaches RabbitMQ
    through (the daemon's config, the publisher, the clean-up) reads
    ``common.RABBIT_URL``, which points at it meanwhile."""
    from tests.fixtures import rabbit_node
    why = rabbit_node.unavailable() if args.rabbit == 'private' else None
    if args.rabbit == 'shared' or why:
        if why:
            common.log('--rabbit private: %s; using the shared RabbitMQ'
                       % why)
        args.rabbit = 'shared'
        yield None
        return
    node = rabbit_node.RabbitNode(workdir / 'rabbitmq')
    common.log('starting a private RabbitMQ node')
    shared_url, common.RABBIT_URL = common.RABBIT_URL, node.url
    try:
        node.start()
        if cpus:
            pin([node.beam_pid()], cpus)
        yield node.beam_pid()
    finally:
        common.RABBIT_URL = shared_url
        node.stop()


# -- the workload

class Workload:
    """Messages as a controller's ``RPCClient.cast()`` would send them."""

    def __init__(self, args, tenant, exchange):
        self.args = args
        self.tenant = tenant
        self.exchange = exchange
        self._pad = ''
        probe = self.amqp_body(self.message(0, 0.0))
        self._pad = 'x' * max(0, args.body_size - len(probe))

    def message(self, seq, ts):
        return {'method': 'bench_cast',
                'args': {'seq': seq, 'ts': round(ts, 6), 'pad': self._pad},
                'version': '1.0', '_unique_id': uuid.uuid4().hex,
                '_context_project_id': self.tenant,
                '_context_user_id': 'bench'}

    @staticmethod
    def amqp_body(message):
        return json.dumps({'oslo.version': '2.0',
                           'oslo.message': json.dumps(message)})

    def zaqar_message(self, message, routing_key):
        """What the bridge posts for ``message`` (doc/protocol.rst)."""
        return {'ttl': 3600, 'body': {
            'bridge': 1, 'id': message['_unique_id'], 'message': message,
            'route': ROUTE, 'exchange': self.exchange,
            'routing_key': routing_key}}

    @staticmethod
    def zaqar_queue(routing_key):
        return routing_key.replace('.', '_')

    def routing_keys(self, name):
        return ['%s.%s-%d' % (ROUTE, name, q)
                for q in range(self.args.queues)]


# -- raw zaqarclient ingest

def _raw_poster(url, project, batches, start, results):
    """One baseline process: post its batches, one POST at a time."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        client = common.zaqar_client(url, project)
        queues = {}
        for name, _ in batches:
            if name not in queues:
                queues[name] = client.queue(name, auto_create=False)
        # The first request of a process is slow (lazy imports, session):
        # warm up, as the bridge workers are.
        client.queue('warm-raw', auto_create=False).post(batches[0][1][:1])
        results.put(('ready', os.getpid(), None))
        start.wait()
        cpu0 = sum(os.times()[:2])
        for name, messages in batches:
            queues[name].post(messages)
        results.put(('done', os.getpid(), sum(os.times()[:2]) - cpu0))
    except BaseException as exc:
        results.put(('error', os.getpid(), '%s: %s' % (type(exc).__name__,
                                                       exc)))


class Bench:
    def __init__(self, args, workdir, zaqar, dbids, run):
        self.args = args
        self.workdir = workdir
        self.zaqar = zaqar
        self.dbids = dbids
        self.run = run
        self.tenant = 'bench-tenant-%s' % run
        self.exchange = 'bench-%s' % run
        self.work = Workload(args, self.tenant, self.exchange)
        self.mp = multiprocessing.get_context('spawn')
        self.daemon = None
        self.amqp = None
        self.channel = None
        self.stack_stats = {}
        self.rabbit_pid = None   # a private node's (else: all beam.smp)

    # -- helpers

    def counter(self, routing_keys):
        return common.MessageCounter(
            self.dbids[0], self.tenant,
            [self.work.zaqar_queue(k) for k in routing_keys])

    def meter(self, **groups):
        groups.setdefault('zaqar', [self.zaqar.proc.pid] +
                          common.children(self.zaqar.proc.pid))
        groups.setdefault('redis', common.pids_named('redis-server'))
        groups.setdefault('rabbitmq', [self.rabbit_pid] if self.rabbit_pid
                          else common.pids_named('beam.smp'))
        return common.CpuMeter(groups).start()

    # -- the bridge side

    def start_bridge(self):
        a = self.args
        route = '''
            direction = to_zaqar
            exchange = {ex}
            exchange_type = topic
            binding_keys = {route}.*
            tenant = context:project_id
            workers = {w}
            batch_size = {bs}
            batch_timeout = {bt}
            prefetch = {pf}
            '''.format(ex=self.exchange, route=ROUTE, w=a.workers,
                       bs=a.batch_size, bt=a.batch_timeout, pf=a.prefetch)
        self.daemon = common.Daemon(self.workdir, self.zaqar.url,
                                    [(ROUTE, route)], self.run,
                                    source=a.bridge_src)
        self.daemon.exchanges.append(self.exchange)
        self.daemon.start({'Route %s: consuming queue' % ROUTE: a.workers})
        import kombu
        self.amqp = kombu.Connection(servers.kombu_url(common.RABBIT_URL))
        self.channel = self.amqp.channel()

    def stop_bridge(self):
        if self.amqp is not None:
            self.amqp.release()
        if self.daemon is not None:
            code = self.daemon.stop()
            if code not in (0, None):
                common.log('the bridge exited with %s; see %s'
                           % (code, self.daemon.log_path))

    @staticmethod
    def amqp_message(body):
        """As oslo.messaging's rabbit driver sends a cast (kombu's
        default delivery mode: persistent)."""
        import amqp
        return amqp.Message(body, content_type='application/json',
                            content_encoding='utf-8', delivery_mode=2)

    def publish(self, message, routing_key):
        if isinstance(message, str):
            message = self.amqp_message(message)
        self.channel.basic_publish(message, exchange=self.exchange,
                                   routing_key=routing_key)

    def publish_frames(self, messages):
        """The bytes ``publish`` writes for each (routing key, message),
        made by py-amqp's own frame writer without sending them."""
        from amqp import method_framing

        frames = []

        class Collect:
            @staticmethod
            def write(data):
                frames.append(bytes(data))

        conn = self.channel.connection
        real = conn.frame_writer
        conn.frame_writer = method_framing.frame_writer(conn, Collect())
        try:
            out = []
            for key, message in messages:
                self.publish(message, key)
                out.append(b''.join(frames))
                frames.clear()
        finally:
            conn.frame_writer = real
        return out

    def send_frames(self, frames, per_write=PUBLISH_CHUNK):
        """Publish frames made by :meth:`publish_frames`, ``per_write``
        messages a write."""
        write = self.channel.connection.transport.write
        for i in range(0, len(frames), per_write):
            write(b''.join(frames[i:i + per_write]))

    def dead_letters(self):
        try:
            _, count, _ = self.amqp.default_channel.queue_declare(
                self.daemon.queues[1], passive=True)
        except self.amqp.channel_errors:  # never declared: none
            return 0
        return count

    # -- throughput rounds

    def raw_round(self, name):
        a = self.args
        keys = self.work.routing_keys(name)
        # Each process gets every W-th message; its batches hold
        # batch_size messages of one queue, as the bridge's would.
        per_proc = [dict((k, []) for k in keys) for _ in range(a.workers)]
        for i in range(a.messages):
            key = keys[i % len(keys)]
            per_proc[i % a.workers][key].append(self.work.zaqar_message(
                self.work.message(i, 0.0), key))
        jobs = []
        for queues in per_proc:
            batches = []
            for key, messages in queues.items():
                for j in range(0, len(messages), a.batch_size):
                    batches.append((self.work.zaqar_queue(key),
                                    messages[j:j + a.batch_size]))
            jobs.append(batches)
        start = self.mp.Event()
        results = self.mp.Queue()
        procs = [self.mp.Process(target=_raw_poster, daemon=True, args=(
            self.zaqar.url, self.tenant, batches, start, results))
            for batches in jobs]
        for proc in procs:
            proc.start()
        try:
            for _ in procs:
                kind, pid, info = results.get(timeout=60)
                if kind != 'ready':
                    raise common.BenchError('raw poster %d: %s' % (pid, info))
            counter = self.counter(keys)
            meter = self.meter()
            t0 = time.monotonic()
            start.set()
            t_end = counter.wait_for(a.messages, a.timeout)
            cpu = meter.stop()
            counter.close()
            poster_cpu = 0.0
            for _ in procs:
                kind, pid, info = results.get(timeout=a.timeout)
                if kind != 'done':
                    raise common.BenchError('raw poster %d: %s' % (pid, info))
                poster_cpu += info
            cpu['clients'] = poster_cpu
        finally:
            for proc in procs:
                proc.join(5)
                if proc.is_alive():
                    proc.terminate()
        return self._result(t_end - t0, cpu)

    def bridge_round(self, name, profile=False):
        a = self.args
        keys = self.work.routing_keys(name)
        frames = self.publish_frames(
            (keys[i % len(keys)], self.amqp_message(
                self.work.amqp_body(self.work.message(i, 0.0))))
            for i in range(a.messages))
        counter = self.counter(keys)
        workers = self.daemon.worker_pids('forward %s worker' % ROUTE)
        spy = self.start_profile(workers[0]) if profile and workers else None
        # The daemon's whole cost: master, route workers, any other
        # service it runs.
        meter = self.meter(bridge=[self.daemon.proc.pid] +
                           common.children(self.daemon.proc.pid),
                           bridge_workers=workers, clients=[os.getpid()])
        t0 = time.monotonic()
        self.send_frames(frames)
        published = time.monotonic() - t0
        t_end = counter.wait_for(a.messages, a.timeout,
                                 on_wait=self.daemon.check_alive)
        cpu = meter.stop()
        counter.close()
        if spy is not None:
            self.stack_stats = self.stop_profile(spy)
        result = self._result(t_end - t0, cpu)
        result['publish_seconds'] = published
        return result

    def _result(self, seconds, cpu):
        n = self.args.messages
        return {'msgs': n, 'seconds': seconds, 'msg_per_s': n / seconds,
                'cpu_us_per_msg': {k: v * 1e6 / n for k, v in cpu.items()}}

    def warm_up(self):
        """First requests of every process, queue creation, imports."""
        a = self.args
        n = a.workers * a.batch_size * 2
        key = '%s.warm' % ROUTE
        counter = self.counter([key])
        for i in range(n):
            self.publish(self.work.amqp_body(self.work.message(i, 0.0)), key)
        counter.wait_for(n, a.timeout, on_wait=self.daemon.check_alive)
        counter.close()
        client = common.zaqar_client(self.zaqar.url, self.tenant)
        client.queue('warm-raw', auto_create=False).post(
            [self.work.zaqar_message(self.work.message(i, 0.0), key)
             for i in range(a.batch_size)])

    # -- latency

    def latency(self, row):
        """One message in flight at a time: send, wait until claimable."""
        a = self.args
        key = '%s.lat-%s' % (ROUTE, row)
        counter = self.counter([key])
        queue = common.zaqar_client(self.zaqar.url, self.tenant).queue(
            self.work.zaqar_queue(key), auto_create=False)
        samples = []
        warm = 5
        next_at = time.monotonic()
        for i in range(warm + a.latency_messages):
            time.sleep(max(0.0, next_at - time.monotonic()))
            t0 = time.monotonic()
            message = self.work.message(i, time.time())
            if row == 'raw':
                queue.post([self.work.zaqar_message(message, key)])
            else:
                self.publish(self.work.amqp_body(message), key)
            t1 = counter.wait_for(i + 1, 30, interval=0.0005)
            if i >= warm:
                samples.append(t1 - t0)
            next_at = t0 + a.latency_interval
        counter.close()
        return common.latency_summary(samples)

    # -- py-spy

    def start_profile(self, pid):
        spy = os.environ.get('PY_SPY') or shutil.which('py-spy')
        if not spy:
            common.log('--profile: py-spy not found (pip install py-spy '
                       'into any venv; set PY_SPY=/path/to/py-spy)')
            return None
        out = self.workdir / ('py-spy-%d.txt' % pid)
        common.log('profiling bridge worker %d with py-spy' % pid)
        proc = subprocess.Popen(
            [spy, 'record', '--pid', str(pid), '--rate', '200', '--format',
             'raw', '--output', str(out), '--nonblocking'],
            stdout=subprocess.DEVNULL, stderr=open(
                self.workdir / 'py-spy.log', 'wb'))
        time.sleep(1.0)  # attaching takes a moment
        return proc, out

    def stop_profile(self, spy):
        proc, out = spy
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return summarize_profile(out)


def summarize_profile(path, top=12):
    """Self and inclusive sample shares per function of a py-spy raw
    (collapsed stacks) file."""
    self_counts, incl_counts, total = {}, {}, 0
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except FileNotFoundError:
        return {}
    for line in lines:
        stack, _, count = line.rpartition(' ')
        if not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = [_frame_name(f) for f in stack.split(';') if f]
        if not frames:
            continue
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            incl_counts[frame] = incl_counts.get(frame, 0) + count
    if not total:
        return {}

    def share(counts):
        return [(name, 100.0 * c / total) for name, c in
                sorted(counts.items(), key=lambda kv: -kv[1])[:top]]
    return {'samples': total, 'self_pct': share(self_counts),
            'inclusive_pct': share(incl_counts)}


def _frame_name(frame):
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(' (')
    where = where.rstrip(')').rsplit(':', 1)[0]
    parts = where.split('/')
    short = '/'.join(parts[-2:]) if parts else where
    return '%s (%s)' % (name, short)


# -- the report

def report(args, zaqar, raw, bridge, lat_raw, lat_bridge, profile,
           cpus=(None, None)):
    def med(rounds, key):
        return common.median([r[key] for r in rounds])
    raw_rate, bridge_rate = med(raw, 'msg_per_s'), med(bridge, 'msg_per_s')
    ratio = bridge_rate / raw_rate

    def cpu(rounds):
        keys = sorted({k for r in rounds for k in r['cpu_us_per_msg']})
        return {k: common.median([r['cpu_us_per_msg'].get(k, 0.0)
                                  for r in rounds]) for k in keys}
    raw_cpu, bridge_cpu = cpu(raw), cpu(bridge)
    # The goal: the daemon's CPU (all its processes) per forwarded message
    # against zaqar-server's per stored message, both in the bridge row.
    cpu_ratio = (bridge_cpu.get('bridge', 0.0)
                 / (bridge_cpu.get('zaqar') or float('nan')))
    zaqar_cpus, other_cpus = cpus
    pinning = ({'zaqar_server': sorted(zaqar_cpus),
                'benchmark_and_bridge': sorted(other_cpus)}
               if zaqar_cpus else None)
    if pinning and args.rabbit == 'private':
        pinning['rabbitmq'] = sorted(other_cpus)
    data = {
        'benchmark': 'forward',
        'zaqar_server': zaqar.describe(),
        'cpu_pinning': pinning,
        'rabbitmq': args.rabbit,
        'settings': {k: v for k, v in vars(args).items()
                     if k not in ('json', 'keep', 'profile')},
        'bridge_source': common.bridge_source(args.bridge_src),
        'raw': {'rounds': raw, 'msg_per_s': raw_rate,
                'seconds': med(raw, 'seconds'), 'latency': lat_raw,
                'cpu_us_per_msg': raw_cpu},
        'bridge': {'rounds': bridge, 'msg_per_s': bridge_rate,
                   'seconds': med(bridge, 'seconds'), 'latency': lat_bridge,
                   'publish_seconds': med(bridge, 'publish_seconds'),
                   'cpu_us_per_msg': bridge_cpu},
        'ratio': ratio, 'goal': GOAL, 'goal_met': ratio >= GOAL,
        'cpu_ratio': cpu_ratio, 'cpu_goal': CPU_GOAL,
        'cpu_goal_met': cpu_ratio <= CPU_GOAL,
        'machine': common.machine(),
    }
    if profile:
        data['bridge_worker_profile'] = profile
    if args.json:
        common.dump_json(data)
        return data

    def row(name, rounds, lat, used):
        lat = lat or {}
        return [name, args.messages, (med(rounds, 'seconds'), 2),
                (med(rounds, 'msg_per_s'), 0), lat.get('p50_ms'),
                lat.get('p99_ms'), (used.get('zaqar'), 0),
                (used['bridge'], 0) if 'bridge' in used else None,
                (used['bridge_workers'], 0) if 'bridge_workers' in used
                else None]
    print('Forward throughput: %d x %d-byte casts, %d worker(s), batch_size '
          '%d, %d queue(s), median of %d round(s)'
          % (args.messages, args.body_size, args.workers, args.batch_size,
             args.queues, min(len(raw), len(bridge))))
    print('Zaqar: %s; %d CPUs, load %s'
          % (zaqar.describe(), os.cpu_count(),
             data['machine']['load_1min_at_end']))
    if zaqar_cpus:
        print('CPUs: zaqar-server pinned to %s; this process, the raw '
              'posters and the bridge to %s; %s; Redis unpinned (shared)'
              % (cpu_list(zaqar_cpus), cpu_list(other_cpus),
                 'a private RabbitMQ node pinned with the bridge'
                 if args.rabbit == 'private' else 'the shared RabbitMQ '
                 'unpinned'))
    else:
        print('CPUs: nothing pinned')
    print('Bridge: %s' % data['bridge_source'])
    print()
    print(common.table(
        ['', 'msgs', 'seconds', 'msg/s', 'p50 ms', 'p99 ms',
         'zaqar CPU us/msg', 'bridge CPU us/msg', 'of it workers'],
        [row('raw zaqarclient ingest', raw, lat_raw, raw_cpu),
         row('bridge forward', bridge, lat_bridge, bridge_cpu)]))
    print()
    print(common.table(
        ['goal', 'ratio', 'goal', 'met?'],
        [['msg/s, bridge / raw', (ratio, 2), '>= %.1f' % GOAL,
          'met' if ratio >= GOAL else 'NOT met'],
         ['CPU per message, bridge / zaqar-server', (cpu_ratio, 2),
          '<= %.1f' % CPU_GOAL,
          'met' if cpu_ratio <= CPU_GOAL else 'NOT met']]))
    print()
    print('latency: one message in flight, send -> claimable, %d samples '
          'per row; bridge batch_timeout %.3fs'
          % (args.latency_messages, args.batch_timeout))
    print('CPU: /proc utime+stime over each round\'s window (first send -> '
          'last claimable), per message, median of the rounds; bridge = '
          'the daemon\'s processes (master, workers, metrics), zaqar = '
          'gunicorn\'s master and workers')
    for name in ('raw', 'bridge'):
        print('CPU us/msg (%s, median): %s' % (name, ', '.join(
            '%s %.0f' % kv for kv in sorted(data[name]['cpu_us_per_msg']
                                            .items()))))
    return data


def main(argv=None):
    args = parse_args(argv)
    zaqar_cpus, other_cpus = cpu_sets(args.zaqar_cpus)
    if other_cpus:
        # Inherited by everything started from here: the raw posters, the
        # bridge daemon and its workers, zaqar-server (moved below).
        pin([os.getpid()], other_cpus)
    run = common.run_id()
    raw, bridge, lat_raw, lat_bridge = [], [], None, None
    with common.workspace('bench-forward-', args.keep) as workdir, \
            common.redis_dbs() as dbids, \
            rabbitmq(args, workdir, other_cpus) as rabbit_pid:
        zaqar = common.Zaqar(workdir, dbids, args.gunicorn)
        bench = Bench(args, workdir, zaqar, dbids, run)
        bench.rabbit_pid = rabbit_pid
        try:
            common.log('starting %s (redis dbs %d,%d)'
                       % (zaqar.describe(), *dbids))
            zaqar.start()
            if zaqar_cpus:
                pin_zaqar(zaqar, zaqar_cpus)
                common.log('zaqar-server pinned to CPU %s, the rest to %s'
                           % (cpu_list(zaqar_cpus), cpu_list(other_cpus)))
            common.log('starting the bridge (%d worker(s))' % args.workers)
            bench.start_bridge()
            bench.warm_up()
            started = time.monotonic()
            for r in range(args.rounds):
                if r and time.monotonic() - started > args.budget:
                    common.log('out of time (--budget): %d round(s)' % r)
                    break
                order = ['raw', 'bridge'] if r % 2 == 0 else \
                    ['bridge', 'raw']
                for which in order:
                    if which == 'raw':
                        raw.append(bench.raw_round('tp-raw-%d' % r))
                        got = raw[-1]
                    else:
                        bridge.append(bench.bridge_round(
                            'tp-bridge-%d' % r, profile=args.profile
                            and r == 0))
                        got = bridge[-1]
                    common.log('round %d %-6s %6.0f msg/s (%.2fs)'
                               % (r + 1, which, got['msg_per_s'],
                                  got['seconds']))
            if args.latency_messages:
                lat_raw = bench.latency('raw')
                common.log('latency raw    p50 %.1f ms p99 %.1f ms'
                           % (lat_raw['p50_ms'], lat_raw['p99_ms']))
                lat_bridge = bench.latency('bridge')
                common.log('latency bridge p50 %.1f ms p99 %.1f ms'
                           % (lat_bridge['p50_ms'], lat_bridge['p99_ms']))
            dead = bench.dead_letters()
            if dead:
                raise common.BenchError('%d message(s) were dead-lettered; '
                                        'see %s' % (dead,
                                                    bench.daemon.log_path))
        finally:
            bench.stop_bridge()
            zaqar.stop()
        if bench.stack_stats:
            common.log('py-spy, bridge worker, %d samples; top self time:'
                       % bench.stack_stats['samples'])
            for name, pct in bench.stack_stats['self_pct']:
                common.log('  %5.1f%%  %s' % (pct, name))
            common.log('top inclusive:')
            for name, pct in bench.stack_stats['inclusive_pct']:
                common.log('  %5.1f%%  %s' % (pct, name))
        report(args, zaqar, raw, bridge, lat_raw, lat_bridge,
               bench.stack_stats, (zaqar_cpus, other_cpus))
    return 0


if __name__ == '__main__':
    common.run_main(main)
