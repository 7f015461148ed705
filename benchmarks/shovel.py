"""The reference a RabbitMQ operator knows: a shovel, beside the bridge.

    python -m benchmarks.shovel [-n 5000] [--rounds 3] [--json] ...

Two rows, measured in the same run with the same N AMQP bodies (~200-byte
oslo.messaging casts, persistent, as benchmarks.forward builds them):

* **rabbitmq_shovel** (the reference): a dynamic shovel (``rabbitmqctl
  set_parameter shovel ...``, ``ack-mode`` ``on-confirm``, source and
  destination on this node) moves the messages from one durable queue to
  another;
* **bridge forward**: benchmarks.forward's bridge round: a ``to_zaqar``
  route (``--workers``, default 2) moves them into a tenant's Zaqar queue.

msg/s is taken the same way for both: from the first message published to
the last one arrived (the destination queue's depth, asked every 5 ms, or
the Zaqar queue's size in Redis), while the mover runs all along.  Median
of ``--rounds`` (the two take turns going first).

The plugin is enabled for the run if it is not already (``rabbitmq-plugins
enable rabbitmq_shovel``) and disabled again afterwards; the shovel and its
queues are deleted.  Where the plugin can't be enabled, the run says so and
exits 0.
"""

import argparse
import json
import os
import shutil
import subprocess
import time
import urllib.parse

from benchmarks import common
from benchmarks import forward
from tests.fixtures import servers

PLUGIN = 'rabbitmq_shovel'


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.shovel',
        description='rabbitmq_shovel queue-to-queue against the bridge\'s '
                    'forward path, same messages, same run.')
    p.add_argument('-n', '--messages', type=int, default=5000,
                   help='messages per round (default 5000)')
    p.add_argument('--body-size', type=int, default=200,
                   help='bytes of each AMQP body (default 200)')
    p.add_argument('--rounds', type=int, default=3,
                   help='rounds of each; the median is reported (default 3)')
    p.add_argument('-w', '--workers', type=int, default=2,
                   help='bridge workers (default 2)')
    p.add_argument('--prefetch', type=int, default=1000,
                   help='the shovel\'s src-prefetch-count (default 1000, '
                        'the plugin\'s default)')
    p.add_argument('--shovel-uri', default='amqp://',
                   help='src-uri and dest-uri of the shovel (default '
                        'amqp://, this node without TCP, as an operator '
                        'shovels between local queues)')
    p.add_argument('--timeout', type=float, default=120,
                   help='seconds a round may take before the run fails')
    p.add_argument('--keep-plugin', action='store_true',
                   help='leave rabbitmq_shovel enabled if this run enabled '
                        'it')
    common.add_run_options(
        p, 'run the daemon with the bridge package of this checkout',
        gunicorn_help='serve Zaqar with N gunicorn sync workers; 0: wsgiref '
                      '(default 2)')
    args = p.parse_args(argv)
    if min(args.messages, args.rounds, args.workers) < 1:
        p.error('counts must be at least 1')
    return args


# -- the plugin and rabbitmqctl

def ctl(*args, tool='rabbitmqctl', timeout=120):
    """Run a RabbitMQ CLI; (ok, output)."""
    path = shutil.which(tool)
    if path is None:
        return False, '%s is not on PATH' % tool
    try:
        out = subprocess.run([path] + list(args), capture_output=True,
                             text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    text = (out.stdout + out.stderr).strip()
    return out.returncode == 0, text


def plugin_enabled():
    ok, text = ctl('list', '--enabled', '--minimal', tool='rabbitmq-plugins')
    return ok and PLUGIN in text.split()


def enable_plugin():
    """(enabled by us, why not) -- why not is None when it is enabled."""
    if plugin_enabled():
        return False, None
    host = urllib.parse.urlsplit(common.RABBIT_URL).hostname
    if host not in ('127.0.0.1', 'localhost', '::1'):
        return False, 'the broker (%s) is not this machine\'s' % host
    common.log('enabling %s' % PLUGIN)
    ok, text = ctl('enable', PLUGIN, tool='rabbitmq-plugins')
    if not ok or not plugin_enabled():
        return False, 'rabbitmq-plugins enable %s failed: %s' % (
            PLUGIN, text.splitlines()[-1] if text else '?')
    return True, None


def disable_plugin():
    common.log('disabling %s again' % PLUGIN)
    ok, text = ctl('disable', PLUGIN, tool='rabbitmq-plugins')
    if not ok:
        common.log('could not disable %s: %s' % (PLUGIN, text))


# -- the shovel

class Shovel:
    def __init__(self, args, run):
        self.args = args
        self.name = 'bench-%s-shovel' % run
        self.src = 'bench-%s-shovel-src' % run
        self.dst = 'bench-%s-shovel-dst' % run
        self.created = False
        self.conn = None
        self.channel = None
        self.counting = None

    def start(self, timeout=60):
        import amqp
        url = servers.kombu_url(common.RABBIT_URL)
        rest = url.split('://', 1)[1].rstrip('/')
        creds, host = rest.rsplit('@', 1)
        user, password = creds.split(':', 1)
        self.conn = amqp.Connection(host, userid=user, password=password)
        self.conn.connect()
        self.channel = self.conn.channel()
        self.counting = self.conn.channel()
        for queue in (self.src, self.dst):
            self.channel.queue_declare(queue, durable=True,
                                       auto_delete=False)
        definition = {'src-protocol': 'amqp091',
                      'src-uri': self.args.shovel_uri,
                      'src-queue': self.src,
                      'src-prefetch-count': self.args.prefetch,
                      'dest-protocol': 'amqp091',
                      'dest-uri': self.args.shovel_uri,
                      'dest-queue': self.dst,
                      'ack-mode': 'on-confirm'}
        ok, text = ctl('set_parameter', 'shovel', self.name,
                       json.dumps(definition))
        if not ok:
            raise common.BenchError('rabbitmqctl set_parameter shovel: %s'
                                    % text)
        self.created = True
        # Running once a message goes through.
        base = self.depth()
        self.publish(self.message(b'{"probe": true}'))
        deadline = time.monotonic() + timeout
        while self.depth() < base + 1:
            if time.monotonic() > deadline:
                raise common.BenchError('the shovel did not start moving '
                                        'messages in %ds: %s' % (
                                            timeout, ctl('shovel_status')[1]))
            time.sleep(0.05)
        return self

    @staticmethod
    def message(body):
        import amqp
        return amqp.Message(body, content_type='application/json',
                            content_encoding='utf-8', delivery_mode=2)

    def publish(self, message):
        self.channel.basic_publish(message, exchange='',
                                   routing_key=self.src)

    def depth(self):
        _, count, _ = self.counting.queue_declare(self.dst, passive=True)
        return count

    def round(self, bodies):
        n = len(bodies)
        messages = [self.message(b) for b in bodies]
        base = self.depth()
        meter = common.CpuMeter({
            'rabbitmq': common.pids_named('beam.smp'),
            'clients': [os.getpid()]}).start()
        t0 = time.monotonic()
        for message in messages:
            self.publish(message)
        published = time.monotonic() - t0
        deadline = t0 + self.args.timeout
        while True:
            now = time.monotonic()
            if self.depth() >= base + n:
                break
            if now > deadline:
                raise common.BenchError('the shovel moved %d of %d in %ds'
                                        % (self.depth() - base, n,
                                           self.args.timeout))
            time.sleep(0.005)
        seconds = now - t0
        cpu = meter.stop()
        return {'msgs': n, 'seconds': seconds, 'msg_per_s': n / seconds,
                'publish_seconds': published,
                'cpu_us_per_msg': {k: v * 1e6 / n for k, v in cpu.items()}}

    def stop(self):
        if self.created:
            ok, text = ctl('clear_parameter', 'shovel', self.name)
            if not ok:
                common.log('could not delete the shovel %s: %s'
                           % (self.name, text))
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        common.delete_amqp([self.src, self.dst])


# -- the run

def forward_args(args):
    argv = ['-n', str(args.messages), '--workers', str(args.workers),
            '--rounds', '1', '--latency-messages', '0',
            '--body-size', str(args.body_size),
            '--gunicorn', str(args.gunicorn),
            '--timeout', str(args.timeout)]
    if args.bridge_src:
        argv += ['--bridge-src', args.bridge_src]
    return forward.parse_args(argv)


def run(args, workdir, dbids):
    run_id = common.run_id()
    fargs = forward_args(args)
    zaqar = common.Zaqar(workdir, dbids, args.gunicorn)
    bench = forward.Bench(fargs, workdir, zaqar, dbids, run_id)
    shovel = Shovel(args, run_id)
    bodies = [bench.work.amqp_body(bench.work.message(i, 0.0))
              for i in range(args.messages)]
    rows = {'shovel': [], 'bridge': []}
    try:
        common.log('starting the shovel %s (ack-mode on-confirm, %s)'
                   % (shovel.name, args.shovel_uri))
        shovel.start()
        common.log('starting %s (redis dbs %d,%d)'
                   % (zaqar.describe(), *dbids))
        zaqar.start()
        common.log('starting the bridge (%d worker(s))' % args.workers)
        bench.start_bridge()
        bench.warm_up()
        for r in range(args.rounds):
            order = ['shovel', 'bridge'] if r % 2 == 0 else \
                ['bridge', 'shovel']
            for which in order:
                if which == 'shovel':
                    got = shovel.round(bodies)
                else:
                    got = bench.bridge_round('tp-shovel-%d' % r)
                rows[which].append(got)
                common.log('round %d %-6s %6.0f msg/s (%.2fs)'
                           % (r + 1, which, got['msg_per_s'],
                              got['seconds']))
        dead = bench.dead_letters()
        if dead:
            raise common.BenchError('%d message(s) were dead-lettered; see '
                                    '%s' % (dead, bench.daemon.log_path))
    finally:
        shovel.stop()
        bench.stop_bridge()
        zaqar.stop()
        zaqar.flush()
    return zaqar, rows


def report(args, zaqar, rows):
    def med(key, which):
        return common.median([r[key] for r in rows[which]])

    def cpu(which):
        keys = sorted({k for r in rows[which] for k in r['cpu_us_per_msg']})
        return {k: common.median([r['cpu_us_per_msg'].get(k, 0.0)
                                  for r in rows[which]]) for k in keys}
    shovel_rate = med('msg_per_s', 'shovel')
    bridge_rate = med('msg_per_s', 'bridge')
    data = {'benchmark': 'shovel', 'zaqar_server': zaqar.describe(),
            'bridge_source': common.bridge_source(args.bridge_src),
            'settings': {k: v for k, v in vars(args).items()
                         if k not in ('json', 'keep')},
            'shovel': {'rounds': rows['shovel'], 'msg_per_s': shovel_rate,
                       'seconds': med('seconds', 'shovel'),
                       'publish_seconds': med('publish_seconds', 'shovel'),
                       'cpu_us_per_msg': cpu('shovel')},
            'bridge': {'rounds': rows['bridge'], 'msg_per_s': bridge_rate,
                       'seconds': med('seconds', 'bridge'),
                       'publish_seconds': med('publish_seconds', 'bridge'),
                       'cpu_us_per_msg': cpu('bridge')},
            'ratio': bridge_rate / shovel_rate,
            'machine': common.machine()}
    if args.json:
        common.dump_json(data)
        return data
    print('Shovel reference: %d x %d-byte persistent casts, median of %d '
          'round(s)' % (args.messages, args.body_size, args.rounds))
    print('Shovel: dynamic, ack-mode on-confirm, %s -> %s, prefetch %d; '
          'bridge: to_zaqar, %d worker(s)'
          % (args.shovel_uri, args.shovel_uri, args.prefetch, args.workers))
    print('Zaqar: %s; %d CPUs, load %s' % (
        zaqar.describe(), os.cpu_count(),
        data['machine']['load_1min_at_end']))
    print('Bridge: %s' % data['bridge_source'])
    print()
    print(common.table(
        ['', 'msgs', 'publish s', 'seconds', 'msg/s'],
        [['rabbitmq_shovel queue -> queue', args.messages,
          (data['shovel']['publish_seconds'], 2),
          (data['shovel']['seconds'], 2), (shovel_rate, 0)],
         ['bridge forward AMQP -> Zaqar', args.messages,
          (data['bridge']['publish_seconds'], 2),
          (data['bridge']['seconds'], 2), (bridge_rate, 0)]]))
    print()
    print('ratio bridge/shovel (msg/s): %.2f   (a reference, no goal)'
          % data['ratio'])
    print('seconds: first publish -> last message arrived; publish s: the '
          'publisher alone (py-amqp, one channel, no confirms)')
    for name in ('shovel', 'bridge'):
        print('CPU us/msg (%s, median): %s' % (name, ', '.join(
            '%s %.0f' % kv for kv in sorted(data[name]['cpu_us_per_msg']
                                            .items()))))
    return data


def skipped(args, why):
    text = ('shovel benchmark skipped: the %s plugin cannot be enabled '
            '(%s)' % (PLUGIN, why))
    if args.json:
        common.dump_json({'benchmark': 'shovel', 'skipped': text})
    else:
        print(text)
    return 0


def main(argv=None):
    args = parse_args(argv)
    enabled_here, why = enable_plugin()
    if why:
        return skipped(args, why)
    try:
        with common.workspace('bench-shovel-', args.keep) as workdir, \
                common.redis_dbs() as dbids:
            zaqar, rows = run(args, workdir, dbids)
            report(args, zaqar, rows)
    finally:
        if enabled_here and not args.keep_plugin:
            disable_plugin()
    return 0


if __name__ == '__main__':
    common.run_main(main)
