"""Several transport_url hosts: the bridge moves to the next one mid-stream.

README (Several controllers): "several hosts in transport_url fail over in
turn".  Two private RabbitMQ nodes (tests/fixtures/rabbit_node.py; the
shared broker is never stopped); the bridge's forward route consumes from
the first, the first stops while the bridge holds unacknowledged
messages (its post to Zaqar held by a proxy), the bridge goes on with the
second.  The two nodes are not clustered, so what the first still held
stays there: with what reached Zaqar it must make up everything published
(nothing lost, nothing acknowledged unstored).
"""

import json

import kombu
import pytest

from tests.functional import bridgeutil

pytestmark = [pytest.mark.functional, pytest.mark.slow]

PER_NODE = 30


def publish(node, exchange, tenant, numbers):
    ex = kombu.Exchange(exchange, 'topic', durable=False)
    with kombu.Connection(node.kombu_url) as conn:
        producer = conn.Producer()
        for n in numbers:
            body = json.dumps({'oslo.version': '2.0', 'oslo.message':
                               json.dumps({'method': 'm', 'args': {'n': n},
                                           '_unique_id': 'failover-%d' % n,
                                           '_context_project_id': tenant})})
            producer.publish(body, exchange=ex, routing_key='guestagent.f',
                             content_type='application/json',
                             delivery_mode=2)


def test_failover_to_the_next_host_mid_stream(tmp_path, rabbit_nodes, zaqar,
                                              names):
    first, second = rabbit_nodes.start(), rabbit_nodes.start()
    proxy = bridgeutil.HttpProxy(zaqar.url)
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', first, proxy,
        [('guests', bridgeutil.guests_route(names.exchange))])
    both = 'rabbit://guest:guest@127.0.0.1:%d,guest:guest@127.0.0.1:%d/' % (
        first.port, second.port)
    config.write_text(config.read_text().replace(
        'transport_url = %s' % first.url, 'transport_url = %s' % both))
    assert both in config.read_text()
    amqp_queue = bridgeutil.QUEUES[str(config)][1]
    queue = zaqar.client(names.tenant).queue('guestagent_f')
    stored = []

    def collect():
        """The numbers Zaqar got so far (with duplicates, if any)."""
        for message in queue.claim(ttl=60, grace=60, limit=20):
            stored.append(message.body['message']['args']['n'])
            message.delete()
        return set(stored)

    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        worker = daemon.pid_logging('Route guests: consuming')
        proxy.hold(lambda method, path: method == 'POST'
                   and path.endswith('/messages'))
        publish(first, names.exchange, names.tenant, range(PER_NODE))
        bridgeutil.wait_until(lambda: proxy.held,
                              what='the bridge posting to Zaqar')
        # Mid-stream: the bridge holds messages it has not acknowledged.
        first.stop_app()
        proxy.release()
        daemon.wait_for_log(lambda t: t.count('Route guests: consuming') >= 2,
                            timeout=120, what='the route on the second host')
        # The same worker reconnected; the daemon did not restart it.
        assert daemon.pid_logging('Route guests: consuming') == worker
        publish(second, names.exchange, names.tenant,
                range(PER_NODE, 2 * PER_NODE))
        bridgeutil.wait_until(
            lambda: set(range(PER_NODE, 2 * PER_NODE)) <= collect(),
            timeout=90, what=lambda: 'the second host\'s messages, got %s'
            % sorted(stored))
    finally:
        assert daemon.stop() == 0
        proxy.close()
    # What the first host still holds is what Zaqar did not get (or got
    # but could not be acknowledged for: a duplicate, at least once).
    first.start_app()
    left = []
    with kombu.Connection(first.kombu_url) as conn:
        held = kombu.Queue(amqp_queue, channel=conn.default_channel,
                           no_declare=True)
        message = held.get(no_ack=True)
        while message is not None:
            left.append(json.loads(json.loads(message.body)['oslo.message'])
                        ['args']['n'])
            message = held.get(no_ack=True)
    assert left, 'nothing was in flight when the first host stopped'
    assert collect() | set(left) == set(range(2 * PER_NODE)), (
        sorted(stored), sorted(left))
    # The loss said on one line, no traceback.
    log = daemon.log()
    assert 'Route guests: connection to RabbitMQ lost (' in log
    assert 'Traceback' not in log
