"""The private RabbitMQ nodes (tests/fixtures/rabbit_node.py) do what the
fault suite and the outage tests rely on."""

import kombu
import pytest

pytestmark = [pytest.mark.functional, pytest.mark.slow]


def publish(node, queue, body):
    with kombu.Connection(node.kombu_url) as conn:
        conn.SimpleQueue(queue, queue_opts={'durable': True}).put(
            body, delivery_mode=2)


def backlog(node, queue):
    rows = node.table('queues', 'name', 'messages')
    return {row['name']: int(row['messages']) for row in rows}.get(queue)


def test_outage_and_kill_on_one_node_leave_the_other(rabbit_nodes,
                                                     unique_name):
    a = rabbit_nodes.start()
    b = rabbit_nodes.start()
    assert (a.name, a.port) != (b.name, b.port)
    queue = unique_name('node-test')
    publish(a, queue, 'kept')
    with a.outage():
        assert not a.answers()
        assert b.answers()
    assert a.answers()
    assert backlog(a, queue) == 1      # durable, persistent: still there
    a.kill()
    assert not a.answers() and not a.running()
    assert b.answers()
    a.start()
    assert backlog(a, queue) == 1
    assert backlog(b, queue) is None   # nothing shared between nodes
    a.ctl('delete_queue', queue)
