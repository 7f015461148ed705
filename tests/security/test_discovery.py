"""tenant_discovery = trusts: a tenant is served once it trusts the bridge.

No tenant is configured: the route finds the projects whose users created
a trust for the bridge's user, with real Keystone and a keystone-auth
zaqar-server, and drains their queues without a restart or a reload.
"""

import uuid

import pytest

from tests.functional import bridgeutil
from tests.security import keystoneutil

pytestmark = pytest.mark.functional


@pytest.fixture
def daemon(tmp_path, rabbit, keystone, zaqar_keystone, conductor_server):
    names = conductor_server[0]
    routes = [('conductor', '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = %s
        allowed_methods = heartbeat
        tenant_discovery = trusts
        tenant_discovery_interval = 1
        poll_interval = 0.2
        ''' % (names.exchange, names.conductor))]
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar_keystone, routes,
        extra=keystoneutil.keystone_zaqar_section(keystone, {}))
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    yield d
    assert d.stop() == 0
    bridgeutil.delete_queues(rabbit, config)


@pytest.fixture
def conductor_server(rabbit):
    names = keystoneutil.Names()
    endpoint = bridgeutil.Conductor()
    server = bridgeutil.rpc_server(rabbit, names.exchange, names.conductor,
                                   endpoint)
    yield names, endpoint
    bridgeutil.stop_server(server)


def test_new_trust_is_discovered(daemon, conductor_server, keystone,
                                 zaqar_keystone):
    names, conductor = conductor_server
    a = keystone.tenants['a']
    found = 'serving 1 new tenant(s) found by trusts: %s' % a.id
    daemon.wait_for_log(lambda text: 'draining 0 tenant queue(s)' in text,
                        what='the route running without tenants')
    assert found not in daemon.log()
    trust = keystone.create_trust(a)
    try:
        daemon.wait_for_log(lambda text: found in text,
                            what='tenant A discovered')
        keystoneutil.post(zaqar_keystone, keystone, a, names.conductor, {
            'bridge': 1, 'message': {'method': 'heartbeat', 'args': {'n': 1},
                                     '_unique_id': uuid.uuid4().hex}})
        bridgeutil.wait_until(lambda: conductor.calls,
                              what='the heartbeat of tenant A')
        (_, ctxt, kwargs), = conductor.calls
        assert ctxt['project_id'] == a.id and kwargs == {'n': 1}
        assert 'Traceback' not in daemon.log()
    finally:
        keystone.delete_trust(a, trust)
