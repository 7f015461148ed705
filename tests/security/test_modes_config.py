"""[zaqar] modes that cannot keep tenants apart are refused (no servers)."""

import pytest

from bridge.daemon import config
from bridge.routes import load as route_load
from bridge.zaqar import clients as zaqar_clients
from tests.unit import confutil

KEYSTONE = '''
[zaqar]
auth_strategy = keystone
tenant_access = %s
auth_type = %s
auth_url = http://127.0.0.1:5000/v3
[route:r1]
direction = to_zaqar
exchange = trove
tenant = context:project_id
%s
'''
SHARED = ("with [zaqar] tenant_access = service_project every tenant's "
          "queues share the bridge's project, so it must contain {tenant} ")
SAFE = 'zaqar_queue = {tenant}-{server}\nreply_queue = {tenant}-replies\n'
REVERSE = '''
[route:r2]
direction = to_amqp
exchange = trove
zaqar_queue = {tenant}-conductor
tenants = t1
routing_key = conductor
%s
'''


def check(tmp_path, access, route, auth_type='password'):
    conf, routes = confutil.load(tmp_path, KEYSTONE % (access, auth_type,
                                                       route),
                                 routes='r1,r2' if 'r2' in route else 'r1')
    return route_load.check_zaqar_access(conf, routes)


@pytest.mark.parametrize('access, route, auth_type, error', [
    ('service_project', SAFE, 'password', None),
    ('service_project', 'zaqar_queue = {routing_key}', 'password',
     "route 'r1' option 'zaqar_queue': " + SHARED + "(got '{routing_key}')"),
    # The answers of every tenant's guests would meet in one queue.
    ('service_project', 'zaqar_queue = {tenant}-{server}', 'password',
     "route 'r1' option 'reply_queue': " + SHARED
     + "(got 'bridge_replies')"),
    ('service_project', 'zaqar_queue = {tenant}-{server}\nenvelope = raw',
     'password', None),
    ('service_project', SAFE + REVERSE % 'allowed_methods = heartbeat',
     'password',
     "route 'r2' option 'guest_reply_queue': " + SHARED + "(got '*')"),
    ('service_project', SAFE + REVERSE % (
        'allowed_methods = heartbeat\nguest_reply_queue = {tenant}-reply_*'),
     'password', None),
    # No RPC request passes: guests' calls are refused anyway.
    ('service_project', SAFE + REVERSE % '', 'password', None),
    ('trusts', 'zaqar_queue = {routing_key}', 'password', None),
    ('trusts', SAFE + REVERSE % 'tenant_discovery = trusts', 'password',
     None),
    ('service_project', SAFE + REVERSE % 'tenant_discovery = trusts',
     'password', "route 'r2' option 'tenant_discovery': trusts needs [zaqar] "
     "auth_strategy = keystone and tenant_access = trusts"),
    ('trusts', 'zaqar_queue = {routing_key}', 'v3token',
     "[zaqar] auth_type: tenant_access = trusts needs a user's password "
     "(auth_type = password), got 'v3token'"),
])
def test_check_conf(tmp_path, access, route, auth_type, error):
    if error is None:
        assert check(tmp_path, access, route, auth_type) is None
        return
    # Loading the configuration applies the same check: start-up stops
    # with that one line.
    with pytest.raises(config.ConfigError) as exc:
        check(tmp_path, access, route, auth_type)
    assert str(exc.value) == error


def test_noauth_is_not_checked(tmp_path):
    conf, routes = confutil.load(tmp_path, '''
        [route:r1]
        direction = to_zaqar
        exchange = trove
        tenant = context:project_id
        ''')
    assert route_load.check_zaqar_access(conf, routes) is None
    assert zaqar_clients.Clients(conf).project_of('t1') == 't1'
