"""What the zaqar:// driver posts and how it reads, without a server.

``MemoryZaqar`` stands in for ``transport.Zaqar`` (the driver's only
door to Zaqar): queues are lists, claims and pops behave like Zaqar's.
"""

import itertools
import json
import sys
import threading
import time

import futurist
from oslo_config import cfg
import oslo_messaging
from oslo_messaging._drivers import common as rpc_common
import pytest
from zaqarclient.transport import errors as zerrors

from bridge import envelope
from bridge import naming
from bridge import wire
from bridge import backoff as backoff_mod
from bridge.drivers.zaqar import driver as zdriver
from bridge.drivers.zaqar import incoming
from bridge.drivers.zaqar import options as zoptions
from bridge.drivers.zaqar import presence
from bridge.drivers.zaqar import rings


class Msg:
    def __init__(self, id, body, age=0):
        self.id, self.body, self.age = id, body, age


class MemoryZaqar:
    """In-memory queues with Zaqar's claim/list/pop/delete semantics."""

    def __init__(self):
        self.queues = {}
        self.claimed = {}  # message id -> claim id
        self.posts = []    # (queue, body, ttl)
        self.deleted = []  # (queue, message id, claim id)
        self.released = []
        self.deleted_queues = []
        self.ages = {}
        self._ids = itertools.count(1)
        self.lock = threading.Lock()
        self.signed = None  # queues with credentials; None: all of them

    def covers(self, queue):
        return self.signed is None or queue in self.signed

    def post(self, queue, bodies, ttl):
        # What goes over HTTP is JSON.
        ids = []
        with self.lock:
            for body in bodies:
                body = json.loads(json.dumps(body))
                if not queue.endswith('_consumers'):  # not a roll call
                    self.posts.append((queue, body, ttl))
                ids.append('m%d' % next(self._ids))
                self.queues.setdefault(queue, []).append(Msg(ids[-1], body))
        return ids

    def free(self, queue):
        with self.lock:
            return sum(1 for m in self.queues.get(queue, [])
                       if m.id not in self.claimed)

    def put_raw(self, queue, body, age=0):
        msg = Msg('m%d' % next(self._ids), body, age)
        self.queues.setdefault(queue, []).append(msg)
        return msg.id

    def claim(self, queue, limit, ttl):
        assert limit <= 20 and ttl >= 60
        with self.lock:
            free = [m for m in self.queues.get(queue, [])
                    if m.id not in self.claimed][:limit]
            if not free:
                return None, []
            claim_id = 'c%d' % next(self._ids)
            for m in free:
                self.claimed[m.id] = claim_id
            return claim_id, free

    def pop(self, queue, limit):
        with self.lock:
            msgs = self.queues.get(queue, [])
            out, self.queues[queue] = msgs[:limit], msgs[limit:]
            return out

    def list(self, queue, marker, limit=20):
        msgs = self.queues.get(queue, [])
        ids = [m.id for m in msgs]
        start = ids.index(marker) + 1 if marker in ids else 0
        page = msgs[start:start + limit]
        if not page:
            return [], marker
        return ([{'id': m.id, 'body': m.body, 'age': m.age} for m in page],
                page[-1].id)

    def delete(self, queue, message_id, claim_id=None):
        with self.lock:
            assert self.claimed.get(message_id) == claim_id
            self.deleted.append((queue, message_id, claim_id))
            self.queues[queue] = [m for m in self.queues.get(queue, [])
                                  if m.id != message_id]
            self.claimed.pop(message_id, None)

    def release(self, queue, claim_id):
        with self.lock:
            self.released.append((queue, claim_id))
            for mid, cid in list(self.claimed.items()):
                if cid == claim_id:
                    del self.claimed[mid]

    def delete_queue(self, queue):
        self.deleted_queues.append(queue)
        self.queues.pop(queue, None)


@pytest.fixture
def zaqar():
    return MemoryZaqar()


@pytest.fixture
def make_driver(zaqar):
    drivers = []

    def make(exmods=None, **query):
        conf = cfg.ConfigOpts()
        conf([], project='test')
        # No push: the queues are in memory.
        conf.register_opts(zoptions.OPTS, group=zoptions.GROUP)
        conf.set_override('websocket_url', '', group=zoptions.GROUP)
        query.setdefault('poll_interval_min', 0.001)
        query.setdefault('poll_interval_max', 0.01)
        url = 'zaqar://h:1/?project_id=p&' + '&'.join(
            '%s=%s' % kv for kv in query.items())
        drv = zdriver.ZaqarDriver(
            conf, oslo_messaging.TransportURL.parse(conf, url),
            default_exchange='openstack', allowed_remote_exmods=exmods)
        drv.zaqar = zaqar
        drv.dealer.zaqar = zaqar
        # Acknowledged messages are deleted before acknowledge() returns.
        drv.acks = futurist.SynchronousExecutor()
        drivers.append(drv)
        return drv
    yield make
    for drv in drivers:
        drv.cleanup()


@pytest.fixture
def driver(make_driver):
    return make_driver()


def rpc(method='echo', **args):
    return {'method': method, 'args': args, 'version': '1.0'}


def posted(zaqar, index=-1):
    queue, body, ttl = zaqar.posts[index]
    return queue, wire.parse(body), ttl


# Sending ---------------------------------------------------------------------

def test_cast_body(driver, zaqar):
    driver.send(oslo_messaging.Target(topic='trove-conductor'),
                {'project_id': 'p', 'user': 'u'}, rpc('heartbeat', x=1))
    queue, body, ttl = posted(zaqar)
    assert queue == 'trove-conductor'
    assert ttl == 3600
    msg = body['message']
    assert msg['method'] == 'heartbeat' and msg['args'] == {'x': 1}
    assert msg['_context_project_id'] == 'p'
    assert msg['_context_user'] == 'u'
    assert body['id'] == msg['_unique_id']
    assert '_msg_id' not in msg and '_reply_q' not in msg
    assert 'reply' not in body and 'reply_token' not in body


def test_cast_to_a_server_and_fanout(driver, zaqar):
    driver.send(oslo_messaging.Target(topic='guestagent.1', server='host'),
                {}, rpc())
    driver.send(oslo_messaging.Target(topic='guestagent.1', fanout=True),
                {}, rpc())
    assert [(q, ttl) for q, _, ttl in zaqar.posts] == [
        ('guestagent_1_host', 3600), ('guestagent_1_fanout', 300)]


def test_notification_queue_is_the_notifier_topic(driver, zaqar):
    # oslo's Notifier sends to target topic "<topic>.<priority>".
    message = {'message_id': 'n1', 'publisher_id': 'guest',
               'event_type': 'db.backup', 'priority': 'INFO',
               'payload': {'a': 1}, 'timestamp': 'now'}
    driver.send_notification(oslo_messaging.Target(topic='notifications.info'),
                             {'project_id': 'p'}, message, 2.0, None)
    queue, body, _ = posted(zaqar)
    assert queue == 'notifications_info'
    assert body['message']['event_type'] == 'db.backup'
    assert body['message']['_context_project_id'] == 'p'
    assert envelope.kind(body['message']) == 'notification'


def test_invalid_topic(driver):
    with pytest.raises(oslo_messaging.InvalidTarget, match='empty'):
        driver.send(oslo_messaging.Target(topic=''), {}, rpc())


class Answer(threading.Thread):
    """Plays the server: answers the first request in ``queue``."""

    def __init__(self, zaqar, queue, make_reply):
        super().__init__(daemon=True)
        self.zaqar, self.queue, self.make_reply = zaqar, queue, make_reply
        self.request = None

    def run(self):
        for _ in range(2000):
            msgs = self.zaqar.pop(self.queue, 1)
            if msgs:
                self.request = wire.parse(msgs[0].body)['message']
                for reply in self.make_reply(self.request):
                    self.zaqar.post(self.request['_reply_q'],
                                    [wire.body(reply)], 60)
                return
            time.sleep(0.001)


def reply_to(request, **fields):
    out = {'result': None, 'failure': None, 'ending': True,
           '_msg_id': request['_msg_id'], '_unique_id': fields.pop('uid')}
    out.update(fields)
    return out


def test_call_returns_the_result(driver, zaqar):
    server = Answer(zaqar, 'topic_s1', lambda r: [
        reply_to(r, uid='u1', result={'answer': r['args']['x']})])
    server.start()
    result = driver.send(oslo_messaging.Target(topic='topic', server='s1'),
                         {}, rpc(x=42), wait_for_reply=True, timeout=5,
                         call_monitor_timeout=30)
    server.join()
    assert result == {'answer': 42}
    request = server.request
    assert request['_reply_q'].startswith('reply_')
    assert len(request['_reply_q']) == len('reply_') + 32
    assert len(request['_msg_id']) == 32
    assert request['_timeout'] == 30
    # Requests of one driver share its reply queue.
    server = Answer(zaqar, 'topic_s1', lambda r: [reply_to(r, uid='u2')])
    server.start()
    driver.send(oslo_messaging.Target(topic='topic', server='s1'), {}, rpc(),
                wait_for_reply=True, timeout=5)
    server.join()
    assert server.request['_reply_q'] == request['_reply_q']


@pytest.mark.parametrize('timeout, ttl', [
    (None, 3600), (5, 60), (600.2, 601), (10 ** 6, 3600)])
def test_call_ttl_follows_its_timeout(driver, zaqar, timeout, ttl):
    class Refusing(MemoryZaqar):
        def post(self, queue, bodies, ttl):
            super().post(queue, bodies, ttl)
            raise zerrors.MalformedRequest('too large')
    driver.zaqar = refusing = Refusing()
    with pytest.raises(oslo_messaging.MessageDeliveryFailure):
        driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                    wait_for_reply=True, timeout=timeout)
    assert refusing.posts[0][2] == ttl


def test_call_timeout(driver):
    start = time.monotonic()
    with pytest.raises(oslo_messaging.MessagingTimeout):
        driver.send(oslo_messaging.Target(topic='nobody'), {}, rpc(),
                    wait_for_reply=True, timeout=0.2)
    assert time.monotonic() - start < 2


def test_call_raises_the_remote_exception(make_driver, zaqar):
    driver = make_driver(exmods=[__name__])
    try:
        raise KeyError('missing')
    except KeyError:
        failure = rpc_common.serialize_remote_exception(sys.exc_info())
    server = Answer(zaqar, 't', lambda r: [
        reply_to(r, uid='u1', failure=failure)])
    server.start()
    with pytest.raises(KeyError) as info:
        driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                    wait_for_reply=True, timeout=5)
    assert 'missing' in str(info.value)


def test_heartbeats_and_duplicates_are_not_the_result(driver, zaqar):
    server = Answer(zaqar, 't', lambda r: [
        reply_to(r, uid='h1', ending=False),
        reply_to(r, uid='r1', result='first'),
        reply_to(r, uid='r1', result='first'),
    ])
    server.start()
    assert driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                       wait_for_reply=True, timeout=5,
                       call_monitor_timeout=5) == 'first'


def test_call_monitor_times_out_without_heartbeats(driver):
    with pytest.raises(oslo_messaging.MessagingTimeout):
        driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                    wait_for_reply=True, timeout=30,
                    call_monitor_timeout=0.2)


def test_cleanup_deletes_the_reply_queue(driver, zaqar):
    with pytest.raises(oslo_messaging.MessagingTimeout):
        driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                    wait_for_reply=True, timeout=0.05)
    reply_q = posted(zaqar)[1]['message']['_reply_q']
    driver.cleanup()
    assert zaqar.deleted_queues == [reply_q]


def test_post_retries_then_gives_up(driver):
    class Down:
        calls = 0

        def post(self, queue, bodies, ttl):
            Down.calls += 1
            raise ConnectionError('refused')
    driver.zaqar = Down()
    with pytest.raises(oslo_messaging.MessageDeliveryFailure):
        driver.post('q', {'x': 1}, 60, retry=1)
    assert Down.calls == 2


# Listening -------------------------------------------------------------------

def poller(driver, target=None):
    adapter = driver.listen(target or oslo_messaging.Target(
        topic='topic', server='s1'), 1, None)
    return adapter._poll_style_listener


def poll(listener, timeout=0.05):
    got = listener.poll(timeout=timeout)
    return got[0] if got else None


def request_body(uid='u1', **extra):
    msg = rpc(x=1)
    msg.update({'_unique_id': uid, '_context_project_id': 'p'})
    msg.update(extra)
    return wire.body(msg)


def test_incoming_request(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', request_body())
    incoming = poll(listener)
    assert incoming.message == {'method': 'echo', 'args': {'x': 1},
                                'version': '1.0'}
    assert incoming.ctxt['project_id'] == 'p'
    assert incoming.unique_id == 'u1'
    # Popped: acknowledged on receipt, before dispatch (as the rabbit
    # driver acknowledges in its consumer callback), never claimed.
    assert zaqar.queues['topic'] == [] and zaqar.claimed == {}
    incoming.acknowledge()
    incoming.requeue()
    assert zaqar.deleted == [] and zaqar.released == []


def test_requests_are_popped_notifications_claimed(driver, zaqar):
    popped = []
    pop = zaqar.pop
    zaqar.pop = lambda queue, limit: popped.append(queue) or pop(queue,
                                                                 limit)
    rpc_listener = poller(driver)
    notifications = driver.listen_for_notifications(
        [(oslo_messaging.Target(topic='n'), 'info')], None, 1,
        None)._poll_style_listener
    zaqar.put_raw('topic_s1', request_body('r'))
    mid = zaqar.put_raw('n_info', notification_body('n1'))
    assert poll(rpc_listener).unique_id == 'r'
    assert 'topic_s1' in popped
    incoming = poll(notifications)
    assert zaqar.claimed[mid] and 'n_info' not in popped
    incoming.acknowledge()   # after dispatch: at least once
    assert [(q, m) for q, m, _ in zaqar.deleted] == [('n_info', mid)]


def test_listens_to_topic_server_and_fanout(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', request_body('a'))
    zaqar.put_raw('topic_s1', request_body('b'))
    zaqar.put_raw('topic_fanout', request_body('c'))
    got = {poll(listener).unique_id for _ in range(3)}
    assert got == {'a', 'b', 'c'}
    assert poll(listener) is None


def test_signed_urls_listen_only_where_signed(driver, zaqar, caplog):
    zaqar.signed = {'topic'}
    listener = poller(driver)
    assert [source.name for source in listener.sources] == ['topic']
    assert 'Not listening on Zaqar queue topic_s1: no signed URL' in \
        caplog.text
    zaqar.signed = {'elsewhere'}
    with pytest.raises(oslo_messaging.MessageDeliveryFailure,
                       match='No signed URL for any of the queues topic, '
                             'topic_s1, topic_fanout'):
        poller(driver)


def test_long_server_and_fanout_queues_are_shortened(driver, zaqar):
    topic = 't' * 60
    listener = poller(driver, oslo_messaging.Target(topic=topic,
                                                    server='host-1'))
    server, fanout = naming.queue_name(topic + '.host-1'), \
        naming.queue_name(topic + '_fanout')
    inbox = listener.sources[0].name
    assert inbox.startswith('inbox_')
    assert [source.name for source in listener.sources] == [
        inbox, topic, server, fanout]
    assert len(server) == len(fanout) == 64
    zaqar.put_raw(server, request_body('b'))
    zaqar.put_raw(fanout, request_body('c'))
    assert {poll(listener).unique_id for _ in range(2)} == {'b', 'c'}


def test_call_needs_a_signed_reply_queue(driver, zaqar):
    zaqar.signed = {'t'}
    with pytest.raises(oslo_messaging.MessageDeliveryFailure,
                       match='No signed URL for reply queue reply_'):
        driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                    wait_for_reply=True, timeout=0.05)
    assert zaqar.posts == []


def test_fixed_reply_queue_is_used_and_kept(make_driver, zaqar):
    driver = make_driver(reply_queue='t1-reply_vm7')
    with pytest.raises(oslo_messaging.MessagingTimeout):
        driver.send(oslo_messaging.Target(topic='t'), {}, rpc(),
                    wait_for_reply=True, timeout=0.05)
    assert posted(zaqar)[1]['message']['_reply_q'] == 't1-reply_vm7'
    driver.cleanup()
    assert zaqar.deleted_queues == []


def test_fanout_is_listed_from_listen_time(make_driver, zaqar):
    zaqar.put_raw('topic_fanout', request_body('old'))
    first, second = poller(make_driver()), poller(make_driver())
    zaqar.put_raw('topic_fanout', request_body('new'))
    assert poll(first).unique_id == 'new'
    assert poll(second).unique_id == 'new'
    assert poll(first) is None
    # Never claimed, never deleted: it expires.
    assert len(zaqar.queues['topic_fanout']) == 2
    assert zaqar.claimed == {} and zaqar.deleted == []


def test_fanout_skips_messages_older_than_the_listener(driver, zaqar):
    listener = poller(driver)
    source = listener.sources[-1]
    source.marker = None  # as if the marker was lost
    zaqar.put_raw('topic_fanout', request_body('old'), age=30)
    zaqar.put_raw('topic_fanout', request_body('new'), age=0)
    assert poll(listener).unique_id == 'new'
    assert poll(listener) is None


@pytest.mark.parametrize('body', [
    'not json at all',
    {'some': 'foreign json'},
    {'bridge': 1, 'message': 'not an object'},
    {'bridge': 1, 'encoding': 'base64', 'message': 'AAAA'},
    {'bridge': 1, 'message': {'event_type': 'e', 'payload': {}}},
    {'bridge': 1, 'message': {'method': ''}},
    {'bridge': 1, 'message': {'method': 'm'}, 'reply': {'queue': 'q'}},
])
def test_bad_input_is_dropped(driver, zaqar, body, caplog):
    listener = poller(driver)
    mid = zaqar.put_raw('topic', body)
    zaqar.put_raw('topic', request_body('good'))
    assert poll(listener).unique_id == 'good'
    assert zaqar.queues['topic'] == []   # popped, both
    assert mid in caplog.text


def test_bad_notification_input_is_deleted(driver, zaqar, caplog):
    listener = driver.listen_for_notifications(
        [(oslo_messaging.Target(topic='n'), 'info')], None, 1,
        None)._poll_style_listener
    mid = zaqar.put_raw('n_info', {'some': 'foreign json'})
    assert poll(listener) is None
    assert [(q, m) for q, m, _ in zaqar.deleted] == [('n_info', mid)]
    assert mid in caplog.text


def test_bad_fanout_input_is_deleted(driver, zaqar):
    listener = poller(driver)
    mid = zaqar.put_raw('topic_fanout', 'garbage')
    assert poll(listener) is None
    assert zaqar.deleted == [('topic_fanout', mid, None)]


def test_plain_oslo_envelope_is_accepted(driver, zaqar):
    listener = poller(driver)
    msg = rpc(x=1)
    msg['_unique_id'] = 'env1'
    zaqar.put_raw('topic', envelope.wrap(msg))
    assert poll(listener).unique_id == 'env1'


def test_duplicates_are_dropped(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', request_body('same'))
    first = poll(listener)
    first.acknowledge()
    zaqar.put_raw('topic', request_body('same'))
    assert poll(listener) is None
    assert zaqar.queues['topic'] == []
    notifications = notification_poller(driver)
    zaqar.put_raw('n_info', notification_body('n1'))
    poll(notifications).acknowledge()
    dup = zaqar.put_raw('n_info', notification_body('n1'))
    assert poll(notifications) is None
    assert ('n_info', dup) in [(q, m) for q, m, _ in zaqar.deleted]


def notification_poller(driver):
    return driver.listen_for_notifications(
        [(oslo_messaging.Target(topic='n'), 'info')], None, 1,
        None)._poll_style_listener


def test_requeue_releases_the_claim_once_settled(driver, zaqar):
    listener = notification_poller(driver)
    a = zaqar.put_raw('n_info', notification_body('a'))
    zaqar.put_raw('n_info', notification_body('b'))
    first, second = poll(listener), poll(listener)
    assert first.raw.claim is second.raw.claim
    first.requeue()
    assert zaqar.released == []          # b is still being handled
    second.acknowledge()
    assert zaqar.released == [('n_info', first.raw.claim.id)]
    assert a not in zaqar.claimed
    # A requeued message is not a duplicate when it comes back.
    assert poll(listener).unique_id == 'a'


def test_failed_notification_acknowledge_is_logged(driver, zaqar, caplog):
    listener = driver.listen_for_notifications(
        [(oslo_messaging.Target(topic='n'), 'info')], None, 1,
        None)._poll_style_listener
    mid = zaqar.put_raw('n_info', notification_body('n1'))
    incoming = poll(listener)
    zaqar.claimed.clear()
    incoming.acknowledge()  # does not raise
    assert mid in caplog.text
    # Handled already: dropped when it comes back.
    assert poll(listener) is None


def test_stop_unblocks_poll(driver):
    listener = poller(driver)
    threading.Timer(0.1, listener.stop).start()
    start = time.monotonic()
    assert listener.poll(timeout=None) == []
    assert time.monotonic() - start < 2


# Replying --------------------------------------------------------------------

def exc_info():
    try:
        raise ValueError('boom')
    except ValueError:
        return sys.exc_info()


def test_reply_to_a_controller_call_goes_to_the_bridge(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', dict(request_body(
        _msg_id='m1', _reply_q='reply_amqp'),
        reply={'queue': 'bridge_replies', 'token': 'T0KEN'}))
    incoming = poll(listener)
    # The call-monitor heartbeat goes through the bridge too, before the
    # answer, with the same token.
    incoming.heartbeat()
    incoming.reply({'ok': True})
    (q1, hb, _), (queue, body, _) = [posted(zaqar, i) for i in (0, 1)]
    assert q1 == queue == 'bridge_replies'
    assert hb['reply_token'] == body['reply_token'] == 'T0KEN'
    assert (hb['message']['ending'], hb['message']['result']) == (False,
                                                                   None)
    msg = body['message']
    assert {k: msg[k] for k in ('result', 'failure', 'ending', '_msg_id')} \
        == {'result': {'ok': True}, 'failure': None, 'ending': True,
            '_msg_id': 'm1'}
    assert body['id'] == msg['_unique_id']


def test_reply_failure_is_serialized(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', dict(request_body(_msg_id='m1'),
                                reply={'queue': 'bridge_replies',
                                       'token': 'T'}))
    poll(listener).reply(failure=exc_info())
    failure = json.loads(posted(zaqar)[1]['message']['failure'])
    assert (failure['class'], failure['message']) == ('ValueError', 'boom')


def test_reply_to_a_guest_call_goes_to_its_reply_queue(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', request_body(_msg_id='m2', _reply_q='reply_abc'))
    incoming = poll(listener)
    incoming.heartbeat()
    incoming.reply('done')
    (q1, hb, _), (q2, final, _) = [posted(zaqar, i) for i in (0, 1)]
    assert q1 == q2 == 'reply_abc'
    assert 'reply_token' not in final
    assert hb['message']['ending'] is False
    assert final['message']['result'] == 'done'
    assert final['message']['_msg_id'] == 'm2'


def test_no_reply_for_a_cast(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', request_body())
    poll(listener).reply('ignored')
    assert zaqar.posts == []


def test_reply_to_a_bad_queue_name_is_dropped(driver, zaqar):
    listener = poller(driver)
    zaqar.put_raw('topic', request_body(_msg_id='m', _reply_q='../x'))
    poll(listener).reply('x')
    assert zaqar.posts == []


# Notifications ---------------------------------------------------------------

def notification_body(uid):
    return wire.body({'event_type': 'e', 'payload': {'n': uid},
                      'priority': 'INFO', 'publisher_id': 'g',
                      'message_id': uid, 'timestamp': 't',
                      '_unique_id': uid})


def test_notification_listener(driver, zaqar):
    adapter = driver.listen_for_notifications(
        [(oslo_messaging.Target(topic='notifications'), 'info'),
         (oslo_messaging.Target(topic='notifications'), 'error')],
        None, 1, None)
    listener = adapter._poll_style_listener
    zaqar.put_raw('notifications_error', notification_body('n1'))
    zaqar.put_raw('notifications_info', rpc())  # not a notification
    incoming = poll(listener)
    assert incoming.message['payload'] == {'n': 'n1'}
    incoming.acknowledge()
    assert [q for q, _, _ in zaqar.deleted].count('notifications_error') == 1


def test_fresh_claims_are_acknowledged_in_the_background(driver, zaqar):
    pending = []

    class Later:
        def submit(self, fn, *args):
            pending.append((fn, args))

        def shutdown(self, wait=True):
            pass
    driver.acks = Later()
    listener = notification_poller(driver)
    mid = zaqar.put_raw('n_info', notification_body('n1'))
    incoming = poll(listener)
    incoming.acknowledge()              # returns before Zaqar is asked
    assert zaqar.deleted == [] and len(pending) == 1
    fn, args = pending.pop()
    fn(*args)
    assert [(q, m) for q, m, _ in zaqar.deleted] == [('n_info', mid)]


# Helpers ---------------------------------------------------------------------

def test_backoff_holds_then_doubles():
    now = [0.0]
    backoff = backoff_mod.Backoff(0.05, 1.0, hold=1.0, jitter=0,
                              clock=lambda: now[0])
    assert [backoff.next() for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8,
                                                  1.0]
    backoff.reset()
    now[0] = 0.5
    assert [backoff.next() for _ in range(3)] == [0.05] * 3
    now[0] = 1.5
    assert [backoff.next() for _ in range(3)] == [0.05, 0.1, 0.2]


def test_backoff_stays_at_its_maximum_however_long_it_waits():
    # An idle listener backs off for days: 2 ** attempt must not overflow.
    backoff = backoff_mod.Backoff(0.05, 0.25, jitter=0)
    delays = [backoff.next() for _ in range(2000)]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.25] and delays[-1] == 0.25


def test_seen_ids_is_bounded():
    seen = incoming.SeenIds(size=3)
    assert all(seen.add(k) for k in 'abc')
    assert not seen.add('a')
    assert seen.add('d')          # evicts b, the least recent
    assert seen.add('b')
    seen.discard('d')
    assert seen.add('d')


# Sharing a queue (presence.py) ----------------------------------------------

def listener_of(driver, server):
    """A server of topic 't' that has answered the roll call."""
    listener = poller(driver, oslo_messaging.Target(topic='t', server=server))
    assert poll(listener, timeout=0) is None   # first poll: roll call
    return listener


def posts_to(zaqar, prefix):
    return [(q, b.get('shared_queue')) for q, b, _ in zaqar.posts
            if q.startswith(prefix)]


def test_casts_are_dealt_to_the_servers_in_turn(make_driver, zaqar):
    a, b = listener_of(make_driver(), 's1'), listener_of(make_driver(), 's2')
    inboxes = sorted([a.sources[0].name, b.sources[0].name])
    sender = make_driver()
    for n in range(4):
        sender.send(oslo_messaging.Target(topic='t'), {}, rpc(n=n))
    dealt = [q for q, _, _ in zaqar.posts]
    assert sorted(dealt[:2]) == inboxes and dealt[2:] == dealt[:2]
    assert all(b['shared_queue'] == 't' for _, b, _ in zaqar.posts)
    assert [poll(a).message['args']['n'] for _ in range(2)] in \
        ([0, 2], [1, 3])
    assert poll(a) is None and poll(b) is not None


def test_without_a_roll_call_messages_go_to_the_shared_queue(make_driver,
                                                             zaqar):
    listener_of(make_driver(), 's1')
    zaqar.signed = {'t'}      # no signed URL for the roll call
    make_driver().send(oslo_messaging.Target(topic='t'), {}, rpc())
    assert [q for q, _, _ in zaqar.posts] == ['t']


def notification_listener(driver, pool):
    listener = driver.listen_for_notifications(
        [(oslo_messaging.Target(topic='n'), 'info')], pool, 1,
        None)._poll_style_listener
    assert poll(listener, timeout=0) is None
    return listener


def test_each_pool_gets_a_copy_shared_by_its_listeners(make_driver, zaqar):
    alone = notification_listener(make_driver(), None)
    pool_a = [notification_listener(make_driver(), 'a') for _ in range(2)]
    sender = make_driver()
    for n in ('n1', 'n2'):
        sender.send_notification(oslo_messaging.Target(topic='n.info'), {},
                                 {'event_type': 'e', 'payload': n,
                                  'priority': 'INFO'}, 2.0)
    assert sorted(poll(alone).message['payload'] for _ in range(2)) == \
        ['n1', 'n2']
    got = [[poll(listener).message['payload']] for listener in pool_a]
    assert sorted(sum(got, [])) == ['n1', 'n2']
    # The pool's copy says where it goes back to.
    assert {b['shared_queue'] for q, b, _ in zaqar.posts
            if q in (pool_a[0].sources[0].name,
                     pool_a[1].sources[0].name)} == {'n_info_pool_a'}


def test_a_stopped_listener_hands_its_inbox_back(make_driver, zaqar,
                                                 monkeypatch):
    monkeypatch.setattr(presence, 'REFRESH', 0)
    listener = listener_of(make_driver(), 's1')
    inbox = listener.sources[0].name
    zaqar.post(inbox, [wire.body(rpc(), shared_queue='t')], 60)
    listener.stop()
    listener.cleanup()
    assert inbox not in zaqar.queues and zaqar.deleted_queues == [inbox]
    assert [b['message']['method'] for b in
            (m.body for m in zaqar.queues['t'])] == ['echo']
    assert zaqar.queues['t_consumers'] == []   # it left the roll call


def test_the_inbox_of_a_dead_listener_is_handed_back(make_driver, zaqar):
    zaqar.put_raw('t_consumers', {'consumer': 'dead', 'pool': None,
                                  'inbox': 'inbox_dead'},
                  age=presence.LIVE + 1)
    zaqar.put_raw('inbox_dead', request_body('lost'))
    listener = poller(make_driver(), oslo_messaging.Target(topic='t',
                                                           server='s1'))
    assert poll(listener).unique_id == 'lost'
    assert zaqar.queues['inbox_dead'] == []


def test_a_queue_claimed_by_others_too_is_claimed_a_share(make_driver, zaqar):
    zaqar.put_raw('t_consumers', {'consumer': 'other', 'pool': None,
                                  'inbox': 'inbox_other'})
    for n in range(4):
        zaqar.put_raw('t', request_body('u%d' % n))
    # Its turn comes back after poll_interval_max (others poll by then).
    listener = poller(make_driver(poll_interval_max=5.0),
                      oslo_messaging.Target(topic='t', server='s1'))
    got = [poll(listener) for _ in range(3)]
    # Its half (popped), then the other's turn.
    assert [m.unique_id for m in got[:2]] == ['u0', 'u1'] and got[2] is None
    assert [m.body for m in zaqar.queues['t']] == [
        request_body('u2'), request_body('u3')]
    # ... when it looks again, push or not.
    assert listener.sources[1].retry_at is not None


def test_at_least_once_refuses_what_no_server_would_take(make_driver,
                                                         zaqar):
    mandatory = oslo_messaging.TransportOptions(at_least_once=True)
    sender = make_driver()

    def cast(**target):
        sender.send(oslo_messaging.Target(topic='t', **target), {}, rpc(),
                    transport_options=mandatory)
    with pytest.raises(oslo_messaging.MessageUndeliverable) as exc:
        cast()
    assert exc.value.routing_key == 't' and zaqar.posts == []
    listener_of(make_driver(), 's1')
    sender.dealer = presence.Dealer(zaqar)   # forget the empty roll call
    cast()
    cast(server='s1')
    with pytest.raises(oslo_messaging.MessageUndeliverable):
        cast(server='s2')
    assert len(zaqar.posts) == 2
    zaqar.signed = {'t'}      # no roll call to read: it can't tell
    sender.dealer = presence.Dealer(zaqar)
    cast()
    assert len(zaqar.posts) == 3


def test_reply_look_schedule_grows_then_holds_then_doubles():
    from bridge.drivers.zaqar import reply_waiter
    now = [0.0]
    schedule = reply_waiter.LookSchedule(0.005, 1.25, 0.05, 1.0, 0.25,
                                         clock=lambda: now[0])
    gaps = [schedule.next() for _ in range(12)]
    assert gaps[0] == 0.005
    assert all(b == min(0.05, a * 1.25) for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] == 0.05     # held at poll_interval_min...
    now[0] = 2.0                # ... for poll_interval_max, then doubling
    assert [schedule.next() for _ in range(3)] == [0.1, 0.2, 0.25]
    schedule.reset()
    assert schedule.next() == 0.005


def test_a_call_looks_at_its_reply_queue_soon(make_driver, zaqar):
    # Polls of idle queues 10 s apart: the reply is found by the fast
    # schedule after the call, not by the backoff.
    driver = make_driver(poll_interval_min=5.0, poll_interval_max=10.0)
    pops = []
    pop = zaqar.pop

    def counted(queue, limit):
        pops.append(time.monotonic())
        return pop(queue, limit)
    zaqar.pop = counted
    waiter = driver._reply_waiter()
    waiter.listen('m1')
    start = time.monotonic()
    zaqar.post(waiter.queue, [wire.body({'result': 7, 'failure': None,
                                         'ending': True, '_msg_id': 'm1',
                                         '_unique_id': 'r1'})], 60)
    assert waiter.wait('m1', 5, None) == 7
    assert pops and pops[0] - start < 1.0


def roll_call_of(clock, pushed):
    zaqar = MemoryZaqar()
    roll_call = presence.RollCall(zaqar, 't', 'me', 'inbox_me',
                                  clock=lambda: clock[0])
    roll_call.pushed = lambda: pushed[0]
    return zaqar, roll_call


def test_with_push_the_roll_call_is_read_when_news_comes():
    clock, pushed = [100.0], [True]
    zaqar, roll_call = roll_call_of(clock, pushed)
    reads = []
    list_ = zaqar.list
    zaqar.list = lambda *a, **kw: reads.append(a) or list_(*a, **kw)
    assert roll_call.competitors() == 1
    entries = [b for _, b, _ in zaqar.posts] or [
        m.body for m in zaqar.queues['t_consumers']]
    assert entries[-1]['every'] == presence.ANNOUNCE_EVERY_PUSHED
    read_once = len(reads)
    # Idle: nothing due for a minute (the next entry).
    assert roll_call.next_duty() == 100.0 + presence.ANNOUNCE_EVERY_PUSHED
    # Its own entry, pushed back: no news.
    roll_call.heard({'consumer': 'me', 'pool': None, 'inbox': 'inbox_me'})
    assert roll_call.next_duty() > clock[0]
    # A new listener's entry: read the roll call now.
    other = {'consumer': 'other', 'pool': None, 'inbox': 'inbox_other',
             'every': 60}
    zaqar.post('t_consumers', [other], 180)
    roll_call.heard(other)
    assert roll_call.next_duty() == clock[0]
    clock[0] += 1
    assert roll_call.competitors() == 2 and len(reads) > read_once
    # Its renewals are heard: no read until one is overdue (90 s).
    clock[0] += 50
    roll_call.heard(other)
    assert roll_call.next_duty() == 100.0 + presence.ANNOUNCE_EVERY_PUSHED
    clock[0] += 9
    reads_before = len(reads)
    roll_call.competitors()             # its own entry, no read
    assert len(reads) == reads_before
    assert roll_call._due == {'other': 151.0 + 90.0}
    assert roll_call.next_duty() == 160.0 + presence.ANNOUNCE_EVERY_PUSHED


def test_without_push_the_roll_call_is_renewed_and_read_as_before():
    clock, pushed = [100.0], [True]
    zaqar, roll_call = roll_call_of(clock, pushed)
    roll_call.competitors()
    pushed[0] = False       # push stopped: renew at the shorter period
    assert roll_call.next_duty() == clock[0]
    roll_call.competitors()
    assert zaqar.queues['t_consumers'][-1].body['every'] == \
        presence.ANNOUNCE_EVERY
    assert roll_call.next_duty() == clock[0] + presence.LISTENER_REFRESH


def test_entries_say_how_long_their_listener_lives():
    assert presence.live_for({'every': 60}) == 90
    assert presence.live_for({}) == presence.LIVE
    assert presence.live_for({'every': 'x'}) == presence.LIVE
    assert presence.entry_ttl(60) == 180
    assert presence.entry_ttl(20) == 60


def test_with_push_a_listener_reads_its_queues_rarely(driver, zaqar):
    listener = poller(driver)
    assert poll(listener, timeout=0) is None   # first read of the queues
    listener.pushing = lambda: True
    for _ in range(3):
        listener._ring(None, None)
        assert poll(listener, timeout=0) is None
    # Rung: read at once; not rung, the next read is push_poll_interval
    # away.
    assert listener._next_fetch - time.monotonic() > \
        0.8 * driver.opts.push_poll_interval
    zaqar.put_raw('topic', request_body('late'))
    assert poll(listener, timeout=0.05) is None   # not rung: not read
    listener._ring('topic', {'any': 'body'})
    assert poll(listener, timeout=0).unique_id == 'late'


def test_a_failing_roll_call_is_tried_again_later_not_at_once():
    clock, pushed = [100.0], [True]
    zaqar, roll_call = roll_call_of(clock, pushed)

    def down(*args, **kwargs):
        raise ConnectionError('zaqar is down')
    zaqar.post = down
    assert roll_call.competitors() == 1   # as if alone
    assert roll_call.next_duty() == 100.0 + presence.LISTENER_REFRESH


class FakeDoorbell:
    def __init__(self):
        self.subscribed = threading.Event()
        self.subscribed.set()

    def stop(self, wait=True):
        pass


def test_push_is_trusted_once_something_was_pushed(driver, zaqar, caplog):
    listener = poller(driver)
    listener._doorbell = FakeDoorbell()
    assert not listener.pushing()     # subscribed: not proof enough
    listener._ring('topic_consumers', {'consumer': 'x'})  # its own entry
    assert listener.pushing()
    assert poll(listener, timeout=0) is None
    assert listener._safety_net       # the next read: the safety net
    # A message nothing rang for, found by the safety net: push does not
    # deliver (no notifier pipeline?): poll as without it.
    zaqar.put_raw('topic', request_body('unrung'))
    listener._next_fetch = 0.0
    assert poll(listener, timeout=0).unique_id == 'unrung'
    assert not listener.pushing()
    assert 'did not push messages' in caplog.text
    listener._ring('topic', None)
    assert listener.pushing()


def test_the_next_entry_comes_within_the_period_the_last_one_promised():
    clock, pushed = [100.0], [False]
    zaqar, roll_call = roll_call_of(clock, pushed)
    roll_call.competitors()             # polling: every 20 s
    pushed[0] = True                    # push works from now on
    assert roll_call.next_duty() == 100.0 + presence.ANNOUNCE_EVERY
    clock[0] += presence.ANNOUNCE_EVERY
    roll_call.competitors()
    entries = [m.body for m in zaqar.queues['t_consumers']]
    assert [e['every'] for e in entries] == [
        presence.ANNOUNCE_EVERY, presence.ANNOUNCE_EVERY_PUSHED]


def test_once_subscribed_an_entry_is_posted_to_prove_push(driver, zaqar):
    listener = poller(driver)
    assert poll(listener, timeout=0) is None     # entry posted
    roll_call, = listener.roll_calls.values()
    assert roll_call.next_duty() > time.monotonic()
    listener._doorbell = FakeDoorbell()
    listener._ring(None, None)                   # subscribed
    assert roll_call.next_duty() <= time.monotonic()
    entries = len(zaqar.queues['topic_consumers'])
    assert poll(listener, timeout=0) is None
    assert len(zaqar.queues['topic_consumers']) == entries + 1


class CountingZaqar(MemoryZaqar):
    """Records the queues popped, in order."""

    def __init__(self):
        super().__init__()
        self.popped = []

    def pop(self, queue, limit):
        self.popped.append(queue)
        return super().pop(queue, limit)


@pytest.fixture
def counting(make_driver):
    z = CountingZaqar()
    drv = make_driver()
    drv.zaqar = drv.dealer.zaqar = z
    return drv, z


def pushing_poller(driver):
    listener = poller(driver)
    assert poll(listener, timeout=0) is None   # the first read of all
    listener.pushing = lambda: True
    listener._next_fetch = time.monotonic() + 3600  # the safety net: far
    return listener


def test_a_push_reads_the_queue_it_names_and_no_other(counting):
    driver, zaqar = counting
    listener = pushing_poller(driver)
    zaqar.popped.clear()
    body = request_body('pushed')
    zaqar.put_raw('topic_s1', body)
    listener._ring('topic_s1', body)
    assert poll(listener, timeout=0).unique_id == 'pushed'
    # Read to its end: the next push says when there is more.
    assert poll(listener, timeout=0.05) is None
    assert zaqar.popped == ['topic_s1']


def test_a_pushed_message_not_stored_yet_is_read_again_soon(counting):
    # Zaqar pushes from a thread while it stores the message: the push
    # can come first.
    driver, zaqar = counting
    listener = pushing_poller(driver)
    zaqar.popped.clear()
    body = request_body('early')
    listener._ring('topic_s1', body)
    assert poll(listener, timeout=0) is None       # not there yet
    zaqar.put_raw('topic_s1', body)
    assert poll(listener, timeout=1).unique_id == 'early'
    assert zaqar.popped == ['topic_s1', 'topic_s1']


def test_a_pushed_message_taken_by_another_server_is_given_up(counting):
    driver, zaqar = counting
    listener = pushing_poller(driver)
    zaqar.popped.clear()
    listener._ring('topic_s1', request_body('elsewhere'))
    assert poll(listener, timeout=1) is None
    deadline = time.monotonic() + 1
    while listener._rung and time.monotonic() < deadline:
        assert poll(listener, timeout=0.05) is None
    assert not listener._rung
    assert zaqar.popped == ['topic_s1'] * (1 + len(rings.RECHECKS))


def test_push_restarting_still_reads_every_queue(counting):
    driver, zaqar = counting
    listener = pushing_poller(driver)
    zaqar.popped.clear()
    listener._ring(None, None)
    assert poll(listener, timeout=0) is None
    assert set(zaqar.popped) >= {'topic', 'topic_s1'}
