"""zaqar:// listener pools, at_least_once and concurrency, against a real
zaqar-server.

(Servers of one topic sharing its work are in oslo.messaging's own suite,
tests/functional/test_oslo_functional.py.)
"""

import logging
import queue
import threading
import time

from oslo_context import context
import oslo_messaging
import pytest

from bridge import naming
from bridge.drivers.zaqar import presence
from tests.functional import guestutil

pytestmark = pytest.mark.functional


def notification_listener(url, topic, pool, cleanups):
    got = queue.Queue()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            got.put(payload)

    transport = oslo_messaging.get_notification_transport(
        guestutil.make_conf(), url=url)
    cleanups.callback(transport.cleanup)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
        executor='threading', pool=pool)
    listener.start()
    cleanups.callback(lambda: (listener.stop(), listener.wait()))
    return got


def wait_for_roll_call(transport, queue_name, count):
    """Until ``count`` listeners of ``queue_name`` answered its roll call."""
    zaqar = transport._driver.zaqar
    deadline = time.monotonic() + guestutil.TIMEOUT
    while len(presence.read(zaqar, queue_name)) < count:
        assert time.monotonic() < deadline, 'listeners never answered'
        time.sleep(0.05)


def drain(got, count):
    return sorted(got.get(timeout=guestutil.TIMEOUT) for _ in range(count))


def test_each_pool_gets_every_notification_once(guest_url, unique_name,
                                                cleanups):
    url, topic = guest_url(unique_name('pools')), unique_name('notif')
    alone = notification_listener(url, topic, None, cleanups)
    pool_a = [notification_listener(url, topic, 'a', cleanups)
              for _ in range(2)]
    pool_b = notification_listener(url, topic, 'b', cleanups)
    transport = oslo_messaging.get_notification_transport(
        guestutil.make_conf(), url=url)
    cleanups.callback(transport.cleanup)
    notifier = oslo_messaging.Notifier(transport, publisher_id='guest',
                                       driver='messagingv2', topics=[topic])
    wait_for_roll_call(transport, naming.queue_name(topic + '.info'), 4)
    sent = ['n%d' % i for i in range(4)]
    for payload in sent:
        notifier.info(context.RequestContext(), 'e', payload)
    assert drain(alone, 4) == sent
    assert drain(pool_b, 4) == sent
    # Pool a shares the work: two each, dealt in turn.
    shares = [drain(got, 2) for got in pool_a]
    assert sorted(shares[0] + shares[1]) == sent
    for got in [alone, pool_b] + pool_a:
        with pytest.raises(queue.Empty):    # nothing twice
            got.get(timeout=0.5)


def cast_from_threads(url, topic, threads, casts):
    transport = oslo_messaging.get_rpc_transport(guestutil.make_conf(),
                                                 url=url)
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic=topic))

    def send():
        for n in range(casts):
            client.cast({}, 'note', value=n)
    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(guestutil.TIMEOUT * 3)
    transport.cleanup()


@pytest.mark.parametrize('http_pool_size, discarded', [(2, True),
                                                       (0, False)])
def test_http_pool_holds_the_driver_s_concurrency(
        guest_url, unique_name, caplog, http_pool_size, discarded):
    url = guest_url(unique_name('pool'), http_pool_size=http_pool_size)
    with caplog.at_level(logging.WARNING, logger='urllib3.connectionpool'):
        cast_from_threads(url, unique_name('topic'), threads=12, casts=5)
    # 2 connections for 12 threads: urllib3 closes the extra ones; by
    # default there is room for every thread.
    assert ('Connection pool is full' in caplog.text) is discarded


def test_at_least_once_refuses_a_call_no_server_takes(guest_url, unique_name,
                                                      transport, server):
    # oslo.messaging's test_mandatory_call (run on rabbit:// only).
    url = guest_url(unique_name('mandatory'))
    target = oslo_messaging.Target(topic=unique_name('topic'),
                                   server=unique_name('server'))

    def client(at_least_once, timeout):
        return oslo_messaging.get_rpc_client(
            transport(url), target, timeout=timeout,
            transport_options=oslo_messaging.TransportOptions(
                at_least_once=at_least_once))
    with pytest.raises(oslo_messaging.MessagingTimeout):
        client(False, 1).call({}, 'echo', value=1)
    with pytest.raises(oslo_messaging.MessageUndeliverable):
        client(True, 60).call({}, 'echo', value=1)
    # Once the server answered the roll call, the same call goes through.
    server(url, target.topic, target.server, [guestutil.Endpoint()])
    wait_for_roll_call(transport(url), naming.queue_name(target.topic), 1)
    answer = client(True, guestutil.TIMEOUT).call({}, 'echo', value=1)
    assert answer['echo'] == 1
