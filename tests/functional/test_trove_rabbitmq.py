"""Trove next to the bridge: the queues Trove leaves on RabbitMQ.

Trove's ``API.prepare()`` and ``rebuild()`` start and stop an RPC server
(``_create_guest_queue()``): ``guestagent.<id>`` and
``guestagent.<id>.<id>`` stay with no consumer.  Each test gets a private
vhost on the broker (``rabbitmqctl add_vhost``; deleted after), so
policies never touch the shared default vhost.
"""

import json
import os
import pathlib
import shlex
import subprocess

import kombu
import oslo_messaging
import pytest

from bridge.amqp import connection as amqp_connection
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional

ROOT = pathlib.Path(__file__).resolve().parents[2]
POLICY_NAME = 'bridge-guestagent'


class Vhost:
    def __init__(self, rabbit, name):
        self.rabbit, self.name = rabbit, name
        self.url = rabbit.url + name
        self.kombu_url = amqp_connection.kombu_url(self.url)

    def ctl(self, *args):
        result = subprocess.run(shlex.split(self.rabbit.ctl) + list(args),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def queues(self):
        """{name: (messages, consumers, policy)}, read without using them.

        rabbitmqctl, not a passive queue.declare: a declare counts as use
        and would restart the expiry this test waits for.
        """
        rows = json.loads(self.ctl('-q', 'list_queues', '-p', self.name,
                                   '--formatter', 'json', 'name', 'messages',
                                   'consumers', 'policy') or '[]')
        return {r['name']: (r['messages'], r['consumers'], r['policy'])
                for r in rows}


@pytest.fixture
def vhost(rabbit, unique_name):
    if not rabbit.ctl:
        if os.environ.get('CI') == 'true':
            pytest.fail('no rabbitmqctl for the %s broker: set '
                        'BRIDGE_TEST_RABBITMQCTL' % rabbit.source)
        pytest.skip('needs rabbitmqctl on the broker (local, a container '
                    'with docker, or BRIDGE_TEST_RABBITMQCTL)')
    v = Vhost(rabbit, unique_name('bridge-vh'))
    user = oslo_messaging.TransportURL.parse(
        bridgeutil.oslo_conf(), rabbit.url).hosts[0].username
    v.ctl('add_vhost', v.name)
    try:
        v.ctl('set_permissions', '-p', v.name, user, '.*', '.*', '.*')
        yield v
    finally:
        v.ctl('delete_vhost', v.name)


def shipped_policy():
    """The set_policy command etc/trove-routes.conf gives, as argv."""
    lines = [line.lstrip('#').strip() for line in
             (ROOT / 'etc' / 'trove-routes.conf').read_text().splitlines()
             if 'rabbitmqctl set_policy' in line]
    assert len(lines) == 1, lines
    assert lines[0] in (ROOT / 'README.rst').read_text(), \
        'README and etc/trove-routes.conf must give the same policy'
    argv = shlex.split(lines[0])
    assert argv[:2] == ['rabbitmqctl', 'set_policy']
    return argv[1:]


def start_and_stop_server(url, exchange, topic, server):
    """What Trove's API._create_guest_queue() does (topic guestagent.<id>,
    server <id>): the queues stay, with no consumer."""
    transport = oslo_messaging.get_rpc_transport(bridgeutil.oslo_conf(),
                                                 url=url)
    rpc_server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(exchange=exchange, topic=topic,
                                         server=server),
        [], executor='threading')
    rpc_server.start()
    rpc_server.stop()
    rpc_server.wait()
    transport.cleanup()


def cast(url, exchange, topic, **kw):
    transport = oslo_messaging.get_rpc_transport(bridgeutil.oslo_conf(),
                                                 url=url)
    try:
        oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(exchange=exchange, topic=topic,
                                             **kw)).cast({}, 'prepare', n=1)
    finally:
        transport.cleanup()


@pytest.mark.parametrize('command', ['set_policy', 'set_operator_policy'])
def test_policy_expires_trove_guest_queues(vhost, names, command):
    policy = shipped_policy()
    expected_policy = POLICY_NAME
    if command == 'set_operator_policy':
        # README: with another policy on these queues (which would win:
        # one policy per queue), an operator policy combines with it.
        vhost.ctl('set_policy', '-p', vhost.name, '--priority', '10',
                  '--apply-to', 'queues', 'other', '.*',
                  '{"max-length": 100000}')
        expected_policy = 'other'
        policy[0] = command
    vhost.ctl(*policy[:-1], '-p', vhost.name, policy[-1])
    instance = 'a3c1e2f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b'
    guest_queues = {'guestagent.' + instance,
                    'guestagent.%s.%s' % (instance, instance)}
    start_and_stop_server(vhost.url, names.exchange,
                          'guestagent.' + instance, instance)
    # A queue of the control plane left the same way: no policy for it.
    start_and_stop_server(vhost.url, names.exchange, names.conductor, 'c1')
    queues = vhost.queues()
    assert {q: queues[q][1:] for q in guest_queues} == dict.fromkeys(
        guest_queues, (0, expected_policy))
    if command == 'set_policy':
        assert queues[names.conductor][1:] == (0, '')
    definition = json.loads(policy[-1])
    assert definition['expires'] >= definition['message-ttl'] >= 1800000
    # Waiting an hour is not a test: the same policy, scaled down, one
    # key at a time.  First message-ttl (the queues can't expire yet).
    vhost.ctl(*policy[:-1], '-p', vhost.name,
              json.dumps(dict(definition, **{'message-ttl': 10000})))
    cast(vhost.url, names.exchange, 'guestagent.' + instance)
    cast(vhost.url, names.exchange, 'guestagent.' + instance,
         server=instance)
    cast(vhost.url, names.exchange, names.conductor)
    queues = vhost.queues()
    assert {q: queues[q][0] for q in guest_queues} == dict.fromkeys(
        guest_queues, 1), 'the casts did not reach the guest queues'
    bridgeutil.wait_until(
        lambda: all(vhost.queues()[q][0] == 0 for q in guest_queues),
        timeout=60, interval=1, what='the messages to expire (message-ttl)')
    # Then expires: the queues themselves go.
    vhost.ctl(*policy[:-1], '-p', vhost.name,
              json.dumps({'expires': 5000, 'message-ttl': 10000}))
    bridgeutil.wait_until(
        lambda: not guest_queues & set(vhost.queues()), timeout=60,
        interval=1, what='the guest queues to expire (expires)')
    # The control plane's queue, not matched, keeps its message.
    assert vhost.queues()[names.conductor][:2] == (1, 0)


def test_check_config_lists_queues_nobody_consumes(tmp_path, vhost, zaqar,
                                                    names):
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', vhost, zaqar, [
        ('guests', bridgeutil.guests_route(
            names.exchange, binding_keys='guestagent.*, guestagent.*.*')),
        ('conductor', bridgeutil.conductor_route(
            names.exchange, 'trove-conductor', ['t'],
            routing_key='trove-conductor'))])
    instance = 'b4d2f3a5-6c7e-4f80-9bac-1d2e3f4a5b6c'
    start_and_stop_server(vhost.url, names.exchange,
                          'guestagent.' + instance, instance)
    cast(vhost.url, names.exchange, 'guestagent.' + instance)
    # A conductor that went away: what the bridge publishes piles up.
    start_and_stop_server(vhost.url, names.exchange, 'trove-conductor', 'c1')
    # Not reported: a guest still consuming on RabbitMQ, the bridge's own
    # queue, a key no route's key overlaps, another exchange.
    transport = oslo_messaging.get_rpc_transport(bridgeutil.oslo_conf(),
                                                 url=vhost.url)
    live = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(exchange=names.exchange,
                                         topic='guestagent.live',
                                         server='live'),
        [], executor='threading')
    live.start()
    own = bridgeutil.QUEUES[str(config)][1]
    with kombu.Connection(vhost.kombu_url) as conn:
        channel = conn.default_channel
        channel.exchange_declare('elsewhere', 'topic')
        for queue, exchange, key in [
                (own, names.exchange, 'guestagent.*'),
                ('stray-key', names.exchange, 'other.x'),
                ('stray-ex', 'elsewhere', 'guestagent.x')]:
            channel.queue_declare(queue, durable=True, auto_delete=False)
            channel.queue_bind(queue, exchange, key)

    def check():
        result = bridgeutil.run_manage(config, 'check-config', '--format',
                                       'json', '--rabbitmqctl',
                                       vhost.rabbit.ctl)
        assert result.returncode == 0, result.stderr
        return ({(r['route'], r['queue'], r['messages'])
                 for r in json.loads(result.stdout)['idle_queues']},
                result.stderr)

    try:
        rows, stderr = check()
    finally:
        live.stop()
        live.wait()
        transport.cleanup()
    server_queue = 'guestagent.%s.%s' % (instance, instance)
    assert rows == {('guests', 'guestagent.' + instance, 1),
                    ('guests', server_queue, 0),
                    ('conductor', 'trove-conductor', 0)}
    assert stderr.strip() == (
        "amqp-zaqar-bridge-manage: warning: 3 queue(s) bound where the "
        "routes' messages go have no consumer and keep every message routed "
        "to them (1 now): guestagent.%s, %s, trove-conductor; a policy "
        "with expires and message-ttl removes them (README, Trove)"
        % (instance, server_queue))
    # The live guest was left out for its consumer alone.
    rows, _ = check()
    assert ('guests', 'guestagent.live', 0) in rows


def test_check_config_says_when_it_cannot_look(tmp_path, rabbit, zaqar,
                                               names):
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar, [
        ('guests', 'direction = to_zaqar\nexchange = %s\n'
                   'tenant = static:p' % names.exchange)])
    result = bridgeutil.run_manage(config, 'check-config', '--rabbitmqctl',
                                   '/nonexistent/rabbitmqctl')
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        'amqp-zaqar-bridge-manage: note: queues without consumers not '
        'checked (/nonexistent/rabbitmqctl: [Errno 2] No such file or '
        'directory')
    assert result.stderr.strip().endswith(
        'run check-config on a broker node or give --rabbitmqctl')
    skipped = bridgeutil.run_manage(config, 'check-config', '--rabbitmqctl',
                                    '')
    assert skipped.returncode == 0 and skipped.stderr == ''
    assert 'Queues without consumers' not in skipped.stdout
