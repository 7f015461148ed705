"""Clustered-RabbitMQ options: quorum queues, several transport_url hosts."""

import subprocess

import oslo_messaging
import pytest

from tests.fixtures import servers
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def route(names):
    return [('guests', '''
        direction = to_zaqar
        exchange = %s
        binding_keys = guestagent.*
        tenant = context:project_id
        ''' % names.exchange)]


def cast_and_read(rabbit, zaqar, names):
    client = oslo_messaging.get_rpc_client(
        bridgeutil.rpc_transport(rabbit),
        oslo_messaging.Target(exchange=names.exchange, topic='guestagent.q'))
    client.cast({'project_id': names.tenant}, 'ping', n=1)
    (body,) = bridgeutil.drain(zaqar.client(names.tenant).queue(
        'guestagent_q'), 1)
    assert body['message']['args'] == {'n': 1}


def queue_types():
    out = subprocess.run(['rabbitmqctl', '-q', 'list_queues', 'name', 'type'],
                         capture_output=True, text=True, timeout=60).stdout
    return dict(line.split('\t')[:2] for line in out.splitlines()
                if '\t' in line)


def test_quorum_queues(tmp_path, rabbit, zaqar, names):
    if rabbit.source != 'local':
        pytest.skip('reads queue types with rabbitmqctl')
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, route(names),
        extra='[amqp]\nquorum_queues = true\ndead_letter_queue = %s\n'
              'dead_letter_exchange = %s\n' % (names.dlq, names.dlq))
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        cast_and_read(rabbit, zaqar, names)
        types = queue_types()
        # [0] is the reply queue, declared only when a to_amqp route runs.
        forward_queue = bridgeutil.QUEUES[str(config)][1]
        for name in (forward_queue, names.dlq):
            assert types.get(name) == 'quorum', (name, types.get(name))
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        subprocess.run(['rabbitmqctl', '-q', 'delete_queue', names.dlq],
                       capture_output=True, timeout=60)


def test_transport_url_hosts_fail_over(tmp_path, rabbit, zaqar, names):
    if rabbit.source != 'local':
        pytest.skip('needs the local broker on 127.0.0.1:5672')
    dead = servers.free_port()
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     route(names))
    config.write_text(config.read_text().replace(
        'transport_url = rabbit://guest:guest@127.0.0.1:5672/',
        'transport_url = rabbit://guest:guest@127.0.0.1:%d,'
        'guest:guest@127.0.0.1:5672/' % dead))
    assert ',guest:guest@127.0.0.1:5672' in config.read_text()
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        cast_and_read(rabbit, zaqar, names)
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
