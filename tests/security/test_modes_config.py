"""[zaqar] modes that cannot keep tenants apart are refused (no servers)."""

import pytest

from bridge import service
from bridge.zaqar import client as zaqar_client
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
zaqar_queue = %s
'''


def check(tmp_path, access, queue, auth_type='password'):
    conf, routes = confutil.load(tmp_path, KEYSTONE % (access, auth_type,
                                                       queue))
    return zaqar_client.check_conf(conf, routes)


@pytest.mark.parametrize('access, queue, auth_type, error', [
    ('service_project', 'guestagent_{tenant}_{server}', 'password', None),
    ('service_project', '{routing_key}', 'password',
     "route 'r1' option 'zaqar_queue': with [zaqar] tenant_access = "
     "service_project every tenant's queues share the bridge's project, so "
     "the template must contain {tenant} (got '{routing_key}')"),
    ('trusts', '{routing_key}', 'password', None),
    ('trusts', '{routing_key}', 'v3token',
     "[zaqar] auth_type: tenant_access = trusts needs a user's password "
     "(auth_type = password), got 'v3token'"),
])
def test_check_conf(tmp_path, access, queue, auth_type, error):
    if error is None:
        assert check(tmp_path, access, queue, auth_type) is None
        return
    # Loading the configuration applies the same check: start-up stops
    # with that one line.
    with pytest.raises(service.ConfigError) as exc:
        check(tmp_path, access, queue, auth_type)
    assert str(exc.value) == error


def test_noauth_is_not_checked(tmp_path):
    conf, routes = confutil.load(tmp_path, '''
        [route:r1]
        direction = to_zaqar
        exchange = trove
        tenant = context:project_id
        ''')
    assert zaqar_client.check_conf(conf, routes) is None
    assert zaqar_client.Clients(conf).project_of('t1') == 't1'
