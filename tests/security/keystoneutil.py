"""The bridge against real Keystone in the security tests: test names,
the [zaqar] section with trusts, a tenant's post."""

from tests.fixtures import servers


class Names:
    def __init__(self):
        self.exchange = servers.unique_name('ex')
        self.guest = servers.unique_name('g')
        self.conductor = servers.unique_name('conductor')
        self.dlq = servers.unique_name('dlq')


def keystone_zaqar_section(keystone, trusts):
    return keystone.bridge_zaqar_section(
        'trusts', trust_recheck_interval=2,
        trusts=','.join('%s:%s' % pair for pair in trusts.items()))


def post(zaqar, keystone, tenant, queue, body):
    zaqar.tenant_client(tenant).queue(queue).post([{'ttl': 300,
                                                    'body': body}])
