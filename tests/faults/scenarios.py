"""Fault scenarios: N messages each way through a running bridge, one fault.

Shared by tests/faults/test_faults.py (which asserts) and
tools/fault-report.py (which prints the table).  Every run counts exactly:
each message carries a sequence number; the receiver records every
delivery, so lost = sent - distinct received and duplicated = received -
distinct received.  Everything targets loopback servers and stops by
itself (bounded waits).

A scenario proves its fault happened: the fault runs in a thread that is
joined and whose error is raised again, and :class:`Faults` checks the
effect in the daemon (its log, its workers' pids and metrics) before the
counts are trusted.  A fault that did not happen fails the scenario
(tests/faults/test_faults.py::test_fault_that_does_not_happen_fails).
The broker is a private node of the test's own
(tests/fixtures/rabbit_node.py): the RabbitMQ restart stops it, never
the machine's shared broker.
"""

import dataclasses
import json
import os
import pathlib
import re
import signal
import threading
import time
import uuid

import kombu
from prometheus_client import mmap_dict

from tests.fixtures import servers
from tests.functional import bridgeutil

FORWARD = 'to_zaqar'
REVERSE = 'to_amqp'
PREFETCH = 50
CLAIM_LIMIT = 20
WORKERS = 2
# Workers that log "ready": forward and reverse routes, plus rpc-replies.
READY = 2 * WORKERS + 1


@dataclasses.dataclass
class Result:
    scenario: str
    direction: str
    sent: int
    received: int = 0
    distinct: int = 0
    recovery: float = 0.0   # fault lifted -> first delivery after it
    seconds: float = 0.0
    rss_before_mib: float = 0.0
    rss_peak_mib: float = 0.0
    dead_lettered: int = 0

    @property
    def lost(self):
        return self.sent - self.distinct

    @property
    def duplicated(self):
        return self.received - self.distinct

    @property
    def window(self):
        """Messages a bridge may hold unfinished: the duplicate bound."""
        per_worker = PREFETCH if self.direction == FORWARD else CLAIM_LIMIT
        return per_worker * WORKERS


def rss_mib(pids):
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path('/proc/%d/status' % pid).read_text() \
                    .splitlines():
                if line.startswith('VmRSS:'):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1024.0


class Receiver:
    """Counts deliveries by sequence number, in a thread."""

    def __init__(self):
        self.seen = {}
        self.times = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def record(self, seq):
        with self.lock:
            self.seen[seq] = self.seen.get(seq, 0) + 1
            self.times.append(time.monotonic())

    def counts(self):
        with self.lock:
            return sum(self.seen.values()), len(self.seen)

    def first_after(self, t0):
        """Seconds from ``t0`` to the first delivery after it."""
        with self.lock:
            later = [t for t in self.times if t > t0]
        return min(later) - t0 if later else float('nan')


class ZaqarReceiver(Receiver):
    """The guest side of the forward direction: claims and deletes."""

    def __init__(self, zaqar, tenant, queue):
        super().__init__()
        self.queue = zaqar.client(tenant).queue(queue)

    def run(self):
        while not self.stop.is_set():
            try:
                messages = list(self.queue.claim(ttl=60, grace=60, limit=20))
                for m in messages:
                    self.record(m.body['message']['args']['seq'])
                if messages:
                    self.queue.delete_messages(*[m.id for m in messages])
                else:
                    time.sleep(0.05)
            except Exception:
                time.sleep(0.5)   # zaqar-server is down in that scenario


class AmqpReceiver(Receiver):
    """The control-plane side of the reverse direction."""

    def __init__(self, rabbit, exchange, routing_key):
        super().__init__()
        self.rabbit = rabbit
        self.exchange = exchange
        self.routing_key = routing_key
        self.queue_name = 'fault-rx-%s' % uuid.uuid4().hex[:12]

    def declare(self):
        with kombu.Connection(self.rabbit.kombu_url) as conn:
            self._queue()(conn.default_channel).declare()

    def _queue(self):
        exchange = kombu.Exchange(self.exchange, 'topic', durable=True)
        return kombu.Queue(self.queue_name, exchange,
                           routing_key=self.routing_key, durable=True)

    def on_message(self, body, message):
        msg = json.loads(body['oslo.message']) if isinstance(body, dict) \
            else json.loads(json.loads(body)['oslo.message'])
        self.record(msg['args']['seq'])
        message.ack()

    def run(self):
        while not self.stop.is_set():
            try:
                with kombu.Connection(self.rabbit.kombu_url) as conn:
                    with conn.Consumer(self._queue(), callbacks=[
                            self.on_message], accept=['json']):
                        while not self.stop.is_set():
                            try:
                                conn.drain_events(timeout=0.5)
                            except TimeoutError:
                                pass
            except Exception:
                time.sleep(0.5)   # RabbitMQ restarting in that scenario

    def delete(self):
        with kombu.Connection(self.rabbit.kombu_url) as conn:
            conn.default_channel.queue_delete(self.queue_name)


def publish_forward(rabbit, exchange, tenant, count, pace):
    """Publish oslo 2.0 casts with kombu, retrying through outages.

    With publisher confirms: without them a cast written just before
    RabbitMQ stops is lost by the test itself, and counted against the
    bridge.  A cast retried after a lost confirm may arrive twice.
    """
    with kombu.Connection(rabbit.kombu_url,
                          transport_options={'confirm_publish': True}) \
            as conn:
        ex = kombu.Exchange(exchange, 'topic', durable=True)
        producer = conn.Producer()
        publish = conn.ensure(producer, producer.publish, max_retries=None,
                              interval_start=0.5, interval_max=2)
        for seq in range(count):
            msg = {'method': 'm', 'args': {'seq': seq},
                   '_unique_id': 'f%d' % seq,
                   '_context_project_id': tenant}
            publish({'oslo.version': '2.0', 'oslo.message': json.dumps(msg)},
                    exchange=ex, routing_key='guestagent.fault',
                    declare=[ex], delivery_mode=2)
            pace(seq)


def post_reverse(zaqar, tenant, queue, count, pace):
    """Post heartbeats into the tenant's queue, 20 per POST."""
    q = zaqar.client(tenant).queue(queue)
    for start in range(0, count, 20):
        batch = [{'ttl': 3600, 'body': {'bridge': 1, 'message': {
            'method': 'heartbeat', 'args': {'seq': seq},
            '_unique_id': 'r%d' % seq}}}
            for seq in range(start, min(count, start + 20))]
        while True:
            try:
                q.post(batch)
                break
            except Exception:
                time.sleep(0.5)  # zaqar-server is down in that scenario
        for seq in range(start, start + len(batch)):
            pace(seq)


class FaultNotSeen(AssertionError):
    """The fault did not take effect; the run's counts mean nothing."""

    def __init__(self, result, why):
        super().__init__('%s (%s): the fault did not happen: %s' % (
            result.scenario, result.direction, why))
        self.result = result


class FaultThread(threading.Thread):
    """Runs a fault mid-stream; :meth:`result` joins it and raises again
    whatever it raised (a failed rabbitmqctl, a pytest.skip...)."""

    def __init__(self, act):
        super().__init__(daemon=True, name='fault')
        self.act = act
        self.error = None
        self.lifted = None

    def run(self):
        try:
            self.act()
            self.lifted = time.monotonic()
        except BaseException as exc:   # pytest's outcomes are BaseException
            self.error = exc

    def result(self, timeout):
        """The time the fault was lifted."""
        self.join(timeout)
        if self.is_alive():
            raise AssertionError('the fault was not lifted within %ds'
                                 % timeout)
        if self.error is not None:
            raise self.error
        return self.lifted


def route_lines(log, route, pattern):
    """Log lines of ``route``'s workers matching ``pattern`` (regex)."""
    return [m.group(0) for m in re.finditer(
        r'^.*Route %s: (?:%s).*$' % (route, pattern), log, re.M)]


def pid_of(line):
    return int(line.split()[2])


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def in_flight(metrics_dir, pid):
    """The ``bridge_in_flight`` gauge of worker ``pid`` (its own file)."""
    path = pathlib.Path(metrics_dir) / ('gauge_livesum_%d.db' % pid)
    values = mmap_dict.MmapedDict.read_all_values_from_file(str(path))
    return sum(value for key, value, *_ in values
               if json.loads(key)[0] == 'bridge_in_flight')


class Faults:
    """The four faults and the proof that each happened.

    A fault method (``kill_worker``...) injects the fault and returns when
    it is lifted; its ``check_*`` method then asserts the fault took
    effect, from what the daemon shows (log, pids, metrics) against
    :meth:`before`, so a fault that does nothing fails the check.
    """

    def __init__(self, daemon, rabbit, zaqar, route, metrics_dir):
        self.daemon = daemon
        self.rabbit = rabbit
        self.zaqar = zaqar
        self.route = route
        self.metrics_dir = metrics_dir
        self.held = None   # what the killed worker held
        # Set by a fault once in effect (the kill: at once): the stream
        # goes on from there.
        self.started = threading.Event()

    def before(self):
        """What the daemon looks like before the fault."""
        self.mark = len(self.daemon.log())
        self.master = self.daemon.proc.pid
        self.workers = set(self.daemon.worker_pids())
        self.route_pids = self.ready_pids()

    def ready_pids(self, log=None):
        log = self.daemon.log() if log is None else log
        return {pid_of(line) for line in route_lines(
            log, self.route, '(consuming queue|connected to RabbitMQ)')}

    def since_fault(self):
        return self.daemon.log()[self.mark:]

    # -- kill -9 worker

    def kill_worker(self, timeout=60):
        """SIGKILL a worker of the route while it holds messages.

        The stream goes on meanwhile (a worker holds messages only while
        they flow; a to_amqp worker only if its shard has the tenant).
        Each worker in turn is stopped (SIGSTOP) while its in-flight gauge
        is read, so the count is what it holds when it is killed; one
        caught holding nothing is let go and another tried.
        """
        self.started.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in sorted(self.route_pids):
                os.kill(pid, signal.SIGSTOP)
                try:
                    held = in_flight(self.metrics_dir, pid)
                except BaseException:
                    os.kill(pid, signal.SIGCONT)
                    raise
                if held:
                    os.kill(pid, signal.SIGKILL)
                    self.held = (pid, held)
                    return
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError('no worker of route %s (%s) held a message in '
                             '%ds' % (self.route, sorted(self.route_pids),
                                      timeout))

    def check_kill_worker(self):
        gone = {pid for pid in self.route_pids if not alive(pid)}
        assert gone, 'no worker of route %s died (pids %s)' % (
            self.route, sorted(self.route_pids))
        new = bridgeutil.wait_until(
            lambda: self.ready_pids(self.since_fault()) - self.route_pids,
            timeout=60, what='a new worker of route %s' % self.route)
        assert all(alive(pid) for pid in new), new
        assert self.held and self.held[0] in gone and self.held[1] > 0, \
            'the killed worker held no unacknowledged message: %s' % (
                self.held,)

    # -- RabbitMQ restart

    def rabbitmq_restart(self):
        """Stop the (private) broker's app for 2 s, then start it again."""
        self.rabbit.stop_app()
        try:
            assert not self.rabbit.answers(), 'RabbitMQ still answers'
            self.started.set()
            time.sleep(2)
        finally:
            self.rabbit.start_app()

    def check_rabbitmq_restart(self):
        self.check_outage('RabbitMQ (unreachable|unavailable)')

    def check_outage(self, pattern):
        assert route_lines(self.since_fault(), self.route, pattern), \
            'route %s did not see the outage (no "%s" in its log)' % (
                self.route, pattern)
        bridgeutil.wait_until(
            lambda: route_lines(self.since_fault(), self.route, '.* is back|'
                                'consuming queue|connected to RabbitMQ'),
            timeout=60, what='route %s to log its recovery' % self.route)

    # -- zaqar-server down 30 s

    def zaqar_down(self, seconds=30):
        with self.zaqar.stopped():
            assert not self.zaqar_answers(), 'zaqar-server still answers'
            self.started.set()
            time.sleep(seconds)

    def zaqar_answers(self):
        import requests
        try:
            requests.get(self.zaqar.url + '/v2/', timeout=2)
            return True
        except requests.RequestException:
            return False

    def check_zaqar_down(self):
        self.check_outage('Zaqar (unreachable|unavailable)')

    # -- daemon SIGTERM + restart

    def daemon_restart(self):
        assert self.daemon.stop() == 0
        self.started.set()
        self.daemon.start(2 * READY)   # the log holds both runs

    def check_daemon_restart(self):
        assert self.daemon.proc.pid != self.master, 'the daemon never ' \
            'stopped (same master pid %d)' % self.master
        workers = set(self.daemon.worker_pids())
        assert workers and not workers & self.workers, \
            'workers not restarted: before %s, after %s' % (
                sorted(self.workers), sorted(workers))
        assert not alive(self.master)


# scenario -> the Faults method injecting it
SCENARIOS = {'kill -9 worker': 'kill_worker',
             'RabbitMQ restart': 'rabbitmq_restart',
             'zaqar-server down 30s': 'zaqar_down',
             'daemon SIGTERM + restart': 'daemon_restart'}


def config_for(tmp_path, rabbit, zaqar, names):
    """Two routes of the scenario's own; its own dead letters and metrics
    directory (to read one worker's gauges)."""
    extra = bridgeutil.dead_letter_section(names['dlq']) + \
        '\n[metrics]\nport = %d\nmultiproc_dir = %s\n' % (
            servers.free_port(), tmp_path / 'metrics')
    return bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar, [
        ('fwd', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            exchange_durable = true
            tenant = context:project_id
            prefetch = %d
            workers = %d
            retry_max_interval = 2
            ''' % (names['exchange'], PREFETCH, WORKERS)),
        ('rev', '''
            direction = to_amqp
            exchange = %s
            exchange_durable = true
            zaqar_queue = %s
            routing_key = %s
            tenants = %s
            allowed_methods = heartbeat
            claim_limit = %d
            claim_ttl = 60
            poll_interval = 0.2
            workers = %d
            retry_max_interval = 2
            ''' % (names['exchange'], names['conductor'], names['conductor'],
                   names['tenant'], CLAIM_LIMIT, WORKERS)),
    ], extra=extra)


def clean_broker(rabbit, config, names):
    """Delete what the scenario declared; return the dead letters'
    count."""
    with kombu.Connection(rabbit.kombu_url) as conn:
        channel = conn.default_channel
        try:
            dead = channel.queue_declare(names['dlq'], passive=True)
            dead = dead.message_count
        except conn.channel_errors:
            dead = 0
            channel = conn.channel()
        bridgeutil.delete_queues(rabbit, config)   # with the dead letters
        channel.exchange_delete(names['exchange'])
    return dead


def run(scenario, direction, rabbit, zaqar, tmp_path, count=10000,
        timeout=600, faults=Faults):
    """Run one scenario one way; return its Result.

    ``rabbit``: a private node (tests/fixtures/rabbit_node.py), which the
    RabbitMQ restart stops.  ``faults``: the :class:`Faults` class (a
    test gives one whose faults do not happen).  Raises what the fault
    raised, or AssertionError if it did not take effect.
    """
    names = {'exchange': 'fault-%s' % uuid.uuid4().hex[:12],
             'dlq': 'fault-dead-letters-%s' % uuid.uuid4().hex[:12],
             'tenant': 'fault-tenant-%s' % uuid.uuid4().hex[:12],
             'conductor': 'fault-conductor-%s' % uuid.uuid4().hex[:8]}
    config = config_for(tmp_path, rabbit, zaqar, names)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log')
    route = 'fwd' if direction == FORWARD else 'rev'
    fault = faults(daemon, rabbit, zaqar, route, tmp_path / 'metrics')
    act = getattr(fault, SCENARIOS[scenario])
    check = getattr(fault, 'check_' + SCENARIOS[scenario])
    if direction == FORWARD:
        receiver = ZaqarReceiver(zaqar, names['tenant'], 'guestagent_fault')
    else:
        receiver = AmqpReceiver(rabbit, names['exchange'],
                                names['conductor'])
    result = Result(scenario, direction, count)
    rx = threading.Thread(target=receiver.run, daemon=True)
    fault_thread = FaultThread(act)
    fault_at = count // 3

    def pace(seq):
        if seq == fault_at:
            # The fault happens mid-stream, while messages are flowing,
            # and the rest flows once it is in effect.
            fault.before()
            fault_thread.start()
            while fault_thread.is_alive() and not fault.started.wait(0.1):
                pass
        if seq % 200 == 0:
            result.rss_peak_mib = max(result.rss_peak_mib,
                                      rss_mib(daemon.worker_pids()))

    try:
        daemon.start(READY)
        if direction == REVERSE:
            receiver.declare()
        result.rss_before_mib = rss_mib(daemon.worker_pids())
        rx.start()
        t0 = time.monotonic()
        if direction == FORWARD:
            publish_forward(rabbit, names['exchange'], names['tenant'],
                            count, pace)
        else:
            post_reverse(zaqar, names['tenant'], names['conductor'], count,
                         pace)
        lifted = fault_thread.result(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result.rss_peak_mib = max(result.rss_peak_mib,
                                      rss_mib(daemon.worker_pids()))
            if receiver.counts()[1] >= count:
                break
            time.sleep(0.5)
        time.sleep(2)   # late duplicates
        result.seconds = time.monotonic() - t0
        result.received, result.distinct = receiver.counts()
        result.recovery = receiver.first_after(lifted)
        try:
            check()
        except AssertionError as exc:
            raise FaultNotSeen(result, exc) from exc
    finally:
        if fault_thread.is_alive():   # the servers come back before cleanup
            fault_thread.join(timeout)
        receiver.stop.set()
        rx.join(10)
        try:
            daemon.stop(timeout=60)
        finally:
            result.dead_lettered = clean_broker(rabbit, config, names)
            if isinstance(receiver, AmqpReceiver):
                receiver.delete()
    return result


def table(results):
    head = ('scenario', 'direction', 'sent', 'received', 'lost',
            'duplicated', 'dup bound', 'dead-lettered', 'recovery s',
            'workers RSS MiB before/peak')
    rows = [(r.scenario, r.direction, r.sent, r.received, r.lost,
             r.duplicated, r.window, r.dead_lettered, '%.1f' % r.recovery,
             '%.0f/%.0f' % (r.rss_before_mib, r.rss_peak_mib))
            for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ['  '.join(str(x).ljust(w) for x, w in zip(head, widths)),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(str(x).ljust(w) for x, w in zip(row, widths))
              for row in rows]
    return '\n'.join(lines)
