"""What a hostile guest or a careless controller puts through the bridge.

Issue 13's attack cases, rebuilt against a running daemon, a real
RabbitMQ, a real zaqar-server and unmodified oslo.messaging: a conductor
that rebuilds its request context with ``RequestContext.from_dict()`` as
OpenStack services do, and a controller casting with its credentials in
the context.  The guest side uses zaqarclient.
"""

import json
import threading
import uuid

import kombu
from oslo_context import context as oslo_context
import oslo_messaging
import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional

# test_rpc's routes: guests (to_zaqar), conductor (to_amqp, heartbeat
# allowed, defaults otherwise), replies.
MAX_CALL_TIMEOUT = 600    # max_call_timeout default, bridge/routes/to_amqp


class FromDict(oslo_messaging.NoOpSerializer):
    """How a service rebuilds the context (e.g. Trove's conductor)."""

    def deserialize_context(self, ctxt):
        return oslo_context.RequestContext.from_dict(ctxt)


class Conductor:
    """Records each heartbeat's rebuilt context and arguments."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def heartbeat(self, ctxt, **kwargs):
        with self.lock:
            self.calls.append((ctxt, kwargs))

    def seen(self, n):
        with self.lock:
            return [kw.get('n') for _, kw in self.calls].count(n)


@pytest.fixture
def conductor(rabbit, names):
    """A real oslo.messaging RPC server on names.conductor, and a tap: a
    queue of the test's own bound the same way, to read what the bridge
    published exactly as the server received it."""
    endpoint = Conductor()
    server = oslo_messaging.get_rpc_server(
        bridgeutil.rpc_transport(rabbit),
        oslo_messaging.Target(exchange=names.exchange,
                              topic=names.conductor, server='c1'),
        [endpoint], executor='threading', serializer=FromDict())
    server.start()
    endpoint.server = server
    with kombu.Connection(rabbit.kombu_url) as conn:
        endpoint.tap = kombu.Queue(
            'tap-%s' % uuid.uuid4().hex, kombu.Exchange(
                names.exchange, 'topic', durable=False),
            routing_key=names.conductor, exclusive=True,
            channel=conn.default_channel)
        endpoint.tap.declare()
        yield endpoint
    if server.listener is not None:
        bridgeutil.stop_server(server)


def tapped(conductor, expect):
    """The oslo messages the bridge published, as the conductor got them."""
    got = []

    def more():
        message = conductor.tap.get(no_ack=True)
        while message is not None:
            got.append(json.loads(message.body)['oslo.message'])
            message = conductor.tap.get(no_ack=True)
        return len(got) >= expect
    bridgeutil.wait_until(more, what='%d published message(s)' % expect)
    return [json.loads(m) for m in got]


def post(zaqar, tenant, queue, message):
    zaqar.client(tenant).queue(queue).post([{'ttl': 300, 'body': {
        'bridge': 1, 'message': message}}])


def heartbeat(n, **fields):
    return dict({'method': 'heartbeat', 'args': {'n': n}, 'version': '1.0',
                 '_unique_id': uuid.uuid4().hex}, **fields)


def test_conductor_context_has_no_guest_chosen_identity(
        rpc_daemon, conductor, zaqar, names):
    """Issue 13 item 2: oslo.context's aliases and other keys pass no more."""
    post(zaqar, names.tenant_a, names.conductor, heartbeat(
        1, _context_user='admin', _context_user_id='admin',
        _context_domain='evil', _context_user_domain='evil',
        _context_project_domain='evil', _context_domain_id='evil',
        _context_project_domain_id='evil',
        _context_auth_token_info={'token': {'roles': [{'name': 'admin'}]}},
        _context_show_deleted=True, _context_read_only=False,
        _context_service_catalog=[{'type': 'identity'}],
        _context_system_scope='all', _context_is_admin_project=True,
        _context_user_name='admin', _context_project_name='admin',
        _context_project_id=names.tenant_b, _context_tenant=names.tenant_b,
        _context_project=names.tenant_b, _context_is_admin=True,
        _context_roles=['admin'], _context_auth_token='stolen',
        _context_request_id='req-from-guest'))
    bridgeutil.wait_until(lambda: conductor.calls, what='the heartbeat')
    (ctxt, kwargs), = conductor.calls
    assert kwargs == {'n': 1}
    assert (ctxt.user_id, ctxt.domain_id, ctxt.user_domain_id,
            ctxt.project_domain_id, ctxt.auth_token, ctxt.user_name,
            ctxt.project_name, ctxt.system_scope) == (None,) * 8
    assert ctxt.project_id == names.tenant_a
    assert (ctxt.is_admin, ctxt.roles, ctxt.show_deleted,
            ctxt.is_admin_project) == (False, [], False, False)
    # The allowlisted key did cross: the message was the guest's.
    assert ctxt.request_id == 'req-from-guest'
    (published,) = tapped(conductor, 1)
    assert sorted(k for k in published if k.startswith('_context_')) == [
        '_context_is_admin', '_context_is_admin_project', '_context_project',
        '_context_project_id', '_context_request_id', '_context_roles',
        '_context_tenant']


def guest_queue(zaqar, names):
    return zaqar.client(names.tenant_a).queue('guestagent_%s' % names.guest)


def test_guest_sees_no_controller_credentials(rpc_daemon, rabbit, zaqar,
                                              names):
    """Issue 13 item 3: a controller's token, roles, admin flag."""
    ctx = oslo_context.RequestContext(
        auth_token='ctx-token-3f1a', user_id='u-1', project_id=names.tenant_a,
        is_admin=True, roles=['admin', 'member'], request_id='req-ctl-1',
        service_token='svc-token', system_scope='all').to_dict()
    # What trove 26's TroveContext.to_dict() adds.
    ctx.update(limit=10, marker='m-1', service_catalog=[{'type': 'swift'}],
               trove_notification={'server_type': 'taskmanager',
                                   'request_id': 'req-ctl-1'})
    client = oslo_messaging.get_rpc_client(
        bridgeutil.rpc_transport(rabbit), oslo_messaging.Target(
            exchange=names.exchange, topic='guestagent.%s' % names.guest))
    client.cast(ctx, 'prepare', memory_mb=512)
    (body,) = bridgeutil.drain(guest_queue(zaqar, names), 1)
    message = body['message']
    assert message['args'] == {'memory_mb': 512}
    text = json.dumps(body)
    for secret in ('ctx-token-3f1a', 'svc-token', 'swift'):
        assert secret not in text
    for key in ('auth_token', 'service_token', 'roles', 'is_admin',
                'is_admin_project', 'system_scope', 'service_catalog'):
        assert '_context_' + key not in message
    # What the guest rebuilds its context from is there.
    got = {k[len('_context_'):]: v for k, v in message.items()
           if k.startswith('_context_')}
    assert {k: got.get(k) for k in (
        'project_id', 'user', 'request_id', 'limit', 'marker',
        'trove_notification')} == {
        'project_id': names.tenant_a, 'user': 'u-1',
        'request_id': 'req-ctl-1', 'limit': 10, 'marker': 'm-1',
        'trove_notification': ctx['trove_notification']}
    rebuilt = oslo_context.RequestContext.from_dict(got)
    assert (rebuilt.project_id, rebuilt.user_id, rebuilt.auth_token,
            rebuilt.is_admin, rebuilt.roles) == (
        names.tenant_a, 'u-1', None, False, [])


def test_deep_nesting_dead_lettered(rpc_daemon, conductor, zaqar, rabbit,
                                    names):
    """Issue 13 item 5: 975 levels killed the conductor's decoder.

    Zaqar itself refuses a body that deep, so it comes the way the attack
    sent it: as a plain oslo.messaging envelope, the message a JSON string
    the bridge opens.
    """
    levels = 975
    zaqar.client(names.tenant_a).queue(names.conductor).post([{
        'ttl': 300, 'body': {'oslo.version': '2.0', 'oslo.message': (
            '{"method": "heartbeat", "args": {"n": 1, "deep": %s"x"%s}, '
            '"_unique_id": "deep-1"}' % ('[' * levels, ']' * levels))}}])
    (dead,) = bridgeutil.dead_letters(rabbit, names.dlq, 1)
    assert 'more than max_depth = 32' in dead.headers['x-bridge-reason']
    assert dead.headers['x-bridge-tenant'] == names.tenant_a
    # A message of ordinary depth passes.
    post(zaqar, names.tenant_a, names.conductor, heartbeat(
        2, args={'n': 2, 'nested': [[[{'a': [1]}]]]}))
    bridgeutil.wait_until(lambda: conductor.seen(2), what='the heartbeat')
    assert conductor.seen(1) == 0


def test_huge_timeout_is_bounded(rpc_daemon, conductor, zaqar, names):
    """Issue 13 item 5: _timeout 1e12 made the watchdog raise OverflowError.
    """
    errors = []
    hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        post(zaqar, names.tenant_a, names.conductor,
             heartbeat(1, _timeout=1e12))
        bridgeutil.wait_until(lambda: conductor.seen(1), what='heartbeat')
        (published,) = tapped(conductor, 1)
        # Stopping the server joins its dispatches (and their watchdogs).
        bridgeutil.stop_server(conductor.server)
    finally:
        threading.excepthook = hook
    assert published['_timeout'] == MAX_CALL_TIMEOUT
    assert not errors, errors


def test_tenant_cannot_burn_another_tenants_unique_id(rpc_daemon, conductor,
                                                      zaqar, names):
    """Issue 13 item 5: the conductor's duplicate filter is per message id;
    B reusing A's id must not get A's next message dropped, while a
    redelivery of A's own message still is recognised."""
    shared = uuid.uuid4().hex
    post(zaqar, names.tenant_b, names.conductor,
         heartbeat(1, _unique_id=shared))
    bridgeutil.wait_until(lambda: conductor.seen(1), what="B's heartbeat")
    post(zaqar, names.tenant_a, names.conductor,
         heartbeat(2, _unique_id=shared))
    bridgeutil.wait_until(lambda: conductor.seen(2), what="A's heartbeat")
    # The same message of A's again (as after a lost delete): dropped by
    # the conductor's duplicate filter; then one more to wait for.
    post(zaqar, names.tenant_a, names.conductor,
         heartbeat(2, _unique_id=shared))
    post(zaqar, names.tenant_a, names.conductor, heartbeat(3))
    bridgeutil.wait_until(lambda: conductor.seen(3), what='the last one')
    published = tapped(conductor, 4)
    bridgeutil.stop_server(conductor.server)
    assert conductor.seen(2) == 1
    ids = [m['_unique_id'] for m in published]
    assert ids[1] == ids[2] != ids[0]
    assert shared not in ids
