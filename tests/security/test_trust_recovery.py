"""A tenant's trust deleted, then a new one: served again without restart.

README (tenant_access = trusts): "If a trust is deleted or expires, the
bridge logs one ERROR line for that project, [...] stops draining its
queues, and checks again every trust_recheck_interval seconds".  The
bridge finds the trust through Keystone (none listed in ``[zaqar]
trusts``), so the new trust is the one it must find.
"""

import pytest

from tests.functional import bridgeutil
from tests.security import keystoneutil

pytestmark = pytest.mark.functional


def lookups(proxy):
    """The bridge's requests listing its trusts."""
    return [r for r in list(proxy.requests)
            if r[0] == 'GET' and '/OS-TRUST/trusts' in r[1]]


@pytest.mark.slow
def test_deleted_trust_then_a_new_one(tmp_path, rabbit, keystone,
                                      zaqar_keystone):
    a = keystone.tenants['a']
    names = keystoneutil.Names()
    conductor = bridgeutil.Conductor()
    server = bridgeutil.rpc_server(rabbit, names.exchange, names.conductor,
                                   conductor)
    first = keystone.create_trust(a)
    second = None
    # Keystone seen through a proxy: each time the bridge asks for the
    # trusts naming it is recorded.
    proxy = bridgeutil.HttpProxy(keystone.url[:-len('/v3')])
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar_keystone, [
            ('conductor', bridgeutil.conductor_route(
                names.exchange, names.conductor, [a.id],
                poll_interval=0.2))],
        extra=keystone.bridge_zaqar_section(
            'trusts', trust_recheck_interval=2,
            auth_url=proxy.url + '/v3'))
    queue = zaqar_keystone.tenant_client(a).queue(names.conductor)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)

    def errors():
        return [line for line in daemon.log().splitlines()
                if ' ERROR ' in line and 'Project %s: ' % a.id in line]
    try:
        queue.post([bridgeutil.heartbeat(1)])
        bridgeutil.wait_until(lambda: conductor.calls, what='A served')
        # The bridge deletes it after publishing: a trust deleted before
        # that leaves it in the queue (claimed, delivered again later).
        bridgeutil.wait_until(
            lambda: queue.stats['messages']['total'] == 0,
            what='the served heartbeat deleted from A\'s queue')
        keystone.delete_trust(a, first)
        bridgeutil.wait_until(errors, what='the deleted trust noticed')
        # Not served: a heartbeat of A waits in A's queue...
        queue.post([bridgeutil.heartbeat(2)])
        # ...while the bridge asks Keystone again (twice), and again finds
        # no trust: no second line.
        looked = len(lookups(proxy))
        bridgeutil.wait_until(lambda: len(lookups(proxy)) >= looked + 2,
                              what='two rechecks of the trusts')
        assert [c[2] for c in conductor.calls] == [{'n': 1}]
        assert queue.stats['messages']['total'] == 1
        # A new trust: within trust_recheck_interval (2 s here) the bridge
        # finds it and drains A's queue again, no restart.
        second = keystone.create_trust(a)
        daemon.wait_for_log(lambda t: 'Project %s: trust %s accepted, its '
                            'queues are served again' % (a.id, second) in t,
                            what='the new trust accepted')
        bridgeutil.wait_until(lambda: len(conductor.calls) == 2,
                              what='the waiting heartbeat delivered')
        assert conductor.calls[1][2] == {'n': 2}
        assert conductor.calls[1][1]['project_id'] == a.id
        (error,) = errors()
        assert 'The bridge cannot reach its queues' in error, error
        assert 'Traceback' not in daemon.log()
    finally:
        assert daemon.stop() == 0
        bridgeutil.stop_server(server)
        bridgeutil.delete_queues(rabbit, config)
        keystone.delete_trust(a, first)
        if second:
            keystone.delete_trust(a, second)
        proxy.close()
