"""The zaqar:// driver on its own: oslo.messaging guests over a real Zaqar.

Servers, clients, notifiers and listeners are unmodified oslo.messaging
objects on ``zaqar://`` transport URLs; no bridge daemon is involved.
"""

import queue
import threading
import time

from oslo_context import context
import oslo_messaging
import pytest

from bridge import wire
from tests.functional import guestutil

pytestmark = pytest.mark.functional


def test_call_returns_the_result(guest_url, project, transport, server):
    url = guest_url(project)
    endpoint = guestutil.Endpoint()
    server(url, 'guestagent.1', 'host-1', [endpoint])
    rpc = guestutil.client(transport, url, 'guestagent.1')
    ctxt = {'project_id': project, 'user_id': 'u1'}
    assert rpc.call(ctxt, 'echo', value=[1, 'two']) == {
        'echo': [1, 'two'], 'project': project}
    assert rpc.prepare(server='host-1').call(ctxt, 'echo', value=3) == {
        'echo': 3, 'project': project}
    kind, value, seen_ctxt = endpoint.received.get(timeout=1)
    assert seen_ctxt['user_id'] == 'u1'


def test_remote_exceptions(guest_url, project, transport, server):
    url = guest_url(project)
    server(url, 'topic', 'host-1', [guestutil.Endpoint()])
    allowed = guestutil.client(transport, url, 'topic',
                               exmods=['tests.functional.guestutil'])
    with pytest.raises(ValueError, match='bad value from the guest'):
        allowed.call({}, 'fail_builtin')
    with pytest.raises(guestutil.GuestError, match='custom failure'):
        allowed.call({}, 'fail_custom')
    other = guestutil.client(transport, url, 'topic')
    with pytest.raises(oslo_messaging.RemoteError) as info:
        other.call({}, 'fail_custom')
    assert info.value.exc_type == 'GuestError'
    with pytest.raises(oslo_messaging.RemoteError) as info:
        other.call({}, 'no_such_method')
    assert info.value.exc_type == 'NoSuchMethod'


def test_cast_arrives(guest_url, project, transport, server):
    url = guest_url(project)
    endpoint = guestutil.Endpoint()
    server(url, 'trove-conductor', 'c1', [endpoint])
    guestutil.client(transport, url, 'trove-conductor').cast({}, 'note',
                                                             value=7)
    assert endpoint.received.get(timeout=guestutil.TIMEOUT)[:2] == ('note', 7)


def test_fanout_cast_reaches_every_server(guest_url, project, transport,
                                          server):
    url = guest_url(project)
    endpoints = [guestutil.Endpoint(), guestutil.Endpoint()]
    for i, endpoint in enumerate(endpoints):
        server(url, 'guestagent.all', 'host-%d' % i, [endpoint])
    rpc = guestutil.client(transport, url, 'guestagent.all')
    rpc.prepare(fanout=True).cast({}, 'note', value='everyone')
    for endpoint in endpoints:
        assert endpoint.received.get(timeout=guestutil.TIMEOUT)[:2] == \
            ('note', 'everyone')
    # Each saw it once, and a plain cast still goes to one of them.
    rpc.cast({}, 'note', value='one')
    time.sleep(2)
    counts = [e.received.qsize() for e in endpoints]
    assert sorted(counts) == [0, 1]


def test_call_without_a_server_times_out(guest_url, project, transport):
    rpc = guestutil.client(transport, guest_url(project), 'nobody-home')
    start = time.monotonic()
    with pytest.raises(oslo_messaging.MessagingTimeout):
        rpc.prepare(timeout=1).call({}, 'echo', value=1)
    assert time.monotonic() - start < 5


def test_call_monitor_heartbeats_keep_a_long_call_alive(
        guest_url, project, transport, server):
    url = guest_url(project)
    server(url, 'slow', 'host-1', [guestutil.Endpoint()])
    rpc = guestutil.client(transport, url, 'slow', call_monitor_timeout=2)
    assert rpc.prepare(timeout=20).call({}, 'nap', seconds=4) == 'rested'


def test_notifier_reaches_a_notification_listener(guest_url, project,
                                                  cleanups):
    url = guest_url(project)
    got = queue.Queue()

    class Notifications:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            got.put((publisher_id, event_type, payload, ctxt))

    listen_transport = oslo_messaging.get_notification_transport(
        guestutil.make_conf(), url=url)
    cleanups.callback(listen_transport.cleanup)
    listener = oslo_messaging.get_notification_listener(
        listen_transport, [oslo_messaging.Target(topic='notifications')],
        [Notifications()])
    listener.start()
    cleanups.callback(lambda: (listener.stop(), listener.wait()))

    send_transport = oslo_messaging.get_notification_transport(
        guestutil.make_conf(), url=url)
    cleanups.callback(send_transport.cleanup)
    notifier = oslo_messaging.Notifier(
        send_transport, publisher_id='guest.host-1', driver='messagingv2',
        topics=['notifications'])
    # A plain dict context is dropped by the Notifier: use a real one.
    notifier.info(context.RequestContext(project_id=project),
                  'trove.backup.create', {'size': 3})
    publisher, event_type, payload, ctxt = got.get(timeout=guestutil.TIMEOUT)
    assert (publisher, event_type, payload) == (
        'guest.host-1', 'trove.backup.create', {'size': 3})
    assert ctxt['project_id'] == project


def test_projects_are_isolated(guest_url, unique_name, transport, server):
    url_a = guest_url(unique_name('tenant-a'))
    url_b = guest_url(unique_name('tenant-b'))
    in_a, in_b = guestutil.Endpoint(), guestutil.Endpoint()
    server(url_a, 'shared-topic', 'host', [in_a])
    server(url_b, 'shared-topic', 'host', [in_b])
    rpc_a = guestutil.client(transport, url_a, 'shared-topic')
    rpc_a.cast({}, 'note', value='for a')
    rpc_a.prepare(fanout=True).cast({}, 'note', value='fanout a')
    assert rpc_a.call({}, 'echo', value='call a')['echo'] == 'call a'
    seen = {in_a.received.get(timeout=guestutil.TIMEOUT)[1] for _ in range(3)}
    assert seen == {'for a', 'fanout a', 'call a'}
    time.sleep(2)
    assert in_b.received.empty()


def test_controller_call_is_answered_into_the_bridge_queue(
        zaqar, guest_url, project, server):
    """What the bridge's forward route posts, and the answer it reads."""
    server(guest_url(project), 'guestagent.7', 'host', [guestutil.Endpoint()])
    zc = zaqar.client(project)
    request = {'method': 'echo', 'args': {'value': 'x'}, 'version': '1.0',
               '_msg_id': 'controller-msg-1', '_reply_q': 'reply_amqp_side',
               '_unique_id': 'u-controller-1',
               '_context_project_id': project}
    zc.queue('guestagent_7').post({'body': wire.body(
        request, reply={'queue': 'bridge_replies', 'token': 'signed.T'}),
        'ttl': 60})
    replies = zc.queue('bridge_replies')
    deadline = time.monotonic() + guestutil.TIMEOUT
    answer = None
    while answer is None and time.monotonic() < deadline:
        answer = next(iter(replies.pop(1)), None)
        time.sleep(0.1)
    assert answer is not None
    body = wire.parse(answer.body)
    assert body['reply_token'] == 'signed.T'
    assert body['message']['_msg_id'] == 'controller-msg-1'
    assert body['message']['result'] == {'echo': 'x', 'project': project}
    assert body['message']['ending'] is True
    # Nothing went to the AMQP-side reply queue name.
    assert list(zc.queue('reply_amqp_side').messages(echo=True)) == []


def test_bad_messages_are_deleted_and_serving_goes_on(
        zaqar, guest_url, project, transport, server):
    url = guest_url(project)
    endpoint = guestutil.Endpoint()
    server(url, 'robust', 'host', [endpoint])
    q = zaqar.client(project).queue('robust')
    q.post([{'body': 'not json', 'ttl': 60},
            {'body': {'foreign': True}, 'ttl': 60},
            {'body': {'bridge': 1, 'message': {'method': 'note',
                                               'args': []}}, 'ttl': 60}])
    assert guestutil.client(transport, url, 'robust').call(
        {}, 'echo', value=1)['echo'] == 1
    deadline = time.monotonic() + guestutil.TIMEOUT
    while q.stats['messages']['total'] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert q.stats['messages']['total'] == 0


def test_duplicate_posts_are_handled_once(zaqar, guest_url, project, server):
    endpoint = guestutil.Endpoint()
    server(guest_url(project), 'dedup', 'host', [endpoint])
    body = wire.body({'method': 'note', 'args': {'value': 'once'},
                      '_unique_id': 'same-id'})
    zaqar.client(project).queue('dedup').post(
        [{'body': body, 'ttl': 60}, {'body': body, 'ttl': 60}])
    assert endpoint.received.get(timeout=guestutil.TIMEOUT)[1] == 'once'
    time.sleep(1.5)
    assert endpoint.received.empty()


def test_cleanup_deletes_the_reply_queue(zaqar, guest_url, project,
                                         server):
    url = guest_url(project)
    server(url, 'topic', 'host', [guestutil.Endpoint()])
    caller = oslo_messaging.get_rpc_transport(guestutil.make_conf(), url=url)
    rpc = oslo_messaging.get_rpc_client(
        caller, oslo_messaging.Target(topic='topic'),
        timeout=guestutil.TIMEOUT)
    rpc.call({}, 'echo', value=1)
    reply_q = caller._driver._reply_waiter().queue

    def queue_names():
        listing, _ = zaqar.client(project).queues()
        return {q.name for q in listing}
    assert reply_q in queue_names()
    caller.cleanup()
    assert reply_q not in queue_names()


def test_concurrent_calls_share_one_reply_queue(guest_url, project,
                                                transport, server):
    url = guest_url(project)
    server(url, 'busy', 'host', [guestutil.Endpoint()])
    rpc = guestutil.client(transport, url, 'busy')
    results = {}

    def call(i):
        results[i] = rpc.call({}, 'echo', value=i)['echo']
    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(guestutil.TIMEOUT * 2)
    assert results == {i: i for i in range(8)}
