"""bridge.zaqar.clients.Clients with tenant_access = trusts, in process."""

import pytest

from bridge.zaqar import client as zaqar_client

from bridge.zaqar import clients as zaqar_clients
from tests.unit import confutil

pytestmark = pytest.mark.functional


ROUTE = '''
[route:r1]
direction = to_zaqar
exchange = trove
tenant = context:project_id
'''


def clients(tmp_path, keystone, zaqar, password=None, trusts=''):
    conf, _ = confutil.load(tmp_path, keystone.bridge_zaqar_section(
        'trusts', password, url=zaqar.url, trusts=trusts) + ROUTE)
    return zaqar_clients.Clients(conf)


def test_trust_found_through_keystone(tmp_path, keystone, zaqar_keystone,
                                      unique_name):
    a = keystone.tenants['a']
    trust = keystone.create_trust(a)
    try:
        bridge = clients(tmp_path, keystone, zaqar_keystone)
        assert bridge.project_of(a.id) == a.id
        queue = unique_name('q')
        bridge.for_project(a.id).queue(queue).post([{'ttl': 60,
                                                     'body': 'hi'}])
        mine = zaqar_keystone.tenant_client(a).queue(queue)
        assert [m.body for m in mine.messages(echo=True)] == ['hi']
        bridge.check()  # the bridge's own project
    finally:
        keystone.delete_trust(a, trust)


def test_no_trust_is_permanent_wrong_password_is_not(
        tmp_path, keystone, zaqar_keystone):
    a = keystone.tenants['a']
    bridge = clients(tmp_path, keystone, zaqar_keystone)
    with pytest.raises(zaqar_client.AccessError, match='no usable trust'):
        bridge.for_project('no-such-project').queue('q').post(
            [{'ttl': 60, 'body': 1}])
    trust = keystone.create_trust(a)
    try:
        wrong = clients(tmp_path, keystone, zaqar_keystone,
                        password='not-the-password',
                        trusts='%s:%s' % (a.id, trust))
        with pytest.raises(zaqar_client.TRANSIENT_ERRORS) as caught:
            wrong.for_project(a.id).queue('q').post([{'ttl': 60,
                                                      'body': 1}])
        assert not isinstance(caught.value, zaqar_client.PERMANENT_ERRORS)
        assert 'Keystone refused the bridge' in str(caught.value)
    finally:
        keystone.delete_trust(a, trust)
