"""The test servers themselves: real RabbitMQ and zaqar-server, no mocks."""

import os
import pathlib

import kombu
import pytest
import requests

from tests.fixtures import servers

pytestmark = pytest.mark.functional


def queue_names(client):
    queues, _count = client.queues()  # v2: (iterator of Queue, count)
    return {queue.name for queue in queues}


def claim_bodies(queue):
    bodies = []
    for message in queue.claim(ttl=60, grace=60, limit=20):
        bodies.append(message.body)
        message.delete()
    return bodies


def test_kombu_roundtrip(rabbit, unique_name):
    exchange = kombu.Exchange(unique_name('ex'), 'topic', auto_delete=True)
    queue = kombu.Queue(unique_name('q'), exchange, routing_key='guest.*',
                        auto_delete=True)
    received = []
    with kombu.Connection(rabbit.kombu_url) as conn:
        with conn.Consumer(queue, callbacks=[
                lambda body, msg: (received.append(body), msg.ack())]):
            conn.Producer().publish({'hello': 'world'}, exchange=exchange,
                                    routing_key='guest.a', serializer='json',
                                    declare=[exchange])
            conn.drain_events(timeout=10)
    assert received == [{'hello': 'world'}]


def test_zaqar_projects_are_separate(zaqar, unique_name):
    a = zaqar.client(unique_name('proj-a'))
    b = zaqar.client(unique_name('proj-b'))
    qa, qb, shared = unique_name('qa'), unique_name('qb'), unique_name('s')

    a.queue(qa).post([{'body': {'n': 1}, 'ttl': 300},
                      {'body': {'n': 2}, 'ttl': 300}])
    b.queue(qb).post([{'body': {'n': 3}, 'ttl': 300}])
    a.queue(shared).post([{'body': 'for a only', 'ttl': 300}])

    assert sorted(m['n'] for m in claim_bodies(a.queue(qa))) == [1, 2]
    assert claim_bodies(b.queue(qb)) == [{'n': 3}]
    assert claim_bodies(b.queue(shared)) == []
    assert claim_bodies(a.queue(shared)) == ['for a only']
    assert claim_bodies(a.queue(qa)) == []  # deleted, not just claimed

    assert {qa, shared} <= queue_names(a)
    assert qb not in queue_names(a)
    assert qa not in queue_names(b)


def test_zaqar_stop_and_start(zaqar, unique_name):
    client = zaqar.client(unique_name('proj'))
    queue = client.queue(unique_name('q'))
    queue.post([{'body': 'before the outage', 'ttl': 300}])
    with zaqar.stopped():
        with pytest.raises(requests.exceptions.ConnectionError):
            queue.post([{'body': 'during the outage', 'ttl': 300}])
    # Same port and Redis databases, not flushed: the message survived.
    queue.post([{'body': 'after the outage', 'ttl': 300}])
    assert claim_bodies(queue) == ['before the outage', 'after the outage']


def test_zaqar_server_options(tmp_path, unique_name):
    """tools/zaqar-server.sh as the benchmarks run it: gunicorn workers,
    every process pinned to one CPU, no notification pipeline."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    pair, lock = servers._claim_redis_dbs()
    server = servers.Zaqar.local(pair, gunicorn=2, pipeline=False,
                                 cpus=str(cpu), run_dir=tmp_path / 'zaqar')
    try:
        server.start(flush=True)
        pids = server.pids()
        # gunicorn's master and 2 workers, and the websocket server.
        assert len(pids) == 4
        assert {frozenset(os.sched_getaffinity(p)) for p in pids} == {
            frozenset([cpu])}
        assert 'message_pipeline' not in (
            tmp_path / 'zaqar' / 'zaqar.conf').read_text()
        queue = server.client(unique_name('proj')).queue(unique_name('q'))
        queue.post([{'body': 'through gunicorn', 'ttl': 300}])
        assert claim_bodies(queue) == ['through gunicorn']
    finally:
        server.stop()
        server.flush()
        lock.close()
    assert not [p for p in pids if running(p)]


def running(pid):
    """A process, not gone (a zombie not yet reaped has no command line)."""
    try:
        return bool(pathlib.Path('/proc/%d/cmdline' % pid).read_bytes())
    except OSError:
        return False
