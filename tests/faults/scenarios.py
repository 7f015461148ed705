"""Fault scenarios: N messages each way through a running bridge, one fault.

Shared by tests/faults/test_faults.py (which asserts) and
tools/fault-report.py (which prints the table).  Every run counts exactly:
each message carries a sequence number; the receiver records every
delivery, so lost = sent - distinct received and duplicated = received -
distinct received.  Everything targets loopback servers and stops by
itself (bounded waits).
"""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import threading
import time
import uuid

import kombu

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


def rabbitmqctl(*args):
    subprocess.run(['rabbitmqctl'] + list(args), check=True,
                   capture_output=True, timeout=120)


class Faults:
    """The four faults; each returns when the fault is lifted."""

    def __init__(self, daemon, zaqar, route):
        self.daemon = daemon
        self.zaqar = zaqar
        self.route = route

    def kill_worker(self):
        pid = self.daemon.pid_logging('Route %s:' % self.route)
        os.kill(pid, signal.SIGKILL)

    def rabbitmq_restart(self):
        rabbitmqctl('stop_app')
        time.sleep(2)
        rabbitmqctl('start_app')

    def zaqar_down(self, seconds=30):
        self.zaqar.stop()
        try:
            time.sleep(seconds)
        finally:
            self.zaqar.start()

    def daemon_restart(self):
        assert self.daemon.stop() == 0
        self.daemon.start(2 * READY)   # the log holds both runs


SCENARIOS = ('kill -9 worker', 'RabbitMQ restart', 'zaqar-server down 30s',
             'daemon SIGTERM + restart')


def config_for(tmp_path, rabbit, zaqar, names):
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
    ])


def run(scenario, direction, rabbit, zaqar, tmp_path, count=10000,
        timeout=600):
    """Run one scenario one way; return its Result."""
    names = {'exchange': 'fault-%s' % uuid.uuid4().hex[:12],
             'tenant': 'fault-tenant-%s' % uuid.uuid4().hex[:12],
             'conductor': 'fault-conductor-%s' % uuid.uuid4().hex[:8]}
    config = config_for(tmp_path, rabbit, zaqar, names)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log')
    daemon.start(READY)
    route = 'fwd' if direction == FORWARD else 'rev'
    faults = Faults(daemon, zaqar, route)
    act = {SCENARIOS[0]: faults.kill_worker,
           SCENARIOS[1]: faults.rabbitmq_restart,
           SCENARIOS[2]: faults.zaqar_down,
           SCENARIOS[3]: faults.daemon_restart}[scenario]
    if direction == FORWARD:
        receiver = ZaqarReceiver(zaqar, names['tenant'], 'guestagent_fault')
    else:
        receiver = AmqpReceiver(rabbit, names['exchange'],
                                names['conductor'])
        receiver.declare()
    result = Result(scenario, direction, count)
    result.rss_before_mib = rss_mib(daemon.worker_pids())
    rx = threading.Thread(target=receiver.run, daemon=True)
    rx.start()
    fault_at = count // 3
    lifted = {}

    def pace(seq):
        if seq == fault_at:
            # The fault happens mid-stream, while messages are flowing.
            threading.Thread(target=lambda: (act(), lifted.setdefault(
                't', time.monotonic())), daemon=True).start()
        if seq % 200 == 0:
            result.rss_peak_mib = max(result.rss_peak_mib,
                                      rss_mib(daemon.worker_pids()))

    t0 = time.monotonic()
    try:
        if direction == FORWARD:
            publish_forward(rabbit, names['exchange'], names['tenant'],
                            count, pace)
        else:
            post_reverse(zaqar, names['tenant'], names['conductor'], count,
                         pace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result.rss_peak_mib = max(result.rss_peak_mib,
                                      rss_mib(daemon.worker_pids()))
            if 't' in lifted and receiver.counts()[1] >= count:
                break
            time.sleep(0.5)
        time.sleep(2)   # late duplicates
        result.seconds = time.monotonic() - t0
        result.received, result.distinct = receiver.counts()
        if 't' in lifted:
            result.recovery = receiver.first_after(lifted['t'])
    finally:
        receiver.stop.set()
        rx.join(10)
        daemon.stop(timeout=60)
        bridgeutil.delete_queues(rabbit, config)
        if isinstance(receiver, AmqpReceiver):
            receiver.delete()
    return result


def table(results):
    head = ('scenario', 'direction', 'sent', 'received', 'lost',
            'duplicated', 'dup bound', 'recovery s',
            'workers RSS MiB before/peak')
    rows = [(r.scenario, r.direction, r.sent, r.received, r.lost,
             r.duplicated, r.window, '%.1f' % r.recovery,
             '%.0f/%.0f' % (r.rss_before_mib, r.rss_peak_mib))
            for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ['  '.join(str(x).ljust(w) for x, w in zip(head, widths)),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(str(x).ljust(w) for x, w in zip(row, widths))
              for row in rows]
    return '\n'.join(lines)
