"""The daemon with tenant_access = trusts, real Keystone, keystone-auth Zaqar.

Guests here are tenants' Keystone users talking to Zaqar with their own
tokens (what a guest with auth_strategy = keystone does).  The bridge
reaches each tenant's project with a trust that tenant's user gave it.
"""

import time
import uuid

import oslo_messaging
import pytest

from tests.fixtures import keystone as ks_fixture
from tests.functional import bridgeutil
from tests.security import keystoneutil

pytestmark = pytest.mark.functional


def start_daemon(tmp_path, rabbit, zaqar, keystone, names, trusts, *args):
    """The bridge: guests (to_zaqar), conductor and replies (to_amqp)."""
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar,
        bridgeutil.rpc_routes(names, list(trusts), 'heartbeat'),
        extra=keystoneutil.keystone_zaqar_section(keystone, trusts)
        + bridgeutil.dead_letter_section(names.dlq))
    return bridgeutil.Daemon(config, tmp_path / 'bridge.log',
                             *args).start(4)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, rabbit, keystone, zaqar_keystone):
    """One --debug daemon for the module, the tenants' trusts, a conductor."""
    a, b = keystone.tenants['a'], keystone.tenants['b']
    trusts = {a.id: keystone.create_trust(a), b.id: keystone.create_trust(b)}
    names = keystoneutil.Names()
    endpoint = bridgeutil.Conductor()
    server = bridgeutil.rpc_server(rabbit, names.exchange, names.conductor,
                                   endpoint)
    daemon = start_daemon(tmp_path_factory.mktemp('bridge'), rabbit,
                          zaqar_keystone, keystone, names, trusts, '--debug')
    yield names, daemon, endpoint
    try:
        assert daemon.stop() == 0
    finally:
        bridgeutil.stop_server(server)
        bridgeutil.delete_queues(rabbit, daemon.config)
        for tenant in (a, b):
            keystone.delete_trust(tenant, trusts[tenant.id])


def dead_letters(rabbit, queue, expect):
    return bridgeutil.dead_letters(rabbit, queue, expect)


def rpc_client(rabbit, names, timeout=20):
    target = oslo_messaging.Target(exchange=names.exchange,
                                   topic='guestagent.%s' % names.guest)
    return oslo_messaging.get_rpc_client(bridgeutil.rpc_transport(rabbit),
                                         target, timeout=timeout)


def guest_agent(zaqar, tenant, names):
    """Tenant's guest agent, with the tenant's own token."""
    return bridgeutil.Guest(zaqar.tenant_client(tenant),
                            'guestagent_%s' % names.guest,
                            answer)


def answer(method, args):
    if method == 'boom':
        raise ValueError('no')
    return {'method': method}


def test_bridge_posts_into_a_project_only_a_reads(setup, rabbit, keystone,
                                                  zaqar_keystone):
    names, daemon, _ = setup
    a, b = keystone.tenants['a'], keystone.tenants['b']
    client = rpc_client(rabbit, names)
    client.cast({'project_id': a.id}, 'refresh', who='a')
    client.cast({'project_id': b.id}, 'refresh', who='b')
    queue = 'guestagent_%s' % names.guest
    (got_a,) = bridgeutil.drain(zaqar_keystone.tenant_client(a).queue(queue),
                                1)
    (got_b,) = bridgeutil.drain(zaqar_keystone.tenant_client(b).queue(queue),
                                1)
    assert got_a['message']['args'] == {'who': 'a'}
    assert got_b['message']['args'] == {'who': 'b'}


def test_guest_cannot_act_for_another_tenant(setup, rabbit, keystone,
                                             zaqar_keystone):
    names, daemon, conductor = setup
    a, b = keystone.tenants['a'], keystone.tenants['b']
    before = len(conductor.calls)
    # Body and context spoofing: the queue's project wins.
    keystoneutil.post(zaqar_keystone, keystone, a, names.conductor, {
        'bridge': 1, 'message': {
            'method': 'heartbeat', 'args': {'n': 1}, 'version': '1.0',
            '_unique_id': uuid.uuid4().hex, '_context_project_id': b.id,
            '_context_tenant': b.id, '_context_is_admin': True,
            '_context_roles': ['admin'], '_context_auth_token': 'stolen'},
        'route': 'conductor', 'tenant': b.id})
    # A disallowed method: dead-lettered, the conductor never sees it.
    keystoneutil.post(zaqar_keystone, keystone, a, names.conductor, {
        'bridge': 1, 'message': {'method': 'drop_everything', 'args': {},
                                 '_unique_id': uuid.uuid4().hex}})
    # A guest call claiming B's project: answered into A's reply queue.
    reply_q = 'reply_%s' % uuid.uuid4().hex
    keystoneutil.post(zaqar_keystone, keystone, a, names.conductor, {
        'bridge': 1, 'message': {
            'method': 'heartbeat', 'args': {'n': 2}, '_msg_id': 'm-a',
            '_reply_q': reply_q, '_unique_id': uuid.uuid4().hex,
            '_context_project_id': b.id}})
    (answer,) = bridgeutil.drain(
        zaqar_keystone.tenant_client(a).queue(reply_q), 1)
    assert answer['message']['result'] == {'seen': {'n': 2}}
    assert list(zaqar_keystone.tenant_client(b).queue(reply_q).messages(
        echo=True)) == []
    bridgeutil.wait_until(lambda: len(conductor.calls) >= before + 2,
                          what='two heartbeats')
    (dead,) = [m for m in dead_letters(rabbit, names.dlq, 1)
               if 'drop_everything' in m.headers['x-bridge-reason']]
    assert "'drop_everything' is not in allowed_methods" in \
        dead.headers['x-bridge-reason']
    assert dead.headers['x-bridge-tenant'] == a.id
    time.sleep(1)
    calls = conductor.calls[before:]
    assert [c[0] for c in calls] == ['heartbeat', 'heartbeat']
    for _, ctxt, _ in calls:
        assert ctxt['project_id'] == a.id and ctxt['tenant'] == a.id
        assert ctxt['is_admin'] is False and ctxt['roles'] == []
        assert 'auth_token' not in ctxt or ctxt['auth_token'] != 'stolen'


def test_forged_foreign_and_replayed_reply_tokens(setup, rabbit, keystone,
                                                  zaqar_keystone):
    names, daemon, _ = setup
    a, b = keystone.tenants['a'], keystone.tenants['b']
    guest = guest_agent(zaqar_keystone, a, names)
    try:
        client = rpc_client(rabbit, names)
        assert client.call({'project_id': a.id}, 'status') == {
            'method': 'status'}
    finally:
        guest.stop()
    (token,) = guest.tokens

    def answer(tenant, tok):
        keystoneutil.post(zaqar_keystone, keystone, tenant, 'bridge_replies', {
            'bridge': 1, 'reply_token': tok, 'message': {
                'result': 'x', 'failure': None, 'ending': True}})
    answer(b, token)                        # B replays A's token
    answer(a, token[:-4] + 'AAAA')          # forged signature
    answer(a, token)                        # replayed after use
    reasons = sorted(m.headers['x-bridge-reason']
                     for m in dead_letters(rabbit, names.dlq, 3))
    assert any('belongs to another tenant' in r for r in reasons), reasons
    assert any('signature invalid' in r for r in reasons), reasons
    assert any('replay' in r for r in reasons), reasons


def test_no_secret_in_debug_log(setup, rabbit, keystone, zaqar_keystone):
    """--debug, traffic both ways: no password, secret or token logged."""
    names, daemon, _ = setup
    a = keystone.tenants['a']
    guest = guest_agent(zaqar_keystone, a, names)
    try:
        client = rpc_client(rabbit, names)
        client.call({'project_id': a.id, 'auth_token': 'ctx-token-9b1f'},
                    'status')
        with pytest.raises(ValueError):
            client.call({'project_id': a.id}, 'boom')
    finally:
        guest.stop()
    keystoneutil.post(zaqar_keystone, keystone, a, names.conductor, {
        'bridge': 1, 'message': {'method': 'heartbeat', 'args': {},
                                 '_unique_id': uuid.uuid4().hex}})
    time.sleep(2)
    log = daemon.log()
    assert 'DEBUG' in log
    secrets = {'bridge password': keystone.bridge_password,
               'reply secret': bridgeutil.SECRET,
               'admin password': ks_fixture.ADMIN_PASSWORD,
               'rabbit password': 'guest:guest@',
               'context token': 'ctx-token-9b1f',
               'fernet token': 'gAAAAA'}
    secrets.update(('reply token %d' % i, token)
                   for i, token in enumerate(guest.tokens))
    leaked = [what for what, value in secrets.items() if value in log]
    assert not leaked, leaked


def test_deleted_trust_stops_access_cleanly(tmp_path, rabbit, keystone,
                                            zaqar_keystone):
    """The trust of A goes: A's messages are refused, B's still flow."""
    a, b = keystone.tenants['a'], keystone.tenants['b']
    trusts = {a.id: keystone.create_trust(a), b.id: keystone.create_trust(b)}
    names = keystoneutil.Names()
    daemon = start_daemon(tmp_path, rabbit, zaqar_keystone, keystone, names,
                          trusts)
    try:
        client = rpc_client(rabbit, names)
        queue = 'guestagent_%s' % names.guest
        client.cast({'project_id': a.id}, 'refresh', n=1)
        bridgeutil.drain(zaqar_keystone.tenant_client(a).queue(queue), 1)
        workers = daemon.worker_pids()
        keystone.delete_trust(a, trusts[a.id])
        client.cast({'project_id': a.id}, 'refresh', n=2)
        daemon.wait_for_log(lambda text: 'Project %s: Keystone refused '
                            'trust %s' % (a.id, trusts[a.id]) in text
                            and 'dead-lettered' in text,
                            what='the refused trust logged')
        (dead,) = dead_letters(rabbit, names.dlq, 1)
        reason = dead.headers['x-bridge-reason']
        assert 'no usable trust for project %s' % a.id in reason, reason
        # B is not held up by A.
        client.cast({'project_id': b.id}, 'refresh', n=3)
        (got,) = bridgeutil.drain(zaqar_keystone.tenant_client(b).queue(
            queue), 1)
        assert got['message']['args'] == {'n': 3}
        assert daemon.proc.poll() is None
        assert daemon.worker_pids() == workers
        assert 'Traceback' not in daemon.log()
        assert list(zaqar_keystone.tenant_client(a).queue(queue).messages(
            echo=True)) == []
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, daemon.config)
        keystone.delete_trust(b, trusts[b.id])
