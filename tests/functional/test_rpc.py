"""RPC across the bridge, with unmodified oslo.messaging on the rabbit side.

The guest side here uses only zaqarclient, as the tenant, speaking the
documented body format (doc/protocol.rst).
"""

import time
import uuid

import kombu
import oslo_messaging
import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def test_call_returns_raises_and_times_out(rpc_daemon, rabbit, zaqar, names):
    guest = bridgeutil.Guest(zaqar.client(names.tenant_a),
                             'guestagent_%s' % names.guest,
                             bridgeutil.guest_handler)
    try:
        client = bridgeutil.guest_rpc_client(rabbit, names)
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


def test_guest_cast_reaches_conductor_as_its_own_tenant(
        rpc_daemon, conductor, zaqar, rabbit, names):
    bridgeutil.post(zaqar, names.tenant_a, names.conductor, {
        'bridge': 1, 'message': {
            'method': 'drop_everything', 'args': {}, '_unique_id': 'x1'}})
    bridgeutil.post(zaqar, names.tenant_a, names.conductor, {
        'bridge': 1, 'message': {
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
    (dead,) = bridgeutil.dead_letters(rabbit, names.dlq, 1)
    assert "'drop_everything' is not in allowed_methods" in \
        dead.headers['x-bridge-reason']
    assert dead.headers['x-bridge-tenant'] == names.tenant_a


def test_guest_call_answered_into_guest_reply_queue(
        rpc_daemon, conductor, zaqar, names):
    bridgeutil.post(zaqar, names.tenant_b, names.conductor, {
        'bridge': 1, 'message': {
            'method': 'heartbeat', 'args': {'n': 7}, '_msg_id': 'guest-m1',
            '_reply_q': 'reply_guest1', '_unique_id': 'u1'}})
    (body,) = bridgeutil.drain(
        zaqar.client(names.tenant_b).queue('reply_guest1'), 1)
    assert body['message']['_msg_id'] == 'guest-m1'
    assert body['message']['result'] == {'seen': {'n': 7}}
    assert body['message']['failure'] is None
    assert conductor.calls[0][1]['project_id'] == names.tenant_b


def test_forged_cross_tenant_and_replayed_tokens_rejected(
        rpc_daemon, rabbit, zaqar, names):
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
            bridgeutil.post(zaqar, tenant, 'bridge_replies', {
                'bridge': 1, 'reply_token': tok, 'message': {
                    'result': 'x', 'failure': None, 'ending': True}})
        answer(names.tenant_b, token)                     # other tenant
        answer(names.tenant_a, token[:-4] + 'AAAA')       # forged
        answer(names.tenant_a, token)                     # genuine
        answer(names.tenant_a, token)                     # replay
        dead = bridgeutil.dead_letters(rabbit, names.dlq, 3)
        reasons = sorted(m.headers['x-bridge-reason'] for m in dead)
        assert any('belongs to another tenant' in r for r in reasons)
        assert any('signature invalid' in r for r in reasons)
        assert any('replay' in r for r in reasons)
        del received
