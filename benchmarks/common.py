"""Plumbing shared by the benchmarks: servers, the daemon, clients, tables.

Every benchmark starts what it measures and stops it again, also on
Ctrl-C and errors: a zaqar-server (from .zaqar-venv) on a free port with a
pair of Redis databases of its own (flushed), and the installed
``amqp-zaqar-bridge`` daemon from a config file written into a temporary
directory, with AMQP exchange and queue names unique to the run.
RabbitMQ and Redis must already be running (tools/setup-env.sh).
"""

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import urllib.request
import uuid
import warnings

from tests.fixtures import proxy
from tests.fixtures import redisdb
from tests.fixtures import servers

# oslo.messaging imports oslo.service, which warns about eventlet on
# import in every process; the warning says nothing about the benchmark.
warnings.filterwarnings('ignore', message=r'(?s).*Eventlet is deprecated')

ROOT = pathlib.Path(__file__).resolve().parents[1]
RABBIT_URL = os.environ.get('BENCH_RABBIT_URL',
                            'rabbit://guest:guest@127.0.0.1:5672/')
# Where zaqar-server's Redis is (tools/zaqar-server.sh reads it too).
REDIS = os.environ.get('ZAQAR_REDIS', '127.0.0.1:6379')
# The lock files of tests/fixtures/servers.py: a benchmark and a test run
# never share a pair of Redis databases.  Tests take pairs from 6 up, the
# benchmarks from 14 down.
REDIS_DB_PAIRS = [(n, n + 1) for n in range(14, 5, -2)]
SECRET = 'benchmark-reply-secret'


def log(text):
    """Progress goes to stderr; stdout holds only the table (or JSON)."""
    print('[%s] %s' % (time.strftime('%H:%M:%S'), text), file=sys.stderr,
          flush=True)


def run_id():
    return uuid.uuid4().hex[:10]


def bin_path(name):
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


class BenchError(Exception):
    """The benchmark cannot go on; the text says why."""


def add_run_options(parser, bridge_src_help, gunicorn_help=None):
    """The options every benchmark takes: --gunicorn, --bridge-src,
    --json and --keep."""
    parser.add_argument('--gunicorn', type=int, default=2, metavar='N',
                        help=gunicorn_help or (
                            'serve Zaqar with N gunicorn sync workers; 0: '
                            'zaqar-server\'s single-threaded wsgiref '
                            '(default 2)'))
    parser.add_argument('--bridge-src', metavar='DIR',
                        default=os.environ.get('BENCH_BRIDGE_SRC'),
                        help=bridge_src_help + '; default $BENCH_BRIDGE_SRC')
    parser.add_argument('--json', action='store_true',
                        help='print JSON instead of the table')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temp dir (configs, logs)')


def run_main(main):
    """A benchmark's ``__main__``: exit 1 with one line on BenchError,
    130 on Ctrl-C."""
    try:
        sys.exit(main())
    except BenchError as exc:
        log('failed: %s' % exc)
        sys.exit(1)
    except KeyboardInterrupt:
        log('interrupted')
        sys.exit(130)


# -- Redis

Redis = redisdb.Redis   # kept for the scripts; tests/fixtures/redisdb.py

class MessageCounter:
    """Counts the messages stored in Zaqar queues, straight from Redis.

    A message is in its queue's ``<project>.<queue>.messages`` sorted set
    (zaqar.storage.redis) from the moment it can be claimed, so ZCARD
    counts claimable messages without a single request to zaqar-server.
    """

    def __init__(self, db, project, queues):
        self.redis = redisdb.Redis(db, REDIS)
        self.keys = ['%s.%s.messages' % (project, q) for q in queues]

    def count(self):
        return sum(self.redis.pipeline([('ZCARD', k) for k in self.keys]))

    def wait_for(self, expected, timeout, interval=0.005, on_wait=None):
        """Poll until ``expected`` messages are stored; return that time."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.count()
            now = time.monotonic()
            if count >= expected:
                return now
            if now > deadline:
                raise BenchError('timed out after %.0fs: %d of %d message(s) '
                                 'in Zaqar' % (timeout, count, expected))
            if on_wait is not None:
                on_wait()
            time.sleep(interval)

    def close(self):
        self.redis.close()


@contextlib.contextmanager
def redis_dbs():
    """Lock a free pair of Redis databases (message, management store)."""
    claimed = servers.lock_redis_dbs(REDIS_DB_PAIRS)
    if claimed is None:
        raise BenchError('all Redis database pairs %s are locked by test '
                         'or benchmark runs' % REDIS_DB_PAIRS)
    pair, lock = claimed
    try:
        yield pair
    finally:
        lock.close()


# -- processes

def _start(args, log_path, env=None):
    """A child in a session of its own: Ctrl-C reaches only us, and we
    stop it (and its own children) ourselves."""
    out = open(log_path, 'ab')
    try:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    finally:
        out.close()


def _stop(proc, timeout):
    """SIGTERM the child's process group, SIGKILL it after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def tail(path, lines=30):
    try:
        return '\n'.join(pathlib.Path(path).read_text(
            errors='replace').splitlines()[-lines:])
    except FileNotFoundError:
        return '(no %s)' % path


# -- zaqar-server

class Zaqar(servers.Zaqar):
    """A no-auth zaqar-server on a free port with the locked Redis
    databases ``dbids``, started the one way the tests start theirs
    (tools/zaqar-server.sh, through tests/fixtures/servers.Zaqar).

    ``gunicorn``: N sync workers of the wsgi app; 0: zaqar-server's
    wsgiref.  ``pipeline``: the notification pipeline (subscriptions: the
    doorbell, websocket push); off by default, as the forward figures were
    measured without it.  ``cpus``: pin every zaqar-server process to
    these CPUs (``taskset -c``, e.g. ``'1'``).  ``websocket``: also run the
    websocket zaqar-server (its URL in :attr:`ws_url`).
    """

    def __init__(self, workdir, dbids, gunicorn=0, pipeline=False,
                 cpus=None, websocket=False):
        port = servers.free_port()
        ws_port, notification_port = servers.free_ports(
            2, exclude=(port,)) if websocket else (None, None)
        super().__init__('http://127.0.0.1:%d' % port, 'venv', port, dbids,
                         ws_port=ws_port,
                         notification_port=notification_port,
                         gunicorn=gunicorn, pipeline=pipeline, cpus=cpus,
                         run_dir=pathlib.Path(workdir) / 'zaqar')

    def start(self):
        """Start on emptied databases; returns once it answers."""
        try:
            super().start(flush=True)
        except RuntimeError as exc:
            raise BenchError('zaqar-server did not start: %s' % exc)
        return self

    @property
    def proc(self):
        """The wsgi server's main process (``.pid``; gunicorn: the master,
        whose children are the workers).  :meth:`pids` has them all."""
        pids = self.pids()
        return types.SimpleNamespace(pid=pids[0] if pids else None)

    def stop(self):
        try:
            super().stop()
        except RuntimeError as exc:
            log('stopping zaqar-server: %s' % exc)

    def flush(self):
        """Empty its Redis databases (after stop(): leave nothing)."""
        try:
            super().flush()
        except RuntimeError as exc:
            log('could not flush redis dbs %s: %s' % (self.dbids, exc))


# -- python-zaqarclient

def zaqar_client(url, project):
    """A noauth zaqarclient Client that reuses its transport.

    python-zaqarclient builds a new transport and ``requests`` session for
    every call; a client that means to go fast keeps the first one (the
    bridge does the same), so the baseline does too.
    """
    from zaqarclient.queues.v2 import client as zclient

    class Client(zclient.Client):
        _cached = None

        def _get_transport(self, request):
            if self._cached is None:
                self._cached = super()._get_transport(request)
            return self._cached

    conf = {'auth_opts': {'backend': 'noauth',
                          'options': {'os_project_id': project}}}
    return Client(url, version=2, conf=conf)


# -- the bridge daemon

class Daemon:
    """``amqp-zaqar-bridge`` started from a config file of its own."""

    def __init__(self, workdir, zaqar_url, routes, run, extra='',
                 source=None, cpus=None):
        """``routes``: [(name, body)]; AMQP names are unique to the run.

        ``source``: run the ``bridge`` package found in this directory (a
        checkout, e.g. ``git archive HEAD | tar -x -C DIR``) instead of the
        installed one.  ``cpus``: run the daemon and its workers on these
        CPUs only (``taskset -c``, e.g. ``'0'``: off zaqar-server's).
        """
        self.workdir = pathlib.Path(workdir)
        self.source = source
        self.cpus = cpus
        self._log_offset = 0
        self._log_checked = 0.0
        self.config = self.workdir / 'bridge.conf'
        self.log_path = self.workdir / 'bridge.log'
        # Here, not at the top: it imports oslo.messaging, which the
        # benchmarks' spawned children (guests, proxy) need not load.
        from tests.functional import bridgeutil
        dead = 'bench-%s-dead' % run
        rabbit = servers.Rabbit(RABBIT_URL, servers.kombu_url(RABBIT_URL),
                                'env')
        bridgeutil.write_config(
            self.config, rabbit, types.SimpleNamespace(url=zaqar_url),
            routes, bridgeutil.dead_letter_section(dead) + textwrap.dedent(
                extra), prefix='bench', secret=SECRET)
        # [replies, dead letters, the to_zaqar routes' queues]: the scripts
        # add their own, and delete them all on stop().
        queues = bridgeutil.QUEUES.pop(str(self.config))
        self.queues = [queues[0], dead] + [q for q in queues[1:]
                                           if q != dead]
        self.exchanges = bridgeutil.EXCHANGES.pop(str(self.config))
        self.proc = None

    def start(self, ready, timeout=60):
        """Start; wait until the log shows each ``ready`` line often
        enough (a dict: text -> count)."""
        env = None
        if self.source:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(self.source)] + [p for p in os.environ.get(
                    'PYTHONPATH', '').split(os.pathsep) if p]))
        pin = ['taskset', '-c', str(self.cpus)] if self.cpus else []
        self.proc = _start(pin + [bin_path('amqp-zaqar-bridge'),
                                  '--config-file', str(self.config),
                                  '--log-file', str(self.log_path)],
                           self.workdir / 'bridge.stderr', env)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if all(text.count(k) >= n for k, n in ready.items()):
                return self
            self.check_alive(every=0.5)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError('the bridge did not get ready:\n%s\n%s' % (
                    tail(self.workdir / 'bridge.stderr', 10),
                    tail(self.log_path)))
            time.sleep(0.1)

    def log(self):
        try:
            return self.log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def check_alive(self, every=1.0):
        """Raise if the daemon exited or logged an ERROR (a worker that
        crashed, a message dead-lettered) since the last check."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError('the bridge exited (%s):\n%s'
                             % (self.proc.returncode, tail(self.log_path)))
        now = time.monotonic()
        if now - self._log_checked < every:
            return
        self._log_checked = now
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(self._log_offset)
                new = f.read()
        except FileNotFoundError:
            return
        self._log_offset += len(new)
        for line in new.decode(errors='replace').splitlines():
            if ' ERROR ' in line:
                raise BenchError('the bridge logged an error (see %s):\n%s'
                                 % (self.log_path, line))

    def worker_pids(self, title=''):
        """The daemon's workers whose process title contains ``title``
        (cotyledon names them, e.g. "amqp-zaqar-bridge: forward bench
        worker(0)")."""
        pids = []
        for pid in children(self.proc.pid):
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    cmdline = f.read().replace(b'\0', b' ').decode(
                        errors='replace')
            except OSError:
                continue
            if title in cmdline:
                pids.append(pid)
        return sorted(pids)

    def stop(self):
        code = _stop(self.proc, 30)
        delete_amqp(self.queues, self.exchanges)
        return code


def delete_amqp(queues=(), exchanges=()):
    """Remove what a run declared on the broker."""
    import kombu
    try:
        with kombu.Connection(servers.kombu_url(RABBIT_URL),
                              connect_timeout=5) as conn:
            for name in queues:
                with contextlib.suppress(*conn.channel_errors):
                    conn.default_channel.queue_delete(name)
            for name in exchanges:
                with contextlib.suppress(*conn.channel_errors):
                    conn.default_channel.exchange_delete(name)
    except Exception as exc:  # cleanup must not hide the real outcome
        log('could not delete AMQP queues/exchanges %s: %s'
            % (list(queues) + list(exchanges), exc))


# -- plain HTTP to zaqar-server (set-up requests, no zaqarclient)

def zaqar_request(url, method, path, project, body=None, timeout=30):
    """One no-auth request to Zaqar as ``project``; returns the status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={'Client-ID': str(uuid.uuid4()),
                                          'X-Project-ID': project,
                                          'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()
        return resp.status


def create_queues(url, pairs, threads=4):
    """PUT each (project, queue) of ``pairs``, a few at a time."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for status in pool.map(lambda pq: zaqar_request(
                url, 'PUT', '/v2/queues/%s' % pq[1], pq[0], {}), pairs):
            if status not in (201, 204):
                raise BenchError('creating a Zaqar queue answered %d'
                                 % status)


# -- a counting HTTP reverse proxy (in a process of its own)

def request_kind(method, path):
    """``POST /queues/{q}/claims`` for ``POST /v2/queues/x/claims?limit=20``:
    the request without queue names and ids."""
    parts = path.split('?', 1)[0].split('/')
    if len(parts) > 3 and parts[2] == 'queues':
        parts[3] = '{q}'
        if len(parts) > 5:
            parts[5] = '{id}'
    return '%s /%s' % (method, '/'.join(parts[2:]))


def _proxy_main(upstream_port, port, control):
    """The proxy process: serve until told to stop (or the parent dies)."""
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()
    counts = {}     # (kind, project, status) -> requests
    first = {}      # (kind, project) -> time.monotonic() of the first
    timeline = {}   # int(time.monotonic()) -> requests answered
    busy = {}       # kind -> seconds zaqar-server took (summed)
    recording = []  # [(time, kind, project, status)] while 'record' is on
    record = threading.Event()

    def observe(method, path, headers, status, took):
        now = time.monotonic()
        kind = request_kind(method, path)
        project = headers.get('X-Project-ID', '')
        with lock:
            key = (kind, project, status)
            counts[key] = counts.get(key, 0) + 1
            first.setdefault((kind, project), now)
            timeline[int(now)] = timeline.get(int(now), 0) + 1
            busy[kind] = busy.get(kind, 0.0) + took
            if record.is_set():
                recording.append((now, kind, project, status))

    server = proxy.LeanProxy('http://127.0.0.1:%d' % upstream_port, observe,
                             port=port)
    control.send('ready')
    while True:
        try:
            command = control.recv()
        except (EOFError, OSError):   # the benchmark is gone
            break
        if command == 'counts':
            with lock:
                control.send({'time': time.monotonic(),
                              'counts': dict(counts), 'first': dict(first),
                              'timeline': dict(timeline),
                              'busy': dict(busy)})
        elif command == 'record':
            with lock:
                del recording[:]
                record.set()
            control.send(time.monotonic())
        elif command == 'recorded':
            with lock:
                record.clear()
                control.send((time.monotonic(), list(recording)))
                del recording[:]
        else:
            break
    server.close()


class ProxyProcess:
    """A proxy on loopback in a process of its own, so it neither competes
    with the benchmark for the GIL nor dies with a thread.

    ``main(upstream_port, port, control)`` runs in the spawned process:
    it sends ``'ready'`` on the ``control`` pipe, then answers each
    command sent there; ``'stop'`` ends it.
    """

    scheme = 'http'
    what = 'proxy'

    def __init__(self, main, upstream_port):
        import multiprocessing
        self.port = servers.free_port()
        self.url = '%s://127.0.0.1:%d' % (self.scheme, self.port)
        mp = multiprocessing.get_context('spawn')
        self._control, child = mp.Pipe()
        self.proc = mp.Process(target=main, daemon=True,
                               args=(upstream_port, self.port, child))

    def start(self, timeout=60):
        self.proc.start()
        if not self._control.poll(timeout) or self._control.recv() != 'ready':
            raise BenchError('the %s did not start' % self.what)
        return self

    def _ask(self, command):
        self._control.send(command)
        if not self._control.poll(30):
            raise BenchError('the %s does not answer' % self.what)
        return self._control.recv()

    def stop(self):
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self._control.send('stop')
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(5)


class CountingProxy(ProxyProcess):
    """tests/fixtures/proxy.Proxy counting requests (:class:`ProxyProcess`).

    Put it between the daemon and zaqar-server (the daemon's ``[zaqar]
    url`` is :attr:`url`) to count what the bridge asks Zaqar, per kind of
    request (:func:`request_kind`), project (``X-Project-ID``) and status,
    without touching either.  It closes a client's connection whenever
    zaqar-server closed its own, so the daemon connects as often as it
    would without the proxy.
    """

    what = 'counting proxy'

    def __init__(self, upstream_port):
        super().__init__(_proxy_main, upstream_port)

    def counts(self):
        """{'time', 'counts': {(kind, project, status): n}, 'first':
        {(kind, project): monotonic time}, 'timeline': {second: n},
        'busy': {kind: seconds zaqar-server took, summed}}."""
        return self._ask('counts')

    def record(self):
        """Start noting every request; returns the time (monotonic)."""
        return self._ask('record')

    def recorded(self):
        """Stop; (time, [(time, kind, project, status)] since record())."""
        return self._ask('recorded')


def memory_mib(pid):
    """VmRSS and VmHWM (peak RSS) of a process, MiB; None if gone."""
    out = {}
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(('VmRSS:', 'VmHWM:')):
                    key, value = line.split(':', 1)
                    out[key] = int(value.split()[0]) / 1024.0
    except OSError:
        return None
    return {'rss': out.get('VmRSS'), 'hwm': out.get('VmHWM')}


# -- CPU accounting (read from /proc; Linux only, else zeros)

_TICK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def cpu_seconds(pid):
    """User + system CPU of a process (all its threads) so far."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def pids_named(*names):
    """Processes whose command name is one of ``names`` (e.g. the
    RabbitMQ and Redis servers), to see what their CPU time grows by."""
    out = []
    for entry in os.listdir('/proc') if os.path.isdir('/proc') else []:
        if entry.isdigit():
            try:
                with open('/proc/%s/comm' % entry) as f:
                    if f.read().strip() in names:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def children(pid):
    out = subprocess.run(['pgrep', '-P', str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


class CpuMeter:
    """CPU seconds each group of processes used between start and stop."""

    def __init__(self, groups):
        self.groups = groups  # name -> [pid]
        self.before = {}
        self.used = {}

    def _read(self):
        return {name: sum(cpu_seconds(p) for p in pids)
                for name, pids in self.groups.items()}

    def start(self):
        self.before = self._read()
        return self

    def stop(self):
        after = self._read()
        self.used = {k: after[k] - self.before.get(k, 0.0) for k in after}
        return self.used


# -- running and reporting

@contextlib.contextmanager
def workspace(prefix, keep=False):
    """A temp dir for configs and logs; SIGTERM ends the run as Ctrl-C
    does, so every ``finally`` runs.  Kept when the run fails."""
    def interrupted(signum, frame):
        raise KeyboardInterrupt('signal %d' % signum)
    old = signal.signal(signal.SIGTERM, interrupted)
    # Even when started in the background with SIGINT ignored.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    ok = False
    try:
        yield path
        ok = True
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
        if ok and not keep:
            shutil.rmtree(path, ignore_errors=True)
        else:
            log('logs and configs kept in %s' % path)


def percentile(values, p):
    """Linear interpolation between closest ranks (as numpy's default)."""
    if not values:
        return float('nan')
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def latency_summary(seconds):
    ms = [s * 1000.0 for s in seconds]
    return {'count': len(ms), 'p50_ms': percentile(ms, 50),
            'p90_ms': percentile(ms, 90), 'p99_ms': percentile(ms, 99),
            'mean_ms': sum(ms) / len(ms) if ms else float('nan'),
            'min_ms': min(ms) if ms else float('nan'),
            'max_ms': max(ms) if ms else float('nan')}


def median(values):
    return percentile(values, 50)


def fmt(value, digits=1):
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return '%.*f' % (digits, value)


def table(headers, rows):
    """Plain text, first column left-aligned, the others right-aligned."""
    cells = [list(headers)] + [[fmt(c) if not isinstance(c, tuple)
                                else fmt(*c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))
    out = [line(cells[0]), '  '.join('-' * w for w in widths)]
    out.extend(line(r) for r in cells[1:])
    return '\n'.join(out)


def machine():
    """What the figures were measured on."""
    try:
        load = '%.1f' % os.getloadavg()[0]
    except OSError:
        load = '?'
    return {'cpus': os.cpu_count(), 'load_1min_at_end': load,
            'python': sys.version.split()[0]}


def bridge_source(source=None):
    """Which bridge code ran: a --bridge-src dir, or the checkout."""
    where = pathlib.Path(source).resolve() if source else ROOT

    def git(*args):
        try:
            return subprocess.run(['git', '-C', str(where)] + list(args),
                                  capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ''
    rev = git('rev-parse', '--short', 'HEAD')
    if not rev:
        return str(where)
    dirty = git('status', '--porcelain', '--', 'bridge')
    return '%s at %s%s' % (where, rev, ' + uncommitted changes in bridge/'
                           if dirty else '')


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def dump_json(data):
    print(json.dumps(_rounded(data), indent=2, sort_keys=True))
