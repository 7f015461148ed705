"""Clustered-RabbitMQ options: quorum queues, several transport_url hosts.

On a private RabbitMQ node (tests/fixtures/rabbit_node.py): its queue
types are read with its rabbitmqctl, and its port is known.
"""

import kombu
import oslo_messaging
import pytest

from tests.fixtures import servers
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


@pytest.fixture
def rabbit(private_rabbit):
    """This module's broker: a private node."""
    return private_rabbit


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


def delete_exchange(rabbit, name):
    with kombu.Connection(rabbit.kombu_url) as conn:
        conn.default_channel.exchange_delete(name)


def test_quorum_queues(tmp_path, rabbit, zaqar, names):
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, route(names),
        extra=bridgeutil.dead_letter_section(names.dlq)
        + 'quorum_queues = true\n')
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        cast_and_read(rabbit, zaqar, names)
        types = {row['name']: row['type']
                 for row in rabbit.table('queues', 'name', 'type')}
        # [0] is the reply queue, declared only when a to_amqp route runs.
        forward_queue = bridgeutil.QUEUES[str(config)][1]
        for name in (forward_queue, names.dlq):
            assert types.get(name) == 'quorum', (name, types.get(name))
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        delete_exchange(rabbit, names.exchange)


def test_transport_url_hosts_fail_over(tmp_path, rabbit, zaqar, names):
    dead = servers.free_port()
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, route(names),
        extra=bridgeutil.dead_letter_section(names.dlq))
    hosts = 'rabbit://guest:guest@127.0.0.1:%d,guest:guest@127.0.0.1:%d/' % (
        dead, rabbit.port)
    config.write_text(config.read_text().replace(rabbit.url, hosts))
    assert 'transport_url = %s\n' % hosts in config.read_text()
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        cast_and_read(rabbit, zaqar, names)
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        delete_exchange(rabbit, names.exchange)
