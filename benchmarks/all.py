"""Every benchmark in turn, one combined table.

    python -m benchmarks.all [--only forward,rpc,tenants,shovel] [--json]

Runs ``benchmarks.forward``, ``benchmarks.rpc``, ``benchmarks.tenants``
and ``benchmarks.shovel`` one after the other, each as a process of its
own with ``--json`` (their progress goes to stderr as usual), and prints
one table: the bridge's figure, the baseline each benchmark measured in
the same run, their ratio, the goal and whether it is met.  A benchmark
that fails is a row saying so; the others still run.  ``--bridge-src`` and
``--gunicorn`` are handed to every benchmark; ``--extra NAME='ARGS'`` adds
arguments to one (e.g. ``--extra tenants='--rate 1'``).  tenants runs with
``--tenants 10000 --configs doorbell`` unless ``--extra tenants=...`` says
otherwise.
"""

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time

from benchmarks import common

BENCHMARKS = ('forward', 'rpc', 'tenants', 'shovel')
# Issue 16 sets the tenants goals at 10,000 tenant queues (the doorbell
# only: polling them all is what the doorbell is for); --extra tenants=...
# replaces this.
DEFAULT_EXTRA = {'tenants': ['--tenants', '10000', '--configs', 'doorbell']}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.all',
        description='Run the benchmarks, print one combined table.')
    p.add_argument('--only', default=','.join(BENCHMARKS),
                   help='which, in this order (default %(default)s)')
    p.add_argument('--bridge-src', metavar='DIR',
                   default=os.environ.get('BENCH_BRIDGE_SRC'),
                   help='handed to every benchmark (default '
                        '$BENCH_BRIDGE_SRC)')
    p.add_argument('--gunicorn', type=int, metavar='N',
                   help='handed to every benchmark (their default: 2)')
    p.add_argument('--extra', action='append', default=[],
                   metavar='NAME=ARGS',
                   help='more arguments for one benchmark, e.g. '
                        'tenants="--rate 1" (repeatable)')
    p.add_argument('--timeout', type=float, default=900,
                   help='seconds one benchmark may take (default 900)')
    p.add_argument('--save', metavar='FILE',
                   help='also write everything (each benchmark\'s JSON, '
                        'the rows) to FILE as JSON')
    p.add_argument('--json', action='store_true',
                   help='print the benchmarks\' JSON and the combined '
                        'rows as JSON')
    args = p.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(',') if b.strip()]
    if set(args.only) - set(BENCHMARKS):
        p.error('--only takes %s' % ', '.join(BENCHMARKS))
    extra = {}
    for item in args.extra:
        name, _, rest = item.partition('=')
        if name not in BENCHMARKS:
            p.error('--extra NAME=ARGS: NAME is one of %s'
                    % ', '.join(BENCHMARKS))
        extra.setdefault(name, []).extend(shlex.split(rest))
    args.extra = dict(DEFAULT_EXTRA, **extra)
    return args


def run_one(args, name):
    """(data or None, error text or None, seconds)."""
    argv = [sys.executable, '-m', 'benchmarks.%s' % name, '--json']
    if args.bridge_src:
        argv += ['--bridge-src', args.bridge_src]
    if args.gunicorn is not None:
        argv += ['--gunicorn', str(args.gunicorn)]
    argv += args.extra.get(name, [])
    common.log('=== %s: %s' % (name, ' '.join(argv[1:])))
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                            cwd=str(common.ROOT))
    try:
        stdout, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        return None, 'timed out after %.0fs' % args.timeout, args.timeout
    except BaseException:
        # Ctrl-C reaches the child too; SIGTERM does not: pass it on and
        # let it clean up (it stops its servers and deletes its queues).
        stop(proc)
        raise
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        return None, 'failed (exit %d)' % proc.returncode, seconds
    try:
        return json.loads(stdout), None, seconds
    except ValueError:
        return None, 'printed no JSON', seconds


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- rows: (benchmark, bridge, baseline, ratio, goal, met)

def rows_forward(d):
    pinned = ', zaqar-server pinned' if d.get('cpu_pinning') else ''
    if pinned and d.get('rabbitmq') == 'private':
        pinned += ', RabbitMQ not on its CPU'
    rows = [('forward msg/s (bridge / raw zaqarclient%s)' % pinned,
             d['bridge']['msg_per_s'], d['raw']['msg_per_s'], d['ratio'],
             '>= %.1f' % d['goal'], d['goal_met'])]
    if 'cpu_ratio' in d:
        cpu = d['bridge']['cpu_us_per_msg']
        rows.append(('forward CPU us/msg (bridge / zaqar-server)',
                     cpu.get('bridge'), cpu.get('zaqar'), d['cpu_ratio'],
                     '<= %.1f' % d['cpu_goal'], d['cpu_goal_met']))
    return rows


def rows_goals(d):
    """A benchmark that lists its goals itself (``goals`` in its JSON:
    name, bridge, baseline, ratio, goal, met)."""
    return [(g['name'], g['bridge'], g['baseline'], g['ratio'], g['goal'],
             g['met']) for g in d['goals']]


def rows_tenants(d):
    by = {r['config']: r for r in d['results']}
    bell, poll = by.get('doorbell'), by.get('polling')
    drain = d['settings']['drain_timeout'] * 1000

    def goal(r, i):
        return r['goals'][i] if r else None

    def value(r, i):
        if r is None:
            return None
        v = r['goals'][i]['value']
        if isinstance(v, float) and math.isinf(v):
            if r['goals'][i]['name'].startswith('lost ring'):
                return 'never (>%.0f)' % d['settings']['lost_timeout']
            return '>%.0f' % drain
        return v

    def ratio(i):
        a, b = value(bell, i), value(poll, i)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
                and b:
            return a / b
        return None
    first = bell or poll
    labels = ['tenants %s (doorbell / polling)' % g['name']
              for g in first['goals']]
    if any(r.get('disturbed') for r in (bell, poll) if r):
        labels = [label + ' [RabbitMQ disturbed]' for label in labels]
    out = []
    for i, label in enumerate(labels):
        g = goal(bell, i) or goal(poll, i)
        out.append((label, value(bell, i), value(poll, i), ratio(i),
                    g['goal'], bool(bell and bell['goals'][i]['met'])))
    return out


def rows_shovel(d):
    if 'skipped' in d:
        return [('shovel msg/s (bridge forward / rabbitmq_shovel)',
                 'skipped', None, None, '-', None)]
    return [('shovel msg/s (bridge forward / rabbitmq_shovel)',
             d['bridge']['msg_per_s'], d['shovel']['msg_per_s'],
             d['ratio'], '- (reference)', None)]


ROWS = {'forward': rows_forward, 'tenants': rows_tenants,
        'shovel': rows_shovel}


def main(argv=None):
    args = parse_args(argv)

    def interrupted(signum, frame):
        raise KeyboardInterrupt('signal %d' % signum)
    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    results, rows, times = {}, [], {}
    for name in args.only:
        data, error, seconds = run_one(args, name)
        times[name] = seconds
        results[name] = data if data is not None else {'error': error}
        if error:
            common.log('%s: %s' % (name, error))
            rows.append((name, error, None, None, '-', False))
            continue
        rows.extend(rows_goals(data)
                    if isinstance(data.get('goals'), list)
                    else ROWS[name](data))
    total = time.monotonic() - started
    everything = {'benchmarks': results, 'seconds': times,
                  'bridge_source': common.bridge_source(args.bridge_src),
                  'rows': [dict(zip(('benchmark', 'bridge', 'baseline',
                                     'ratio', 'goal', 'met'), r))
                           for r in rows],
                  'machine': common.machine()}
    if args.save:
        with open(args.save, 'w') as f:
            json.dump(everything, f, indent=2, sort_keys=True)
    if args.json:
        common.dump_json(everything)
        return 0

    def num(v):
        if v is None:
            return '-'
        if isinstance(v, str):
            return v
        return '%.0f' % v if abs(v) >= 100 else '%.2f' % v \
            if abs(v) < 10 else '%.1f' % v
    print('All benchmarks: %s (%.0f min); %d CPUs, load %s at the end'
          % (', '.join('%s %.0fs' % (n, times[n]) for n in args.only),
             total / 60, os.cpu_count(), common.machine()[
                 'load_1min_at_end']))
    print('Bridge: %s' % common.bridge_source(args.bridge_src))
    print()
    print(common.table(
        ['benchmark', 'bridge', 'baseline', 'ratio', 'goal', 'met?'],
        [[r[0], num(r[1]), num(r[2]),
          '-' if r[3] is None else '%.2f' % r[3], r[4],
          '-' if r[5] is None else ('met' if r[5] else 'NOT met')]
         for r in rows]))
    print()
    print('baselines: forward = python-zaqarclient posting the same bodies; '
          'rpc = the same call() answered over RabbitMQ plus the Zaqar floor '
          '(post, claim, delete on two queues); tenants = the same '
          'route polling (no doorbell); shovel = rabbitmq_shovel moving '
          'the same messages queue to queue.  Each benchmark\'s own table '
          '(python -m benchmarks.NAME) has the details.')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        common.log('interrupted')
        sys.exit(130)
