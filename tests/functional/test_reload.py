"""SIGHUP: routes added, changed, removed; a broken config is refused."""

import signal
import textwrap

import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def forward(exchange, keys='guestagent.*'):
    return '''
        direction = to_zaqar
        exchange = %s
        binding_keys = %s
        tenant = context:project_id
        amqp_queue = %s-q
        ''' % (exchange, keys, exchange)


def reverse(exchange, tenant):
    return '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = conductor
        tenants = %s
        allowed_methods = heartbeat
        ''' % (exchange, tenant)


def rewrite(config, routes):
    """The same config (shared sections untouched) with other routes."""
    text = config.read_text()
    head = text[:text.index('\n[route:')]
    metrics = text[text.index('[metrics]'):]
    start = head.index('routes = ')
    end = head.index('\n', start)
    head = head[:start] + 'routes = ' + ', '.join(n for n, _ in routes) + \
        head[end:]
    body = ''.join('\n[route:%s]\n%s\n' % (name, textwrap.dedent(r).strip())
                   for name, r in routes)
    config.write_text(head + '\n' + body + '\n' + metrics)


def sighup(daemon, edit):
    """``edit()`` the config, SIGHUP: the line saying what was reloaded."""
    count = daemon.log().count('Reload')
    edit()
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_log(lambda t: t.count('Reload') > count,
                        what='the reload')
    return [line for line in daemon.log().splitlines()
            if 'Reload' in line][-1]


def hup(daemon, routes, expect):
    last = sighup(daemon, lambda: rewrite(daemon.config, routes))
    assert expect in last, last


def delete_forward_queue(rabbit, exchange):
    """The queue ``forward(exchange)`` names (not write_config's own)."""
    import kombu
    with kombu.Connection(rabbit.kombu_url) as conn:
        conn.default_channel.queue_delete('%s-q' % exchange)


def test_sighup_applies_route_changes(tmp_path, rabbit, zaqar, unique_name):
    ex_a, ex_b = unique_name('ex-a'), unique_name('ex-b')
    tenant = unique_name('tenant')
    config = tmp_path / 'bridge.conf'
    bridgeutil.write_config(config, rabbit, zaqar, [('a', forward(ex_a))])
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        pid_a = daemon.pid_logging('Route a: consuming')
        # Add b: a keeps its worker.
        hup(daemon, [('a', forward(ex_a)), ('b', reverse(ex_b, tenant))],
            expect='added b')
        daemon.wait_for_log(lambda t: 'Route b: connected' in t,
                            what='route b running')
        assert daemon.pid_logging('Route a: consuming') == pid_a
        assert pid_a in daemon.worker_pids()
        # A broken configuration changes nothing.
        hup(daemon, [('a', forward(ex_a)), ('b', reverse(ex_b, tenant)),
             ('c', 'direction = to_zaqar\nexchange = x\ntenant = nope')],
            expect="Reload refused, the running configuration stays: "
                   "route 'c' option 'tenant'")
        assert pid_a in daemon.worker_pids()
        # So is an option the bridge does not know (a misspelling).
        hup(daemon, [('a', textwrap.dedent(forward(ex_a))
                      + 'binding_key = other.*\n'),
                     ('b', reverse(ex_b, tenant))],
            expect="Reload refused, the running configuration stays: "
                   "[route:a] in %s: unknown option binding_key (did you "
                   "mean binding_keys?)" % config)
        assert pid_a in daemon.worker_pids()
        # Change a: it restarts with its new bindings; b is untouched.
        pid_b = daemon.pid_logging('Route b: connected')
        hup(daemon, [('a', forward(ex_a, 'guestagent.*, other.*')),
             ('b', reverse(ex_b, tenant))],
            expect='restarted a')
        bridgeutil.wait_until(lambda: pid_a not in daemon.worker_pids(),
                              what='the old worker of a to stop')
        daemon.wait_for_log(lambda t: t.count('Route a: consuming') == 2,
                            what='a running again')
        assert pid_b in daemon.worker_pids()
        # Remove b.
        hup(daemon, [('a', forward(ex_a, 'guestagent.*, other.*'))],
            expect='removed b')
        bridgeutil.wait_until(lambda: pid_b not in daemon.worker_pids(),
                              what='the worker of b to stop')
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        delete_forward_queue(rabbit, ex_a)


@pytest.mark.slow
def test_sighup_shared_change_restarts_every_route(tmp_path, rabbit, zaqar,
                                                   unique_name):
    """README (SIGHUP): a change to [zaqar] or [amqp] restarts every route;
    a change to one route's section restarts that route only."""
    ex_a, ex_b = unique_name('ex-a'), unique_name('ex-b')
    tenant = unique_name('tenant')
    config = tmp_path / 'bridge.conf'
    routes = [('a', forward(ex_a)), ('b', reverse(ex_b, tenant))]
    bridgeutil.write_config(config, rabbit, zaqar, routes)
    # b passes calls: the internal rpc-replies route runs too.
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(3)

    def pids():
        return (daemon.pid_logging('Route a: consuming'),
                daemon.pid_logging('Route b: connected'))

    def restarted(old, edit, expect):
        """Apply ``edit`` to the config text, SIGHUP: exactly ``expect``
        restarted, each restarted route running again in a new worker."""
        last = sighup(daemon, lambda: config.write_text(
            edit(config.read_text())))
        assert last.endswith('Reloaded the configuration: ' + expect), last
        moved = ('restarted a' in expect, 'restarted b' in expect)

        def applied():
            new, running = pids(), daemon.worker_pids()
            return all((new[i] != old[i]) == moved[i]
                       and new[i] in running
                       and (old[i] in running) != moved[i]
                       for i in (0, 1))
        bridgeutil.wait_until(applied, what=lambda: 'workers %s, old %s, '
                              'new %s' % (daemon.worker_pids(), old, pids()))
        return pids()

    try:
        first = pids()
        # [zaqar]: every route restarts.
        second = restarted(first, lambda text: text.replace(
            '[zaqar]\n', '[zaqar]\nrequest_timeout = 25\n'),
            'restarted a, restarted b, restarted rpc-replies')
        # [amqp]: every route restarts.
        third = restarted(second, lambda text: text + (
            '\n[amqp]\nconnect_timeout = 7\n'),
            'restarted a, restarted b, restarted rpc-replies')
        # Route b only: a keeps its worker.
        fourth = restarted(third, lambda text: text.replace(
            'allowed_methods = heartbeat',
            'allowed_methods = heartbeat, other'), 'restarted b')
        assert fourth[0] == third[0] and fourth[1] != third[1]
        assert 'Traceback' not in daemon.log()
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        delete_forward_queue(rabbit, ex_a)
