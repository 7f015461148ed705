"""RPC across the bridge, with unmodified oslo.messaging on the rabbit side.

The guest side here uses only zaqarclient, as the tenant, speaking the
documented body format (doc/protocol.rst).
"""

import sys
import threading
import time
import uuid

import kombu
import oslo_messaging
from oslo_messaging._drivers import common as rpc_common
import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def start_daemon(tmp_path, rabbit, zaqar, names, amqp_options=''):
    """A daemon carrying calls both ways: guests, conductor and replies.

    ``amqp_options``: more lines for its ``[amqp]`` section.
    """
    tenants = '%s, %s' % (names.tenant_a, names.tenant_b)
    routes = [
        ('guests', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            tenant = context:project_id
            ''' % names.exchange),
        ('conductor', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = %s
            tenants = %s
            allowed_methods = heartbeat, report
            poll_interval = 0.2
            ''' % (names.exchange, names.conductor, tenants)),
        ('replies', '''
            direction = to_amqp
            exchange =
            zaqar_queue = bridge_replies
            tenants = %s
            poll_interval = 0.2
            ''' % tenants),
    ]
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, routes,
        extra=bridgeutil.dead_letter_section(names.dlq) + amqp_options)
    return bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(4)


def stop_daemon(d, rabbit):
    assert d.stop() == 0
    bridgeutil.delete_queues(rabbit, d.config)


@pytest.fixture
def daemon(tmp_path, rabbit, zaqar, names):
    d = start_daemon(tmp_path, rabbit, zaqar, names)
    yield d
    stop_daemon(d, rabbit)


class Guest:
    """A guest agent that answers calls using only zaqarclient.

    ``client`` is the guest's own zaqarclient client; the reply tokens it
    answered with are kept in ``tokens``.
    """

    def __init__(self, client, queue, handler):
        self.client = client
        self.queue = self.client.queue(queue)
        self.handler = handler
        self.tokens = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.is_set():
            for message in self.queue.claim(ttl=60, grace=60, limit=10):
                self.answer(message.body)
                message.delete()
            time.sleep(0.02)

    def answer(self, body):
        msg = body['message']
        if 'reply' not in body:
            return
        self.tokens.append(body['reply']['token'])
        try:
            result, failure = self.handler(msg['method'], msg['args']), None
        except Exception:
            result = None
            failure = rpc_common.serialize_remote_exception(sys.exc_info())
        self.client.queue(body['reply']['queue']).post([{'ttl': 60, 'body': {
            'bridge': 1, 'id': uuid.uuid4().hex,
            'reply_token': body['reply']['token'],
            'message': {'result': result, 'failure': failure,
                        'ending': True, '_msg_id': msg['_msg_id']}}}])

    def stop(self):
        self.stopped.set()
        self.thread.join()


def handler(method, args):
    if method == 'boom':
        raise ValueError('guest says no: %s' % args['why'])
    return {'method': method, 'args': args}


def rpc_client(rabbit, names, timeout=15):
    target = oslo_messaging.Target(exchange=names.exchange,
                                   topic='guestagent.%s' % names.guest)
    return oslo_messaging.get_rpc_client(bridgeutil.rpc_transport(rabbit),
                                         target, timeout=timeout)


def test_call_returns_raises_and_times_out(daemon, rabbit, zaqar, names):
    guest = Guest(zaqar.client(names.tenant_a),
                  'guestagent_%s' % names.guest, handler)
    try:
        client = rpc_client(rabbit, names)
        ctx = {'project_id': names.tenant_a}
        assert client.call(ctx, 'get_status', x=1) == {
            'method': 'get_status', 'args': {'x': 1}}
        with pytest.raises(ValueError, match='guest says no: disk full'):
            client.call(ctx, 'boom', why='disk full')
    finally:
        guest.stop()
    # Nobody answers any more: the caller times out as usual.
    with pytest.raises(oslo_messaging.MessagingTimeout):
        client.prepare(timeout=3).call(ctx, 'get_status')


def post(zaqar, tenant, queue, body):
    zaqar.client(tenant).queue(queue).post([{'ttl': 300, 'body': body}])


def dead_letters(rabbit, queue, expect):
    from tests.functional import test_forward
    return test_forward.dead_letters(rabbit, queue, expect)


def test_guest_cast_reaches_conductor_as_its_own_tenant(
        daemon, conductor, zaqar, rabbit, names):
    post(zaqar, names.tenant_a, names.conductor, {'bridge': 1, 'message': {
        'method': 'drop_everything', 'args': {}, '_unique_id': 'x1'}})
    post(zaqar, names.tenant_a, names.conductor, {'bridge': 1, 'message': {
        'method': 'heartbeat', 'args': {'instance_id': 'i-1'},
        'version': '1.0', '_unique_id': 'x2',
        '_context_project_id': names.tenant_b, '_context_is_admin': True,
        '_context_roles': ['admin']}})
    bridgeutil.wait_until(lambda: conductor.calls, what='the heartbeat')
    time.sleep(1)
    assert len(conductor.calls) == 1
    method, ctxt, kwargs = conductor.calls[0]
    assert method == 'heartbeat' and kwargs == {'instance_id': 'i-1'}
    assert ctxt['project_id'] == names.tenant_a
    assert ctxt['is_admin'] is False and ctxt['roles'] == []
    (dead,) = dead_letters(rabbit, names.dlq, 1)
    assert "'drop_everything' is not in allowed_methods" in \
        dead.headers['x-bridge-reason']
    assert dead.headers['x-bridge-tenant'] == names.tenant_a


def test_guest_call_answered_into_guest_reply_queue(
        daemon, conductor, zaqar, names):
    post(zaqar, names.tenant_b, names.conductor, {'bridge': 1, 'message': {
        'method': 'heartbeat', 'args': {'n': 7}, '_msg_id': 'guest-m1',
        '_reply_q': 'reply_guest1', '_unique_id': 'u1'}})
    (body,) = bridgeutil.drain(
        zaqar.client(names.tenant_b).queue('reply_guest1'), 1)
    assert body['message']['_msg_id'] == 'guest-m1'
    assert body['message']['result'] == {'seen': {'n': 7}}
    assert body['message']['failure'] is None
    assert conductor.calls[0][1]['project_id'] == names.tenant_b


def test_forged_cross_tenant_and_replayed_tokens_rejected(
        daemon, rabbit, zaqar, names):
    received = []
    with kombu.Connection(rabbit.kombu_url) as conn:
        reply_q = kombu.Queue('reply_%s' % uuid.uuid4().hex, exclusive=True,
                              channel=conn.default_channel)
        reply_q.declare()
        target = oslo_messaging.Target(exchange=names.exchange,
                                       topic='guestagent.%s' % names.guest)
        # A real call, so the guest gets a genuine token for tenant A.
        client = oslo_messaging.get_rpc_client(
            bridgeutil.rpc_transport(rabbit), target, timeout=2)
        with pytest.raises(oslo_messaging.MessagingTimeout):
            client.call({'project_id': names.tenant_a}, 'get_status')
        (request,) = bridgeutil.drain(zaqar.client(names.tenant_a).queue(
            'guestagent_%s' % names.guest), 1)
        token = request['reply']['token']

        def answer(tenant, tok):
            post(zaqar, tenant, 'bridge_replies', {
                'bridge': 1, 'reply_token': tok, 'message': {
                    'result': 'x', 'failure': None, 'ending': True}})
        answer(names.tenant_b, token)                     # other tenant
        answer(names.tenant_a, token[:-4] + 'AAAA')       # forged
        answer(names.tenant_a, token)                     # genuine
        answer(names.tenant_a, token)                     # replay
        dead = dead_letters(rabbit, names.dlq, 3)
        reasons = sorted(m.headers['x-bridge-reason'] for m in dead)
        assert any('belongs to another tenant' in r for r in reasons)
        assert any('signature invalid' in r for r in reasons)
        assert any('replay' in r for r in reasons)
        del received
